//! Terraform as an unprivileged user when the server runs as root.
//!
//! A template's `local-exec` runs as whoever runs terraform. As root it could read the
//! database (agent tokens, session hashes, OAuth tokens) and own the machine; as the
//! server's own user it could still read the data dir and `/proc/<server>/environ`. So a
//! server started as root runs terraform as another user ([`DEFAULT_USER`], or
//! `--terraform-user`): the work dir of a build is handed to that user just before its
//! first terraform process, and the server reads back only through `untrusted_fs`. What
//! that user can reach is what templates can reach: give it the `docker` group only if
//! templates run containers (that group is root on the machine in all but name).

use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use crate::unix_user;

/// Who terraform runs as when the server runs as root and `--terraform-user` is not given.
pub const DEFAULT_USER: &str = "hangar-terraform";

/// `--terraform-user root`: keep running terraform as root, knowingly.
pub const STAY_ROOT: &str = "root";

#[derive(Debug, thiserror::Error)]
pub enum RunAsError {
    #[error("terraform is to run as the user {name:?}, which does not exist on this machine. Create it (as root): `useradd --system --user-group --create-home --home-dir /var/lib/{name} --shell /bin/bash {name}` and, for templates that run containers, `usermod -aG docker {name}`; or choose another with --terraform-user (`--terraform-user root` runs templates as root, which lets them read the database)")]
    NoSuchUser { name: String },
    #[error("--terraform-user {name:?} has user id 0: that is root under another name; name an unprivileged user, or `root` to run terraform as root knowingly")]
    IsRoot { name: String },
    #[error("--terraform-user needs the server to run as root (it switches to that user for every terraform process); this server runs as {name} (user id {uid}), and terraform runs as {name} already: leave the flag out")]
    NotRoot { uid: u32, name: String },
    #[error("looking up the user {name:?}: {source}")]
    Lookup {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

/// Which user terraform should run as, from `--terraform-user` and the server's own
/// user id: `None` means "as the server's user". A root server switches to
/// [`DEFAULT_USER`] unless told otherwise; a non-root one cannot switch at all.
pub fn choose(flag: Option<&str>, euid: u32) -> Result<Option<String>, RunAsError> {
    match (flag.map(str::trim).filter(|f| !f.is_empty()), euid) {
        (None, 0) => Ok(Some(DEFAULT_USER.to_string())),
        (Some(STAY_ROOT), 0) => Ok(None),
        (Some(name), 0) => Ok(Some(name.to_string())),
        (None, _) => Ok(None),
        // Naming itself (a unit moved off root, say) asks for what already is.
        (Some(name), uid)
            if unix_user::by_name(name)
                .ok()
                .flatten()
                .is_some_and(|a| a.uid == uid) =>
        {
            Ok(None)
        }
        (Some(_), uid) => Err(RunAsError::NotRoot {
            uid,
            name: unix_user::by_uid(uid)
                .ok()
                .flatten()
                .map_or_else(|| format!("uid {uid}"), |a| a.name),
        }),
    }
}

/// The unprivileged user terraform runs as.
#[derive(Debug, Clone)]
pub struct RunAs {
    name: String,
    uid: u32,
    gid: u32,
    /// Supplementary groups too (`docker`, for container templates).
    groups: Vec<libc::gid_t>,
    home: PathBuf,
}

impl RunAs {
    pub fn lookup(name: &str) -> Result<RunAs, RunAsError> {
        let lookup_err = |source| RunAsError::Lookup {
            name: name.to_string(),
            source,
        };
        let account = unix_user::by_name(name)
            .map_err(lookup_err)?
            .ok_or_else(|| RunAsError::NoSuchUser {
                name: name.to_string(),
            })?;
        if account.uid == 0 {
            return Err(RunAsError::IsRoot {
                name: name.to_string(),
            });
        }
        let groups = unix_user::groups(&account).map_err(lookup_err)?;
        Ok(RunAs {
            name: account.name,
            uid: account.uid,
            gid: account.gid,
            groups,
            home: account.home,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The groups of this user that give root in all but name (`docker`, `disk`, …).
    pub fn root_equivalent_groups(&self) -> Vec<String> {
        const ROOT_EQUIVALENT: &[&str] =
            &["root", "docker", "disk", "sudo", "wheel", "lxd", "shadow"];
        self.groups
            .iter()
            .filter_map(|gid| unix_user::group_name(*gid))
            .filter(|name| ROOT_EQUIVALENT.contains(&name.as_str()))
            .collect()
    }

    /// Makes `cmd` run as this user: its groups, group and user are set in the child
    /// before it executes (in that order: after setuid nothing else may be changed),
    /// and `HOME`, `USER` and `LOGNAME` are its own. Call before adding other `pre_exec`
    /// hooks that must run as the user (a parent-death signal is reset by setuid).
    pub fn apply(&self, cmd: &mut std::process::Command) {
        cmd.env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name);
        let (uid, gid, groups) = (self.uid, self.gid, self.groups.clone());
        // SAFETY: setgroups, setgid and setuid are async-signal-safe system calls; the
        // closure allocates nothing (the group list was built before the fork).
        unsafe {
            cmd.pre_exec(move || {
                let check = |rc: libc::c_int| {
                    if rc == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                };
                check(libc::setgroups(groups.len(), groups.as_ptr()))?;
                check(libc::setgid(gid))?;
                check(libc::setuid(uid))
            });
        }
    }

    /// Gives the work dir `dir` (and everything in it) to this user, once: before its
    /// first terraform process, when only the server has written in it. Children first,
    /// the directory itself last, so the user can change nothing in it until the walk
    /// is over; links are changed themselves, never followed.
    pub fn hand_over(&self, dir: &Path) -> std::io::Result<()> {
        if std::fs::symlink_metadata(dir)?.uid() == self.uid {
            return Ok(());
        }
        self.chown_tree(dir)
    }

    fn chown_tree(&self, path: &Path) -> std::io::Result<()> {
        let meta = std::fs::symlink_metadata(path)?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(path)? {
                self.chown_tree(&entry?.path())?;
            }
        }
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid))
    }

    /// Whether this user can enter `dir` (every directory above it must let it pass:
    /// root's home does not).
    pub fn check_enters(&self, dir: &Path) -> Result<(), String> {
        let cd = [
            OsStr::new("-c"),
            OsStr::new("cd -- \"$1\""),
            OsStr::new("sh"),
            dir.as_os_str(),
        ];
        match self.run_quietly(Path::new("/bin/sh"), &cd) {
            Ok(_) => Ok(()),
            Err(_) => Err(format!(
                "terraform runs as the user {}, who cannot reach the data dir {}: every directory above it must let that user pass (mode o+x; root's home does not). Choose a data dir such as /var/lib/hangar",
                self.name,
                dir.display()
            )),
        }
    }

    /// Whether this user can run `program` (`args` should make it print and exit):
    /// checked at start, so a binary it cannot reach is one clear error, not a failed
    /// init in every build.
    pub fn check_runs(&self, program: &Path, args: &[&str]) -> Result<(), String> {
        self.run_quietly(program, args).map_err(|why| {
            format!(
                "terraform runs as the user {}, who cannot run {}: {why}. Install it where that user can read and execute it (e.g. /usr/local/bin)",
                self.name,
                program.display()
            )
        })
    }

    /// Runs `program` as this user with nothing inherited; why it failed (its exit and
    /// last line of stderr), if it did.
    fn run_quietly<A: AsRef<OsStr>>(&self, program: &Path, args: &[A]) -> Result<(), String> {
        let mut cmd = std::process::Command::new(program);
        cmd.args(args)
            .env_clear()
            .current_dir("/")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        self.apply(&mut cmd);
        let out = cmd.output().map_err(|e| e.to_string())?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "{} ({})",
            out.status,
            stderr.lines().last().unwrap_or("").trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_server_switches_unless_told_to_stay_root() {
        assert_eq!(choose(None, 0).unwrap().as_deref(), Some(DEFAULT_USER));
        assert_eq!(
            choose(Some("builder"), 0).unwrap().as_deref(),
            Some("builder")
        );
        assert_eq!(choose(Some(" "), 0).unwrap().as_deref(), Some(DEFAULT_USER));
        assert_eq!(choose(Some("root"), 0).unwrap(), None);
        assert_eq!(choose(None, 1000).unwrap(), None);
        // A server not run as root may name itself (nothing to switch).
        assert_eq!(choose(Some("nobody"), 65534).unwrap(), None);
        let err = choose(Some("builder"), 1000).unwrap_err().to_string();
        assert!(err.contains("needs the server to run as root"), "{err}");
    }

    #[test]
    fn unknown_and_root_accounts_are_refused_with_the_fix() {
        let err = RunAs::lookup("no-such-user-hangar")
            .unwrap_err()
            .to_string();
        assert!(err.contains("useradd --system"), "{err}");
        let err = RunAs::lookup("root").unwrap_err().to_string();
        assert!(err.contains("user id 0"), "{err}");
    }
}
