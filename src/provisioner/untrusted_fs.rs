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
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, CWD};

fn no_follow(dir: bool) -> OFlags {
    let kind = if dir {
        OFlags::DIRECTORY
    } else {
        OFlags::NONBLOCK
    };
    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | kind
}

/// `name` in the directory `dir` as a regular file, opened without following a link;
/// `Ok(None)` when there is no such entry.
pub fn open_file(dir: &Path, name: &str) -> std::io::Result<Option<std::fs::File>> {
    let dirfd = rustix::fs::openat(CWD, dir, no_follow(true), Mode::empty())?;
    match open_regular_at(&dirfd, name) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        other => other.map(Some),
    }
}

/// The bytes of `dir/name` (see [`open_file`]); `Ok(None)` when it does not exist.
pub fn read(dir: &Path, name: &str) -> std::io::Result<Option<Vec<u8>>> {
    let Some(mut file) = open_file(dir, name)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(Some(bytes))
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
    // Reads block as usual from here (O_NONBLOCK only guarded the open).
    rustix::fs::fcntl_setfl(&fd, OFlags::empty())?;
    Ok(std::fs::File::from(fd))
}

/// Copies the tree at `from` (a directory in a work dir) to `to` (the server's own,
/// created here): directories and regular files by descriptor, links as links (their
/// targets are text, never followed here); anything else (FIFOs, sockets, devices) is
/// left out. Copies are readable by everyone and keep the source's execute bits.
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let dirfd = rustix::fs::openat(CWD, from, no_follow(true), Mode::empty())?;
    copy_dir_at(&dirfd, from, to)
}

fn copy_dir_at(dirfd: &OwnedFd, from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755))?;
    for entry in rustix::fs::Dir::read_from(dirfd)? {
        let entry = entry?;
        let name = entry.file_name();
        let bytes = name.to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        let os_name = OsStr::from_bytes(bytes);
        let dst = to.join(os_name);
        let stat = rustix::fs::statat(dirfd, name, AtFlags::SYMLINK_NOFOLLOW)?;
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => {
                let sub = rustix::fs::openat(dirfd, name, no_follow(true), Mode::empty())?;
                copy_dir_at(&sub, &from.join(os_name), &dst)?;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(dirfd, name, Vec::new())?;
                let target = Path::new(OsStr::from_bytes(target.to_bytes())).to_path_buf();
                // A relative link (terraform makes them to the provider mirror) would
                // point elsewhere from the copy: pin it to where it pointed, worked out
                // lexically (nothing is resolved through the source).
                let target = if target.is_relative() {
                    normalize(&from.join(target))
                } else {
                    target
                };
                std::os::unix::fs::symlink(&target, &dst)?;
            }
            FileType::RegularFile => {
                // Swapped for something else since the stat: left out, like a FIFO.
                let Ok(mut src) = open_regular_at(dirfd, name) else {
                    continue;
                };
                let mode = src.metadata()?.permissions().mode();
                let mut out = std::fs::File::create(&dst)?;
                std::io::copy(&mut src, &mut out)?;
                let mode = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
                out.set_permissions(std::fs::Permissions::from_mode(mode))?;
            }
            _ => {}
        }
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

        assert_eq!(read(dir.path(), "state").unwrap().unwrap(), b"{}");
        assert_eq!(read(dir.path(), "missing").unwrap(), None);
        assert!(read(dir.path(), "link").is_err(), "a link is not followed");
        // Would block forever if opened for reading the usual way.
        assert!(read(dir.path(), "fifo").is_err(), "a FIFO is not read");
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
}
