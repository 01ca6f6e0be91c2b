//! Where the CLI keeps its login: `~/.config/hangar/{url,session}` (mode 0600), overridden
//! by `HANGAR_URL` / `HANGAR_SESSION_TOKEN` for CI, and by `HANGAR_CONFIG_DIR` for tests.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::{bail, Context};

use crate::client::Client;

pub fn config_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HANGAR_CONFIG_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("hangar")
}

fn write_private(path: &PathBuf, contents: &str) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}

pub fn save(url: &str, token: &str) -> anyhow::Result<PathBuf> {
    let dir = config_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    write_private(&dir.join("url"), url)?;
    let session = dir.join("session");
    write_private(&session, token)?;
    Ok(session)
}

pub fn clear() {
    let _ = std::fs::remove_file(config_dir().join("session"));
}

fn read(name: &str) -> Option<String> {
    let text = std::fs::read_to_string(config_dir().join(name)).ok()?;
    let text = text.trim().to_string();
    (!text.is_empty()).then_some(text)
}

pub fn url() -> Option<String> {
    std::env::var("HANGAR_URL")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| read("url"))
}

/// A client for the logged-in session, or an error that says how to log in.
pub fn client() -> anyhow::Result<Client> {
    let Some(url) = url() else {
        bail!("you are not logged in: run `hangar login <url>` (or set HANGAR_URL and HANGAR_SESSION_TOKEN)");
    };
    let token = std::env::var("HANGAR_SESSION_TOKEN")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| read("session"));
    if token.is_none() {
        bail!("you are not logged in to {url}: run `hangar login {url}` (or set HANGAR_SESSION_TOKEN)");
    }
    Ok(Client::new(&url, token))
}
