//! Accounts in the system's user and group databases: the agent's login environment, and
//! the unprivileged user a root server runs terraform as.

use std::ffi::{CStr, CString};
use std::path::PathBuf;

/// One user from the password database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    /// The primary group.
    pub gid: u32,
    pub home: PathBuf,
    /// The login shell; empty when the database names none.
    pub shell: String,
}

/// The account named `name`, if there is one.
pub fn by_name(name: &str) -> std::io::Result<Option<Account>> {
    let Ok(c_name) = CString::new(name) else {
        return Ok(None);
    };
    // SAFETY: `c_name` is NUL-terminated and outlives the call; see `lookup`.
    lookup(
        |entry, buf, len, found| unsafe {
            libc::getpwnam_r(c_name.as_ptr(), entry, buf, len, found)
        },
        account,
    )
}

/// The account with user id `uid`, if there is one.
pub fn by_uid(uid: u32) -> std::io::Result<Option<Account>> {
    // SAFETY: see `lookup`.
    lookup(
        |entry, buf, len, found| unsafe { libc::getpwuid_r(uid, entry, buf, len, found) },
        account,
    )
}

/// The name of group `gid`, if it has one.
pub fn group_name(gid: u32) -> Option<String> {
    // SAFETY: see `lookup`.
    lookup(
        |entry, buf, len, found| unsafe { libc::getgrgid_r(gid, entry, buf, len, found) },
        // SAFETY: getgrgid_r wrote the name into the buffer, alive while this runs.
        |g: &libc::group| unsafe { text(g.gr_name) },
    )
    .ok()
    .flatten()
}

fn account(entry: &libc::passwd) -> Account {
    // SAFETY: the getpw*_r call wrote these strings into the buffer, alive while this runs.
    unsafe {
        Account {
            name: text(entry.pw_name),
            uid: entry.pw_uid,
            gid: entry.pw_gid,
            home: PathBuf::from(text(entry.pw_dir)),
            shell: text(entry.pw_shell),
        }
    }
}

/// A C string of an entry, empty when null.
///
/// # Safety
/// `p` is null or points to a NUL-terminated string that outlives the call.
unsafe fn text(p: *const libc::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// Runs a `get{pw,gr}*_r` call with a buffer that grows until the entry fits, and reads
/// the entry it found (`read`) while its strings, which point into the buffer, live.
/// `E` is `libc::passwd` or `libc::group`: C structs for which all zeroes is valid.
fn lookup<E, T>(
    call: impl Fn(*mut E, *mut libc::c_char, libc::size_t, *mut *mut E) -> libc::c_int,
    read: impl Fn(&E) -> T,
) -> std::io::Result<Option<T>> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: E is a plain C struct (see above); the call fills it with pointers into
        // `buf`, which outlives `read`.
        let mut entry: E = unsafe { std::mem::zeroed() };
        let mut found: *mut E = std::ptr::null_mut();
        let rc = call(&mut entry, buf.as_mut_ptr().cast(), buf.len(), &mut found);
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        return Ok((!found.is_null()).then(|| read(&entry)));
    }
}

/// Every group `account` is in: its primary group and the supplementary ones (`docker`,
/// for instance, which a template that runs containers needs).
pub fn groups(account: &Account) -> std::io::Result<Vec<u32>> {
    let name = CString::new(account.name.as_str())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut count = groups.len() as libc::c_int;
        // SAFETY: `groups` has room for `count` entries; getgrouplist writes at most that
        // many and sets `count` to how many there are.
        let rc = unsafe {
            libc::getgrouplist(name.as_ptr(), account.gid, groups.as_mut_ptr(), &mut count)
        };
        if rc >= 0 {
            groups.truncate(count.max(0) as usize);
            return Ok(groups);
        }
        if groups.len() >= 1 << 16 {
            return Err(std::io::Error::other("too many groups"));
        }
        let wanted = (count.max(0) as usize).max(groups.len() * 2);
        groups.resize(wanted, 0);
    }
}

/// This process's effective user id.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_root_by_name_and_uid() {
        let root = by_name("root").unwrap().expect("every Unix has root");
        assert_eq!(root.uid, 0);
        assert_eq!(by_uid(0).unwrap().unwrap().name, "root");
        assert!(groups(&root).unwrap().contains(&root.gid));
        assert_eq!(group_name(0).as_deref(), Some("root"));
    }

    #[test]
    fn unknown_names_are_none() {
        assert_eq!(by_name("no-such-user-hangar-test").unwrap(), None);
        assert_eq!(by_name("bad\0name").unwrap(), None);
    }
}
