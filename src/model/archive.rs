//! Template version archives: a tar (optionally gzipped) of a Terraform module.
//!
//! Archives come from users, so every entry is checked before anything is written:
//! a template must not be able to write outside its work dir, plant device files, or
//! exhaust the disk. `validate` and `extract` share one walk so they can never disagree
//! about what is acceptable.

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::path::{Component, Path};

use serde::Serialize;

/// The most file content an archive may hold once unpacked. Templates are text; anything
/// this large is almost always a `.terraform/` dir or a state file pushed by mistake.
pub const MAX_UNPACKED_BYTES: u64 = 50 * 1024 * 1024;

/// Headers and padding add up to ~1 KiB per tiny file, so the decompressed tar stream
/// gets room beyond the content limit; this only stops gzip bombs.
const MAX_TAR_STREAM_BYTES: u64 = 2 * MAX_UNPACKED_BYTES;

/// How many symlinks one path may pass through before we call it a loop (Linux uses 40).
const MAX_LINK_HOPS: usize = 40;

/// Limits on an archive's shape: a template is a few dozen files a few levels deep, and
/// the checks below (links, prefixes) cost more per entry the deeper and longer its path.
/// Without them a 10 KB archive with one 2,000-component path took 97 s of CPU.
pub const MAX_ENTRIES: usize = 10_000;
pub const MAX_PATH_COMPONENTS: usize = 64;
pub const MAX_PATH_BYTES: usize = 1024;

/// Directory names that never belong in a template: provider binaries, local state, VCS.
const SKIPPED_DIRS: &[&str] = &[".terraform", ".git"];

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the upload is not a tar or tar.gz archive ({reason}); push a directory with `hangar templates push -d DIR`, or create one with `tar -cf template.tar -C DIR .`")]
    NotTar { reason: String },
    #[error("the archive is empty; it must contain the template's .tf files")]
    Empty,
    #[error("archive entry {path:?} has an absolute path; archive the template directory's contents with relative paths (`tar -cf t.tar -C DIR .`)")]
    AbsolutePath { path: String },
    #[error("the archive has more than {limit} entries; a template is a Terraform module, not a project tree: push only the module's directory")]
    TooManyEntries { limit: usize },
    #[error("archive entry {path:?} is too deep or too long (at most {MAX_PATH_COMPONENTS} directories and {MAX_PATH_BYTES} bytes); flatten the template's layout")]
    PathTooLong { path: String },
    #[error("archive entry {path:?} appears twice; an archive must list each path once (`tar -cf t.tar -C DIR .`)")]
    Duplicate { path: String },
    #[error("archive entry {path:?} contains a `..` component, which could write outside the template directory; remove it from the archive")]
    ParentDir { path: String },
    #[error("archive entry {path:?} is a link to {target:?}, which points outside the template directory; replace the link with the file itself")]
    LinkOutside { path: String, target: String },
    #[error("archive entry {path:?} is a link to {target:?}, which leads into a loop of links; replace the link with the file itself")]
    LinkLoop { path: String, target: String },
    #[error("archive entry {path:?} lies beneath the symlink {link:?}; archives may not place files through links, archive the real directory instead")]
    ThroughLink { path: String, link: String },
    #[error("archive entry {path:?} is a {kind}; templates may only contain regular files, directories and links inside the template")]
    SpecialFile { path: String, kind: String },
    #[error("the archive holds {total} bytes of files, more than the {limit}-byte limit ({largest:?} is the largest file); remove build outputs, .terraform/ dirs and state files")]
    TooLarge {
        total: u64,
        limit: u64,
        largest: String,
    },
    #[error("the compressed archive expands beyond {limit} bytes; remove build outputs, .terraform/ dirs and state files")]
    StreamTooLarge { limit: u64 },
    #[error("the archive has no Terraform configuration (.tf or .tf.tera) at its top level{hint}")]
    NoTerraform { hint: String },
    #[error("{path:?} is not valid UTF-8 text; Terraform files must be UTF-8")]
    NotUtf8 { path: String },
    #[error("{action} {path:?}: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl ArchiveError {
    fn io(action: &'static str, path: impl AsRef<Path>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.as_ref().display().to_string();
        move |source| ArchiveError::Io {
            action,
            path,
            source,
        }
    }
}

/// One regular file in an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArchiveFile {
    /// Normalized relative path, `/`-separated, without a leading `./`.
    pub path: String,
    pub size: u64,
}

/// What a valid archive contains, for display and for the version record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArchiveSummary {
    /// Regular files in archive order.
    pub files: Vec<ArchiveFile>,
    pub total_bytes: u64,
}

/// Tars a template directory, deterministically: entries sorted by name, times, owners
/// and unimportant mode bits zeroed, so pushing the same files twice yields the same bytes
/// (and the same init-cache key).
pub fn pack_dir(dir: &Path) -> Result<Vec<u8>, ArchiveError> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    pack_into(&mut builder, dir, Path::new(""))?;
    builder
        .into_inner()
        .map_err(ArchiveError::io("finishing the archive of", dir))
}

fn is_skipped(name: &str, is_dir: bool) -> bool {
    if is_dir {
        SKIPPED_DIRS.contains(&name)
    } else {
        // terraform.tfstate, terraform.tfstate.backup, errored.tfstate: state holds secrets
        // and belongs to a workspace, never to a template.
        name.contains(".tfstate")
    }
}

fn pack_into(
    builder: &mut tar::Builder<Vec<u8>>,
    dir: &Path,
    rel: &Path,
) -> Result<(), ArchiveError> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(ArchiveError::io("reading directory", dir))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(ArchiveError::io("reading directory", dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        let name_str = name.to_string_lossy();
        let meta = std::fs::symlink_metadata(&path).map_err(ArchiveError::io("reading", &path))?;
        let ft = meta.file_type();
        if is_skipped(&name_str, ft.is_dir()) {
            continue;
        }
        let rel_path = rel.join(&name);
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        if ft.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            builder
                .append_data(&mut header, &rel_path, std::io::empty())
                .map_err(ArchiveError::io("archiving", &path))?;
            pack_into(builder, &path, &rel_path)?;
        } else if ft.is_symlink() {
            let target =
                std::fs::read_link(&path).map_err(ArchiveError::io("reading link", &path))?;
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_mode(0o777);
            header.set_size(0);
            builder
                .append_link(&mut header, &rel_path, &target)
                .map_err(ArchiveError::io("archiving", &path))?;
        } else if ft.is_file() {
            use std::os::unix::fs::PermissionsExt;
            let executable = meta.permissions().mode() & 0o111 != 0;
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(if executable { 0o755 } else { 0o644 });
            header.set_size(meta.len());
            let file = std::fs::File::open(&path).map_err(ArchiveError::io("opening", &path))?;
            builder
                .append_data(&mut header, &rel_path, file)
                .map_err(ArchiveError::io("archiving", &path))?;
        } else {
            return Err(ArchiveError::SpecialFile {
                path: rel_path.display().to_string(),
                kind: "socket, fifo or device".into(),
            });
        }
    }
    Ok(())
}

/// Checks an archive against every rule without writing anything.
pub fn validate(bytes: &[u8]) -> Result<ArchiveSummary, ArchiveError> {
    Ok(walk(bytes)?.summary)
}

/// Unpacks a valid archive into `dest` (which must exist). The whole archive is checked
/// first, so a refused archive leaves `dest` untouched; `tar`'s own `unpack_in` guards
/// against escapes a second time.
pub fn extract(bytes: &[u8], dest: &Path) -> Result<(), ArchiveError> {
    walk(bytes)?;
    let tar_bytes = decompress(bytes)?;
    let mut archive = tar::Archive::new(Cursor::new(&tar_bytes[..]));
    archive.set_preserve_mtime(false);
    archive.set_unpack_xattrs(false);
    // Group/other bits are dropped: the work dir is private to the runner anyway.
    archive.set_mask(0o077);
    let entries = archive.entries().map_err(not_tar)?;
    for entry in entries {
        let mut entry = entry.map_err(not_tar)?;
        let path = entry.path().map_err(not_tar)?.display().to_string();
        let inside = entry
            .unpack_in(dest)
            .map_err(ArchiveError::io("extracting", &path))?;
        if !inside {
            // Unreachable after `walk`, but never silently skip a file.
            return Err(ArchiveError::ParentDir { path });
        }
    }
    Ok(())
}

/// The text of every `.tf` and `.tf.tera` file, for static HCL parsing at push time.
pub fn read_files(bytes: &[u8]) -> Result<Vec<(String, String)>, ArchiveError> {
    walk(bytes)?;
    let tar_bytes = decompress(bytes)?;
    let mut archive = tar::Archive::new(Cursor::new(&tar_bytes[..]));
    let mut out = Vec::new();
    for entry in archive.entries().map_err(not_tar)? {
        let mut entry = entry.map_err(not_tar)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = normalize(&entry.path().map_err(not_tar)?)?;
        if !is_hcl(&path) {
            continue;
        }
        let mut raw = Vec::new();
        entry
            .read_to_end(&mut raw)
            .map_err(ArchiveError::io("reading", &path))?;
        let text =
            String::from_utf8(raw).map_err(|_| ArchiveError::NotUtf8 { path: path.clone() })?;
        out.push((path, text));
    }
    Ok(out)
}

fn is_hcl(path: &str) -> bool {
    path.ends_with(".tf") || path.ends_with(".tf.tera")
}

fn is_config(path: &str) -> bool {
    is_hcl(path) || path.ends_with(".tf.json")
}

fn not_tar(err: std::io::Error) -> ArchiveError {
    ArchiveError::NotTar {
        reason: err.to_string(),
    }
}

/// Plain tar passes through; gzip (magic `1f 8b`) is expanded with a ceiling.
fn decompress(bytes: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, ArchiveError> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .take(MAX_TAR_STREAM_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| ArchiveError::NotTar {
                reason: format!("gzip data is corrupt: {e}"),
            })?;
        if out.len() as u64 > MAX_TAR_STREAM_BYTES {
            return Err(ArchiveError::StreamTooLarge {
                limit: MAX_TAR_STREAM_BYTES,
            });
        }
        Ok(out.into())
    } else {
        Ok(bytes.into())
    }
}

/// A relative, `/`-joined path with `.` removed; refuses absolute paths and `..`.
fn normalize(path: &Path) -> Result<String, ArchiveError> {
    let shown = path.display().to_string();
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => return Err(ArchiveError::ParentDir { path: shown }),
            Component::RootDir | Component::Prefix(_) => {
                return Err(ArchiveError::AbsolutePath { path: shown })
            }
        }
    }
    Ok(parts.join("/"))
}

struct Walked {
    summary: ArchiveSummary,
}

/// Resolves `target` (a link's target, relative to `base`) against the archive's own
/// symlinks; `None` when the result leaves the root. Lexical resolution alone is not
/// enough: `a -> b/c` followed by `..` lands wherever `b/c` really points.
fn resolve(
    links: &HashMap<String, String>,
    base: &[String],
    target: &str,
    hops: &mut usize,
) -> Result<Vec<String>, Unresolved> {
    if target.starts_with('/') {
        return Err(Unresolved::Escapes);
    }
    let mut stack: Vec<String> = base.to_vec();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                stack.pop().ok_or(Unresolved::Escapes)?;
            }
            name => {
                stack.push(name.to_string());
                if let Some(next) = links.get(&stack.join("/")) {
                    *hops += 1;
                    if *hops > MAX_LINK_HOPS {
                        return Err(Unresolved::Loops);
                    }
                    stack.pop();
                    stack = resolve(links, &stack, next, hops)?;
                }
            }
        }
    }
    Ok(stack)
}

enum Unresolved {
    Escapes,
    Loops,
}

fn check_link(
    links: &HashMap<String, String>,
    path: &str,
    base: &[String],
    target: &str,
) -> Result<(), ArchiveError> {
    match resolve(links, base, target, &mut 0) {
        Ok(_) => Ok(()),
        Err(Unresolved::Escapes) => Err(ArchiveError::LinkOutside {
            path: path.to_string(),
            target: target.to_string(),
        }),
        Err(Unresolved::Loops) => Err(ArchiveError::LinkLoop {
            path: path.to_string(),
            target: target.to_string(),
        }),
    }
}

fn parent_of(path: &str) -> Vec<String> {
    let mut parts: Vec<String> = path.split('/').map(str::to_string).collect();
    parts.pop();
    parts
}

/// Fails when a proper prefix of `path` is one of the archive's symlinks.
fn check_not_through_link(links: &HashMap<String, String>, path: &str) -> Result<(), ArchiveError> {
    let parts: Vec<&str> = path.split('/').collect();
    for i in 1..parts.len() {
        let prefix = parts[..i].join("/");
        if links.contains_key(&prefix) {
            return Err(ArchiveError::ThroughLink {
                path: path.to_string(),
                link: prefix,
            });
        }
    }
    Ok(())
}

/// Each path names one thing: a file may not replace a directory (its own or one its
/// earlier children implied) or stand where a later entry needs a directory.
fn check_unique(
    seen: &mut HashMap<String, bool>,
    path: &str,
    is_dir: bool,
) -> Result<(), ArchiveError> {
    let duplicate = || ArchiveError::Duplicate {
        path: path.to_string(),
    };
    for (i, _) in path.match_indices('/') {
        if !*seen.entry(path[..i].to_string()).or_insert(true) {
            return Err(duplicate());
        }
    }
    match seen.insert(path.to_string(), is_dir) {
        Some(true) if is_dir => Ok(()),
        Some(_) => Err(duplicate()),
        None => Ok(()),
    }
}

fn walk(bytes: &[u8]) -> Result<Walked, ArchiveError> {
    if bytes.is_empty() {
        return Err(ArchiveError::Empty);
    }
    let tar_bytes = decompress(bytes)?;
    if tar_bytes.len() < 512 {
        return Err(ArchiveError::NotTar {
            reason: format!("{} bytes is shorter than one tar header", tar_bytes.len()),
        });
    }
    let mut archive = tar::Archive::new(Cursor::new(&tar_bytes[..]));
    let mut files = Vec::new();
    let mut total: u64 = 0;
    let mut largest = (0u64, String::new());
    let mut links: HashMap<String, String> = HashMap::new();
    let mut hardlinks: Vec<(String, String)> = Vec::new();
    let mut any_entry = false;
    let mut entries = 0usize;
    let mut paths: Vec<String> = Vec::new();
    let mut seen = HashMap::new();
    for entry in archive.entries().map_err(not_tar)? {
        let entry = entry.map_err(not_tar)?;
        any_entry = true;
        entries += 1;
        if entries > MAX_ENTRIES {
            return Err(ArchiveError::TooManyEntries { limit: MAX_ENTRIES });
        }
        let raw_path = entry.path().map_err(not_tar)?.into_owned();
        let raw_len = raw_path.as_os_str().len();
        if raw_len > MAX_PATH_BYTES || raw_path.components().count() > MAX_PATH_COMPONENTS {
            let shown: String = raw_path.to_string_lossy().chars().take(80).collect();
            return Err(ArchiveError::PathTooLong {
                path: format!("{shown}…"),
            });
        }
        let path = normalize(&raw_path)?;
        if path.is_empty() {
            // `./` itself, as `tar -C dir .` writes it.
            continue;
        }
        // A path whose parent is a symlink would be written wherever that link points.
        check_not_through_link(&links, &path)?;
        check_unique(&mut seen, &path, entry.header().entry_type().is_dir())?;
        paths.push(path.clone());
        let kind = entry.header().entry_type();
        use tar::EntryType as E;
        match kind {
            E::Regular | E::Continuous | E::GNUSparse => {
                let size = entry.size();
                total = total.saturating_add(size);
                if size > largest.0 || largest.1.is_empty() {
                    largest = (size, path.clone());
                }
                if total > MAX_UNPACKED_BYTES {
                    return Err(ArchiveError::TooLarge {
                        total,
                        limit: MAX_UNPACKED_BYTES,
                        largest: largest.1,
                    });
                }
                files.push(ArchiveFile { path, size });
            }
            E::Directory => {}
            E::Symlink => {
                let target = link_target(&entry)?;
                check_link(&links, &path, &parent_of(&path), &target)?;
                links.insert(path, target);
            }
            E::Link => {
                // Hard link targets are archive paths, checked once every symlink is known.
                // tar makes the link while it extracts, so its target must be a regular
                // file already written (a directory cannot be hard-linked).
                let target = link_target(&entry)?;
                check_link(&links, &path, &[], &target)?;
                let earlier_file = normalize(Path::new(&target))
                    .is_ok_and(|t| files.iter().any(|f: &ArchiveFile| f.path == t));
                if !earlier_file {
                    return Err(special(
                        path,
                        &format!("hard link to {target:?}, which is not a file listed before it"),
                    ));
                }
                hardlinks.push((path, target));
            }
            E::Char => return Err(special(path, "character device")),
            E::Block => return Err(special(path, "block device")),
            E::Fifo => return Err(special(path, "named pipe (fifo)")),
            other => return Err(special(path, &format!("tar entry of type {other:?}"))),
        }
    }
    if !any_entry {
        return Err(ArchiveError::Empty);
    }
    // Links that appear later can change where earlier paths lead (`c -> a/b/..` before
    // `a/b -> ..`), so everything is checked again against the complete set.
    for path in &paths {
        check_not_through_link(&links, path)?;
    }
    let mut sorted: Vec<_> = links.iter().collect();
    sorted.sort();
    for (path, target) in sorted {
        check_link(&links, path, &parent_of(path), target)?;
    }
    for (path, target) in hardlinks {
        check_link(&links, &path, &[], &target)?;
    }
    let top_level = files
        .iter()
        .any(|f| !f.path.contains('/') && is_config(&f.path));
    if !top_level {
        let nested = files.iter().find(|f| is_config(&f.path));
        let hint = match nested {
            Some(f) => format!(
                " (found {:?}: archive the directory that holds the .tf files, not its parent)",
                f.path
            ),
            None => "; a template is a Terraform module, e.g. a main.tf".to_string(),
        };
        return Err(ArchiveError::NoTerraform { hint });
    }
    Ok(Walked {
        summary: ArchiveSummary {
            files,
            total_bytes: total,
        },
    })
}

fn link_target<R: Read>(entry: &tar::Entry<'_, R>) -> Result<String, ArchiveError> {
    let target = entry
        .link_name()
        .map_err(not_tar)?
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    if target.len() > MAX_PATH_BYTES || target.split('/').count() > MAX_PATH_COMPONENTS {
        let shown: String = target.chars().take(80).collect();
        return Err(ArchiveError::PathTooLong {
            path: format!("{shown}…"),
        });
    }
    Ok(target)
}

fn special(path: String, kind: &str) -> ArchiveError {
    ArchiveError::SpecialFile {
        path,
        kind: kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
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
        std::fs::set_permissions(d.join("start.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();

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
}
