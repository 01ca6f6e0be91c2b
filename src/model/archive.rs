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
            other => {
                let flag = other.as_byte() as char;
                return Err(special(
                    path,
                    &format!("tar entry of an unsupported type ({flag})"),
                ));
            }
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
    if target.is_empty() {
        // No system can make one: extraction would fail half-way.
        let path = entry
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Err(special(path, "link with an empty target"));
    }
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
mod tests;
