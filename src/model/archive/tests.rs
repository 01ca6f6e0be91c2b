use super::*;
use std::io::Write;

/// Builds archives the way an attacker would: raw header names, so `tar::Builder`'s
/// own path checks do not stop us from producing `..` and absolute entries.
struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Self {
        Tar(tar::Builder::new(Vec::new()))
    }
    fn raw_header(path: &str, kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_old();
        let name = &mut h.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        h
    }
    fn file(mut self, path: &str, body: &[u8]) -> Self {
        let h = Self::raw_header(path, tar::EntryType::Regular, body.len() as u64);
        self.0.append(&h, body).unwrap();
        self
    }
    fn dir(mut self, path: &str) -> Self {
        let h = Self::raw_header(path, tar::EntryType::Directory, 0);
        self.0.append(&h, std::io::empty()).unwrap();
        self
    }
    fn link(mut self, kind: tar::EntryType, path: &str, target: &str) -> Self {
        let mut h = Self::raw_header(path, kind, 0);
        h.set_link_name_literal(target).unwrap();
        h.set_cksum();
        self.0.append(&h, std::io::empty()).unwrap();
        self
    }
    fn special(mut self, kind: tar::EntryType, path: &str) -> Self {
        let h = Self::raw_header(path, kind, 0);
        self.0.append(&h, std::io::empty()).unwrap();
        self
    }
    /// A file whose header claims `size` bytes, for size limits without allocating them.
    fn sparse_claim(mut self, path: &str, size: u64) -> Self {
        let h = Self::raw_header(path, tar::EntryType::Regular, size);
        self.0.append(&h, std::io::repeat(0).take(size)).unwrap();
        self
    }
    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn main_tf() -> Tar {
    Tar::new().file("main.tf", b"resource \"terraform_data\" \"x\" {}\n")
}

#[test]
fn accepts_plain_tar_and_lists_files() {
    let bytes = main_tf()
        .dir("scripts/")
        .file("scripts/start.sh", b"echo hi\n")
        .link(tar::EntryType::Symlink, "scripts/link", "start.sh")
        .link(tar::EntryType::Symlink, "up", "scripts/../main.tf")
        .link(tar::EntryType::Link, "hard.tf", "main.tf")
        .bytes();
    let summary = validate(&bytes).unwrap();
    let paths: Vec<_> = summary.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["main.tf", "scripts/start.sh"]);
    assert_eq!(summary.total_bytes, 33 + 8);
}

#[test]
fn accepts_gzip_and_leading_dot_slash() {
    let tar = Tar::new()
        .dir("./")
        .file("./main.tf.tera", b"# {{ x }}\n")
        .bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let summary = validate(&gz.finish().unwrap()).unwrap();
    assert_eq!(summary.files[0].path, "main.tf.tera");
}

#[test]
fn refuses_non_tar() {
    let err = validate(b"hello, this is not an archive at all").unwrap_err();
    assert!(matches!(err, ArchiveError::NotTar { .. }), "{err}");
    let err = validate(&[b'x'; 2048]).unwrap_err();
    assert!(matches!(err, ArchiveError::NotTar { .. }), "{err}");
    assert!(err.to_string().contains("tar -cf"), "{err}");
    let err = validate(&[0x1f, 0x8b, 1, 2, 3]).unwrap_err();
    assert!(err.to_string().contains("gzip"), "{err}");
    assert!(matches!(validate(b"").unwrap_err(), ArchiveError::Empty));
}

#[test]
fn refuses_absolute_path() {
    let err = validate(&main_tf().file("/etc/passwd", b"x").bytes()).unwrap_err();
    assert!(
        matches!(err, ArchiveError::AbsolutePath { ref path } if path == "/etc/passwd"),
        "{err}"
    );
}

#[test]
fn refuses_parent_dir() {
    let err = validate(&main_tf().file("a/../../evil.tf", b"x").bytes()).unwrap_err();
    assert!(matches!(err, ArchiveError::ParentDir { .. }), "{err}");
    assert!(err.to_string().contains("a/../../evil.tf"), "{err}");
}

#[test]
fn refuses_links_with_an_empty_target() {
    // No system makes one: found by the property test below (extraction failed half-way).
    for kind in [tar::EntryType::Symlink, tar::EntryType::Link] {
        let err = validate(&main_tf().link(kind, "l", "").bytes()).unwrap_err();
        assert!(err.to_string().contains("empty target"), "{err}");
    }
}

#[test]
fn refuses_symlinks_out_of_root() {
    for target in ["/etc/passwd", "../x", "a/../../x", "sub/../.."] {
        let bytes = main_tf().link(tar::EntryType::Symlink, "l", target).bytes();
        let err = validate(&bytes).unwrap_err();
        assert!(
            matches!(err, ArchiveError::LinkOutside { .. }),
            "{target}: {err}"
        );
    }
    // Nested: `d/l -> ../..` leaves the root from one level down.
    let bytes = main_tf()
        .link(tar::EntryType::Symlink, "d/l", "../..")
        .bytes();
    assert!(matches!(
        validate(&bytes).unwrap_err(),
        ArchiveError::LinkOutside { .. }
    ));
}

#[test]
fn refuses_symlink_chains_that_escape() {
    // Each link alone stays inside lexically; together `b/..` is the root's parent.
    let bytes = main_tf()
        .link(tar::EntryType::Symlink, "a/b", "..")
        .link(tar::EntryType::Symlink, "c", "a/b/..")
        .bytes();
    let err = validate(&bytes).unwrap_err();
    assert!(
        matches!(err, ArchiveError::LinkOutside { ref path, .. } if path == "c"),
        "{err}"
    );
    // The same links in the opposite order: caught by the final pass.
    let bytes = main_tf()
        .link(tar::EntryType::Symlink, "c", "a/b/..")
        .link(tar::EntryType::Symlink, "a/b", "..")
        .bytes();
    assert!(matches!(
        validate(&bytes).unwrap_err(),
        ArchiveError::LinkOutside { .. }
    ));
    // Loops are refused, not followed forever.
    let bytes = main_tf()
        .link(tar::EntryType::Symlink, "x", "y")
        .link(tar::EntryType::Symlink, "y", "x/z")
        .bytes();
    let err = validate(&bytes).unwrap_err();
    assert!(matches!(err, ArchiveError::LinkLoop { .. }), "{err}");
}

#[test]
fn refuses_files_written_through_a_symlink() {
    let bytes = main_tf()
        .link(tar::EntryType::Symlink, "d", "sub")
        .file("d/f.tf", b"x")
        .bytes();
    let err = validate(&bytes).unwrap_err();
    assert!(
        matches!(err, ArchiveError::ThroughLink { ref link, .. } if link == "d"),
        "{err}"
    );
}

#[test]
fn refuses_hardlinks_out_of_root() {
    for target in ["/etc/shadow", "../../etc/shadow"] {
        let bytes = main_tf().link(tar::EntryType::Link, "h", target).bytes();
        let err = validate(&bytes).unwrap_err();
        assert!(
            matches!(err, ArchiveError::LinkOutside { .. }),
            "{target}: {err}"
        );
    }
}

#[test]
fn refuses_device_files() {
    for (kind, word) in [
        (tar::EntryType::Char, "character device"),
        (tar::EntryType::Block, "block device"),
        (tar::EntryType::Fifo, "fifo"),
    ] {
        let err = validate(&main_tf().special(kind, "dev").bytes()).unwrap_err();
        assert!(matches!(err, ArchiveError::SpecialFile { .. }), "{err}");
        assert!(err.to_string().contains(word), "{err}");
    }
}

#[test]
fn refuses_oversized_archives() {
    let bytes = main_tf()
        .sparse_claim("big.bin", MAX_UNPACKED_BYTES)
        .bytes();
    let err = validate(&bytes).unwrap_err();
    assert!(
        matches!(err, ArchiveError::TooLarge { ref largest, .. } if largest == "big.bin"),
        "{err}"
    );
    // The same through gzip, where it compresses to almost nothing.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&bytes).unwrap();
    let gz = gz.finish().unwrap();
    assert!(gz.len() < 1024 * 1024);
    assert!(matches!(
        validate(&gz).unwrap_err(),
        ArchiveError::TooLarge { .. }
    ));
}

#[test]
fn refuses_archives_without_terraform() {
    let err = validate(&Tar::new().file("README.md", b"hi").bytes()).unwrap_err();
    assert!(matches!(err, ArchiveError::NoTerraform { .. }), "{err}");
    let err = validate(&Tar::new().file("tpl/main.tf", b"").bytes()).unwrap_err();
    assert!(err.to_string().contains("tpl/main.tf"), "{err}");
}

/// A GNU long-name entry: the path lives in its own record, so it has no 100-byte cap.
fn long_named(entries: &[(String, tar::EntryType, Option<String>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, target) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_size(0);
        h.set_mode(0o644);
        match target {
            Some(t) => b.append_link(&mut h, path, t).unwrap(),
            None => b.append_data(&mut h, path, std::io::empty()).unwrap(),
        }
    }
    b.into_inner().unwrap()
}

#[test]
fn pathological_shapes_are_refused_quickly() {
    let deep = vec!["d"; 2000].join("/");
    let started = std::time::Instant::now();
    let bytes = long_named(&[(format!("{deep}/main.tf"), tar::EntryType::Regular, None)]);
    assert!(matches!(
        validate(&bytes),
        Err(ArchiveError::PathTooLong { .. })
    ));
    let link = long_named(&[
        ("main.tf".into(), tar::EntryType::Regular, None),
        ("l".into(), tar::EntryType::Symlink, Some(deep.clone())),
    ]);
    assert!(matches!(
        validate(&link),
        Err(ArchiveError::PathTooLong { .. })
    ));
    let many: Vec<_> = (0..=MAX_ENTRIES)
        .map(|i| (format!("f{i}.tf"), tar::EntryType::Regular, None))
        .collect();
    let err = validate(&long_named(&many)).unwrap_err();
    assert!(matches!(err, ArchiveError::TooManyEntries { .. }), "{err}");
    // Refusals are cheap: the old walk spent 97 s of CPU on the first archive.
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let ok = vec!["d"; MAX_PATH_COMPONENTS - 1].join("/");
    validate(&long_named(&[
        ("main.tf".into(), tar::EntryType::Regular, None),
        (format!("{ok}/x.tf"), tar::EntryType::Regular, None),
    ]))
    .unwrap();
}

fn arb_entry() -> impl proptest::strategy::Strategy<Value = (String, u8, String, Vec<u8>)> {
    use proptest::prelude::*;
    let part = prop_oneof![
        Just("..".to_string()),
        Just(".".to_string()),
        Just("".to_string()),
        Just("main.tf".to_string()),
        "[a-c]{1,2}",
    ];
    let path = proptest::collection::vec(part.clone(), 1..5).prop_map(|p| p.join("/"));
    let abs = prop_oneof![Just(String::new()), Just("/".to_string())];
    let target = proptest::collection::vec(part, 1..5).prop_map(|p| p.join("/"));
    (
        (abs.clone(), path).prop_map(|(a, p)| a + &p),
        0u8..6,
        (abs, target).prop_map(|(a, t)| a + &t),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4_000))]
    /// Whatever the entries, extraction never writes outside its destination, and
    /// what validation accepts, extraction writes.
    #[test]
    fn extraction_stays_inside_dest(entries in proptest::collection::vec(arb_entry(), 1..6)) {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, target, body) in &entries {
            let kind = [
                tar::EntryType::Regular,
                tar::EntryType::Directory,
                tar::EntryType::Symlink,
                tar::EntryType::Link,
                tar::EntryType::Fifo,
                tar::EntryType::Char,
            ][*kind as usize];
            let mut h = Tar::raw_header(&path.chars().take(99).collect::<String>(), kind, body.len() as u64);
            if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
                h.set_size(0);
                let _ = h.set_link_name_literal(target.chars().take(99).collect::<String>());
                h.set_cksum();
                b.append(&h, std::io::empty()).unwrap();
            } else if kind == tar::EntryType::Regular {
                b.append(&h, &body[..]).unwrap();
            } else {
                h.set_size(0);
                h.set_cksum();
                b.append(&h, std::io::empty()).unwrap();
            }
        }
        let bytes = b.into_inner().unwrap();
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("dest");
        std::fs::create_dir(&dest).unwrap();
        let valid = validate(&bytes).is_ok();
        let extracted = extract(&bytes, &dest).is_ok();
        proptest::prop_assert!(!valid || extracted, "validate accepted what extract refused");
        proptest::prop_assert!(valid || !extracted);
        // Nothing beside `dest` in the root: no entry escaped.
        let outside: Vec<_> = std::fs::read_dir(root.path()).unwrap().collect();
        proptest::prop_assert_eq!(outside.len(), 1);
        if !valid {
            proptest::prop_assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0);
        }
    }
}

#[test]
fn extract_writes_inside_dest_and_nothing_on_refusal() {
    let dest = tempfile::tempdir().unwrap();
    let good = main_tf()
        .file("sub/a.txt", b"A")
        .link(tar::EntryType::Symlink, "sub/l", "a.txt")
        .bytes();
    extract(&good, dest.path()).unwrap();
    assert_eq!(std::fs::read(dest.path().join("sub/l")).unwrap(), b"A");

    let outside = tempfile::tempdir().unwrap();
    let evil_dest = tempfile::tempdir().unwrap();
    let evil = main_tf()
        .file("ok.txt", b"x")
        .link(
            tar::EntryType::Symlink,
            "esc",
            outside.path().to_str().unwrap(),
        )
        .bytes();
    assert!(extract(&evil, evil_dest.path()).is_err());
    // Refused before the first write: not even main.tf landed.
    assert_eq!(std::fs::read_dir(evil_dest.path()).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
}

#[test]
fn read_files_returns_terraform_text_only() {
    let bytes = main_tf()
        .file("vars.tf.tera", b"# {{ owner.name }}\n")
        .file("script.sh", b"echo\n")
        .bytes();
    let files = read_files(&bytes).unwrap();
    let names: Vec<_> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(names, ["main.tf", "vars.tf.tera"]);
    assert!(files[1].1.contains("owner.name"));
    let err = read_files(&main_tf().file("bad.tf", &[0xff, 0xfe]).bytes()).unwrap_err();
    assert!(
        matches!(err, ArchiveError::NotUtf8 { ref path } if path == "bad.tf"),
        "{err}"
    );
}

#[test]
fn pack_dir_skips_local_state_and_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("main.tf"), "resource \"terraform_data\" \"x\" {}\n").unwrap();
    std::fs::write(d.join("terraform.tfstate"), "{}").unwrap();
    std::fs::write(d.join("terraform.tfstate.backup"), "{}").unwrap();
    std::fs::write(d.join(".terraform.lock.hcl"), "# lock\n").unwrap();
    std::fs::create_dir_all(d.join(".terraform/providers")).unwrap();
    std::fs::write(d.join(".terraform/providers/p"), "bin").unwrap();
    std::fs::create_dir_all(d.join(".git")).unwrap();
    std::fs::write(d.join(".git/HEAD"), "ref").unwrap();
    std::fs::create_dir_all(d.join("modules/m")).unwrap();
    std::fs::write(d.join("modules/m/main.tf"), "").unwrap();
    std::os::unix::fs::symlink("main.tf", d.join("alias.tf")).unwrap();
    std::fs::write(d.join("start.sh"), "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.join("start.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();

    let bytes = pack_dir(d).unwrap();
    let summary = validate(&bytes).unwrap();
    let paths: Vec<_> = summary.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            ".terraform.lock.hcl",
            "main.tf",
            "modules/m/main.tf",
            "start.sh"
        ]
    );

    // Same content, different mtimes: same bytes.
    std::thread::sleep(std::time::Duration::from_millis(10));
    std::fs::write(d.join("main.tf"), "resource \"terraform_data\" \"x\" {}\n").unwrap();
    assert_eq!(pack_dir(d).unwrap(), bytes);

    let out = tempfile::tempdir().unwrap();
    extract(&bytes, out.path()).unwrap();
    assert!(out.path().join("alias.tf").is_symlink());
    assert!(!out.path().join(".terraform").exists());
    // Scripts stay executable (for the owner; group/other bits are dropped).
    let mode = std::fs::metadata(out.path().join("start.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "{mode:o}");
}
