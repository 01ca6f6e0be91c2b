//! Reading what terraform wrote in a work dir, as the server, without trusting it.
//!
//! When the server runs as root, terraform (and every local-exec of a template) runs as
//! an unprivileged user who owns the work dir (see `terraform::run_as`). Anything in it
//! may have been swapped, at any moment, for a symlink to `/etc/shadow` or for a FIFO
//! that blocks whoever opens it. So the server opens work-dir files only here: relative
//! to a directory it opened itself, never following a link in any component
//! (`O_NOFOLLOW` on each), never blocking on open (`O_NONBLOCK`), and reading only
//! regular files (checked on the open descriptor, not the name). The path up to the
//! work dir itself is the server's own (`<data dir>/work` belongs to it).

use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, CWD};

fn no_follow(dir: bool) -> OFlags {
    let kind = if dir {
        OFlags::DIRECTORY
    } else {
        OFlags::NONBLOCK
    };
    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | kind
}

/// The largest state, lock or output file the server reads back from a work dir: a
/// template could otherwise make the server read a sparse file of many gigabytes.
/// Terraform states of large deployments are tens of megabytes.
pub const MAX_READ_BYTES: u64 = 256 * 1024 * 1024;

/// Bounds on a tree copied out of a work dir (`.terraform` into the init cache): a
/// template can build any tree there, and the copy must neither run the server out of
/// stack, descriptors or disk. Real ones are a few levels of providers and modules.
const MAX_COPY_DEPTH: usize = 64;
const MAX_COPY_ENTRIES: usize = 100_000;
const MAX_COPY_BYTES: u64 = 8 * 1024 * 1024 * 1024;

/// `name` in the directory `dir` as a regular file, opened without following a link;
/// `Ok(None)` when there is no such entry.
pub fn open_file(dir: &Path, name: &str) -> std::io::Result<Option<std::fs::File>> {
    let dirfd = rustix::fs::openat(CWD, dir, no_follow(true), Mode::empty())?;
    match open_regular_at(&dirfd, name) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        other => other.map(Some),
    }
}

/// The bytes of `dir/name` (see [`open_file`]), at most `max` of them (a larger file is
/// an error, not a truncated read); `Ok(None)` when it does not exist.
pub fn read(dir: &Path, name: &str, max: u64) -> std::io::Result<Option<Vec<u8>>> {
    let Some(file) = open_file(dir, name)? else {
        return Ok(None);
    };
    read_bounded(file, max).map(Some)
}

/// Reads `file` whole, refusing one over `max` bytes (also one that grows past it while
/// it is read: another process may hold it open).
pub fn read_bounded(file: std::fs::File, max: u64) -> std::io::Result<Vec<u8>> {
    let too_large = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {} MiB", max / 1024 / 1024),
        )
    };
    if file.metadata()?.len() > max {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(too_large());
    }
    Ok(bytes)
}

fn open_regular_at<P: rustix::path::Arg>(
    dirfd: &OwnedFd,
    name: P,
) -> std::io::Result<std::fs::File> {
    let fd = rustix::fs::openat(dirfd, name, no_follow(false), Mode::empty())?;
    let stat = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    // A second name for a file means someone linked it there: only terraform's own files
    // are read (this does not rest on the kernel's protected_hardlinks alone).
    if stat.st_nlink != 1 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "a file with more than one link",
        ));
    }
    // Reads block as usual from here (O_NONBLOCK only guarded the open).
    rustix::fs::fcntl_setfl(&fd, OFlags::empty())?;
    Ok(std::fs::File::from(fd))
}

/// An entry of a tree being copied, met but not yet copied.
struct Pending {
    /// The directory it is in; shared by its siblings, so the walk keeps at most one
    /// descriptor open per level.
    parent: std::rc::Rc<OwnedFd>,
    name: std::ffi::CString,
    from: PathBuf,
    to: PathBuf,
    depth: usize,
}

/// A copy in progress: what is left to copy, and what was met so far (for the limits).
struct Walk<'a> {
    root: &'a Path,
    stack: Vec<Pending>,
    entries: usize,
    bytes: u64,
}

impl Walk<'_> {
    fn too_much(&self, what: String) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} has {what}, which no terraform init makes",
                self.root.display()
            ),
        )
    }

    /// Makes the copy of directory `fd` at `to` and puts its entries on the stack.
    fn list(&mut self, fd: OwnedFd, from: &Path, to: &Path, depth: usize) -> std::io::Result<()> {
        if depth > MAX_COPY_DEPTH {
            return Err(self.too_much(format!("directories over {MAX_COPY_DEPTH} levels deep")));
        }
        std::fs::create_dir_all(to)?;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755))?;
        let parent = std::rc::Rc::new(fd);
        for entry in rustix::fs::Dir::read_from(&*parent)? {
            let entry = entry?;
            let name = entry.file_name();
            if matches!(name.to_bytes(), b"." | b"..") {
                continue;
            }
            self.entries += 1;
            if self.entries > MAX_COPY_ENTRIES {
                return Err(self.too_much(format!("over {MAX_COPY_ENTRIES} entries")));
            }
            let os_name = OsStr::from_bytes(name.to_bytes());
            self.stack.push(Pending {
                parent: parent.clone(),
                name: name.to_owned(),
                from: from.join(os_name),
                to: to.join(os_name),
                depth,
            });
        }
        Ok(())
    }

    /// Copies one entry (a directory's entries go on the stack).
    fn copy(&mut self, p: Pending) -> std::io::Result<()> {
        let (parent, name) = (&*p.parent, p.name.as_c_str());
        let stat = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)?;
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => {
                let fd = rustix::fs::openat(parent, name, no_follow(true), Mode::empty())?;
                self.list(fd, &p.from, &p.to, p.depth + 1)?;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(parent, name, Vec::new())?;
                let target = Path::new(OsStr::from_bytes(target.to_bytes()));
                // A relative link (terraform makes them to the provider mirror) would
                // point elsewhere from the copy: pin it to where it pointed, worked out
                // lexically (nothing is resolved through the source).
                let target = if target.is_relative() {
                    normalize(&p.from.parent().unwrap_or(self.root).join(target))
                } else {
                    target.to_path_buf()
                };
                std::os::unix::fs::symlink(&target, &p.to)?;
            }
            FileType::RegularFile => {
                // Swapped for something else since the stat: left out, like a FIFO.
                let Ok(src) = open_regular_at(parent, name) else {
                    return Ok(());
                };
                let meta = src.metadata()?;
                self.bytes += meta.len();
                if self.bytes > MAX_COPY_BYTES {
                    return Err(
                        self.too_much(format!("over {} GiB of files", MAX_COPY_BYTES >> 30))
                    );
                }
                let mut out = std::fs::File::create(&p.to)?;
                // At most what it held when looked at, should it grow meanwhile.
                std::io::copy(&mut src.take(meta.len()), &mut out)?;
                let mode = if meta.permissions().mode() & 0o111 != 0 {
                    0o755
                } else {
                    0o644
                };
                out.set_permissions(std::fs::Permissions::from_mode(mode))?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Copies the tree at `from` (a directory in a work dir) to `to` (the server's own,
/// created here): directories and regular files by descriptor, links as links (their
/// targets are text, never followed here); anything else (FIFOs, sockets, devices) is
/// left out. Copies are readable by everyone and keep the source's execute bits. A tree
/// deeper, larger or with more entries than any real `.terraform` is an error. The walk
/// is a loop over a stack, not a recursion: a hostile depth cannot overflow the server's.
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut walk = Walk {
        root: from,
        stack: Vec::new(),
        entries: 0,
        bytes: 0,
    };
    let root = rustix::fs::openat(CWD, from, no_follow(true), Mode::empty())?;
    walk.list(root, from, to, 0)?;
    while let Some(next) = walk.stack.pop() {
        walk.copy(next)?;
    }
    Ok(())
}

/// `a/b/../c` → `a/c`, without looking at the filesystem.
fn normalize(path: &Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_regular_files_and_refuses_links_and_fifos() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "server only").unwrap();
        std::fs::write(dir.path().join("state"), "{}").unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join("link")).unwrap();
        let fifo =
            std::ffi::CString::new(dir.path().join("fifo").as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);

        std::fs::hard_link(&secret, dir.path().join("hard")).unwrap();
        let read = |name| read(dir.path(), name, 16);

        assert_eq!(read("state").unwrap().unwrap(), b"{}");
        assert_eq!(read("missing").unwrap(), None);
        assert!(read("link").is_err(), "a link is not followed");
        assert!(read("hard").is_err(), "a second name of a file is not read");
        // Would block forever if opened for reading the usual way.
        assert!(read("fifo").is_err(), "a FIFO is not read");
        std::fs::write(dir.path().join("big"), [b'x'; 17]).unwrap();
        let err = read("big").unwrap_err().to_string();
        assert!(err.contains("larger than"), "{err}");
    }

    #[test]
    fn copies_trees_without_following_links() {
        let src = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("shadow"), "secret").unwrap();
        std::fs::create_dir_all(src.path().join("providers/x")).unwrap();
        let bin = src.path().join("providers/x/provider");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink("/opt/mirror/p", src.path().join("providers/abs")).unwrap();
        std::os::unix::fs::symlink(
            "../providers/./x/provider",
            src.path().join("providers/rel"),
        )
        .unwrap();
        // A directory swapped for a link to somewhere the server may read.
        std::os::unix::fs::symlink(outside.path(), src.path().join("modules")).unwrap();

        let to = tempfile::tempdir().unwrap();
        let dst = to.path().join("copy");
        copy_tree(src.path(), &dst).unwrap();

        let copied = dst.join("providers/x/provider");
        assert_eq!(std::fs::read(&copied).unwrap(), b"#!/bin/sh\n");
        let mode = std::fs::metadata(&copied).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode, 0o755,
            "readable by terraform's user, still executable"
        );
        assert_eq!(
            std::fs::read_link(dst.join("providers/abs")).unwrap(),
            Path::new("/opt/mirror/p")
        );
        assert_eq!(
            std::fs::read_link(dst.join("providers/rel")).unwrap(),
            src.path().join("providers/x/provider")
        );
        // The link is copied as a link, its target's contents are not.
        let modules = dst.join("modules");
        assert!(modules.symlink_metadata().unwrap().file_type().is_symlink());
    }

    #[test]
    fn refuses_trees_no_terraform_makes() {
        let src = tempfile::tempdir().unwrap();
        let mut deep = src.path().to_path_buf();
        for _ in 0..=MAX_COPY_DEPTH + 1 {
            deep.push("d");
        }
        std::fs::create_dir_all(&deep).unwrap();
        let to = tempfile::tempdir().unwrap();
        let err = copy_tree(src.path(), &to.path().join("copy")).unwrap_err();
        assert!(err.to_string().contains("levels deep"), "{err}");
    }
}
