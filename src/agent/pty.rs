//! Reconnecting terminals for the web: a shell on a PTY that outlives the connection
//! which started it. A browser that reloads within [`IDLE`] reattaches by the same id and
//! first gets the screen's recent output again; a terminal nobody is attached to for
//! that long is ended, and one whose shell exits is gone.
//!
//! On the stream (after the request line): the client sends JSON lines, `{"data":"…"}`
//! for input and `{"height":R,"width":C}` for a resize; the agent sends raw output.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, MasterPty, PtySize};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast;

use super::ssh::SessionEnv;
use crate::tunnel::StreamHandle;

/// How long a terminal nobody is attached to lives on.
pub const IDLE: Duration = Duration::from_secs(5 * 60);
/// Output kept for a reattach.
const REPLAY_BYTES: usize = 64 * 1024;
/// Terminals one agent keeps at most.
const MAX_TERMINALS: usize = 32;
/// The longest input line the agent accepts.
const MAX_INPUT_LINE: usize = 256 * 1024;

/// One message from the client.
#[derive(Debug, Deserialize)]
struct Input {
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    height: Option<u16>,
    #[serde(default)]
    width: Option<u16>,
}

/// A shell on a PTY, with whoever is attached to it.
pub struct Terminal {
    writer: Mutex<Box<dyn Write + Send>>,
    master: Mutex<Box<dyn MasterPty + Send>>,
    /// Recent output, and the channel new output goes out on (`None`: the shell exited).
    /// Both under one lock, so a reattach's replay and its subscription meet exactly.
    replay: Mutex<VecDeque<u8>>,
    output: broadcast::Sender<Option<Arc<[u8]>>>,
    attached: Mutex<(usize, Instant)>,
}

fn terminals() -> &'static Mutex<HashMap<String, Arc<Terminal>>> {
    static T: OnceLock<Mutex<HashMap<String, Arc<Terminal>>>> = OnceLock::new();
    T.get_or_init(Default::default)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An id a browser made: letters, digits and hyphens, at most 64.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn size(rows: u16, cols: u16) -> PtySize {
    PtySize {
        rows: rows.clamp(1, 1000),
        cols: cols.clamp(1, 1000),
        pixel_width: 0,
        pixel_height: 0,
    }
}

/// The terminal `id`, started if it does not exist: a login shell, or the login shell
/// running `command`.
pub fn attach_or_start(
    id: &str,
    rows: u16,
    cols: u16,
    command: Option<&str>,
    env: &SessionEnv,
) -> Result<Arc<Terminal>, String> {
    let mut all = lock(terminals());
    if let Some(t) = all.get(id) {
        return Ok(t.clone());
    }
    if all.len() >= MAX_TERMINALS {
        return Err(format!(
            "this agent already runs {MAX_TERMINALS} terminals: close some (they end {} minutes after their last tab)",
            IDLE.as_secs() / 60
        ));
    }
    let t =
        start(id, rows, cols, command, env).map_err(|e| format!("cannot start a terminal: {e}"))?;
    all.insert(id.to_string(), t.clone());
    Ok(t)
}

fn start(
    id: &str,
    rows: u16,
    cols: u16,
    command: Option<&str>,
    env: &SessionEnv,
) -> anyhow::Result<Arc<Terminal>> {
    let pair = portable_pty::native_pty_system().openpty(size(rows, cols))?;
    let shell = std::env::var("SHELL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            if std::path::Path::new("/bin/bash").exists() {
                "/bin/bash".into()
            } else {
                "/bin/sh".into()
            }
        });
    let mut cmd = CommandBuilder::new(&shell);
    cmd.arg("-l");
    if let Some(command) = command {
        cmd.args(["-c", command]);
    }
    cmd.cwd(&env.dir);
    for w in super::ssh::withheld() {
        cmd.env_remove(w);
    }
    for (k, v) in &env.env {
        cmd.env(k, v);
    }
    cmd.env("TERM", "xterm-256color");
    let mut child = pair.slave.spawn_command(cmd)?;
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader()?;
    let writer = pair.master.take_writer()?;
    let (output, _) = broadcast::channel(256);
    let terminal = Arc::new(Terminal {
        writer: Mutex::new(writer),
        master: Mutex::new(pair.master),
        replay: Mutex::new(VecDeque::with_capacity(REPLAY_BYTES)),
        output,
        attached: Mutex::new((0, Instant::now())),
    });
    let t = terminal.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut replay = lock(&t.replay);
            replay.extend(&buf[..n]);
            let excess = replay.len().saturating_sub(REPLAY_BYTES);
            replay.drain(..excess);
            let _ = t.output.send(Some(Arc::from(&buf[..n])));
        }
    });
    let id = id.to_string();
    let t = terminal.clone();
    let mut killer = child.clone_killer();
    std::thread::spawn(move || {
        let _ = child.wait();
        lock(terminals()).remove(&id);
        let _replay = lock(&t.replay);
        let _ = t.output.send(None);
    });
    // The idle reaper: a terminal nobody has looked at for IDLE ends.
    let t = terminal.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let (n, since) = *lock(&t.attached);
            if n == 0 && since.elapsed() > IDLE {
                let _ = killer.kill();
                return;
            }
            if lock(terminals())
                .values()
                .all(|other| !Arc::ptr_eq(other, &t))
            {
                return;
            }
        }
    });
    Ok(terminal)
}

/// Serves one attachment to a terminal until the client leaves or the shell exits.
pub async fn attach(stream: StreamHandle, terminal: Arc<Terminal>) {
    let (read, mut write) = tokio::io::split(stream);
    let (replay, mut output) = {
        let replay = lock(&terminal.replay);
        (
            replay.iter().copied().collect::<Vec<u8>>(),
            terminal.output.subscribe(),
        )
    };
    {
        let mut a = lock(&terminal.attached);
        a.0 += 1;
    }
    let input = {
        let terminal = terminal.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(read);
            let mut line = Vec::new();
            loop {
                line.clear();
                let mut limited = (&mut lines).take(MAX_INPUT_LINE as u64 + 1);
                match tokio::io::AsyncBufReadExt::read_until(&mut limited, b'\n', &mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line.len() > MAX_INPUT_LINE => break,
                    Ok(_) => {}
                }
                let Ok(input) = serde_json::from_slice::<Input>(&line) else {
                    continue;
                };
                if let (Some(h), Some(w)) = (input.height, input.width) {
                    let _ = lock(&terminal.master).resize(size(h, w));
                }
                if let Some(data) = input.data {
                    let t = terminal.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        let mut w = lock(&t.writer);
                        w.write_all(data.as_bytes()).and_then(|_| w.flush())
                    })
                    .await;
                }
            }
        })
    };
    let mut input = input;
    let mut ok = write.write_all(&replay).await.is_ok();
    while ok {
        tokio::select! {
            msg = output.recv() => match msg {
                Ok(Some(chunk)) => ok = write.write_all(&chunk).await.is_ok(),
                Ok(None) | Err(broadcast::error::RecvError::Closed) => break,
                // A slow reader missed output: it sees what comes next.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
            },
            // The client left.
            _ = &mut input => break,
        }
    }
    let _ = write.shutdown().await;
    input.abort();
    let mut a = lock(&terminal.attached);
    a.0 = a.0.saturating_sub(1);
    a.1 = Instant::now();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_and_plain() {
        assert!(valid_id("0b0c2a4e-1f2d-4c1a-9a0e-3b8f1c2d4e5f"));
        for bad in ["", "a/b", "../x", &"a".repeat(65), "a b"] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
