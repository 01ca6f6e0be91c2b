//! Running the manifest's scripts: startup and `run_on_start` scripts (→ ready or
//! start_error/start_timeout), shutdown and `run_on_stop` scripts (→ off or
//! shutdown_error/shutdown_timeout), and metadata scripts on their intervals.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use super::protocol::{AgentSpec, Manifest, MetadataResult, MetadataSpec};
use super::Reporter;
use crate::model::agent::Lifecycle;
use crate::model::now_ms;
use crate::provider::contract;

/// How long output readers may keep going after the script exited: a script that started
/// a daemon leaves it holding the pipe, and we must not wait for the daemon.
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// Where and how scripts run.
pub struct ScriptContext {
    pub dir: PathBuf,
    /// Added to the agent's own environment (minus its token).
    pub env: Vec<(String, String)>,
    pub reporter: Reporter,
}

/// The interpreter of a `#!` line and its one optional argument (Linux passes everything
/// after the interpreter as a single argument).
fn shebang(script: &str) -> (&str, Option<&str>) {
    let line = script
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("#!")
        .trim();
    match line.split_once(char::is_whitespace) {
        Some((interpreter, arg)) => (interpreter, Some(arg.trim()).filter(|a| !a.is_empty())),
        None => (line, None),
    }
}

/// What scripts and sessions add to the agent's environment (its token excepted): who
/// and where they are, and the template's `env`.
pub fn session_env(manifest: &Manifest) -> Vec<(String, String)> {
    let mut env = vec![
        (
            contract::WORKSPACE_NAME.to_string(),
            manifest.workspace_name.clone(),
        ),
        (
            contract::WORKSPACE_OWNER_NAME.to_string(),
            manifest.owner_name.clone(),
        ),
        ("HANGAR_AGENT_NAME".to_string(), manifest.agent_name.clone()),
        ("HANGAR".to_string(), "true".to_string()),
    ];
    // `hangar stat`, `hangar external-auth …` in sessions and scripts; the template's
    // own PATH, if it sets one, still wins.
    if let Some(dir) = cli_dir() {
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
        env.push(("PATH".to_string(), format!("{}:{path}", dir.display())));
    }
    env.extend(
        manifest
            .spec
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    env
}

/// A directory holding `hangar`, a link to this agent's own binary (whose name is
/// versioned, in a cache dir), made beside it; None where it cannot be (a binary
/// installed where this user may not write: then it is usually on PATH already).
fn cli_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    if exe.file_name()? == "hangar" {
        return exe.parent().map(Path::to_path_buf);
    }
    let dir = exe.parent()?.join("bin");
    std::fs::create_dir_all(&dir).ok()?;
    // Replaced in one rename: a session starting meanwhile sees the old link or the new.
    let staged = dir.join(format!(".hangar.{}", std::process::id()));
    let _ = std::fs::remove_file(&staged);
    std::os::unix::fs::symlink(&exe, &staged).ok()?;
    std::fs::rename(&staged, dir.join("hangar")).ok()?;
    Some(dir)
}

impl ScriptContext {
    /// `env` is what sessions get too ([`session_env`]).
    pub fn new(env: Vec<(String, String)>, dir: PathBuf, reporter: Reporter) -> ScriptContext {
        ScriptContext { dir, env, reporter }
    }

    fn command(&self, script: &str) -> std::io::Result<(Command, Option<tempfile::TempPath>)> {
        // A script with a shebang runs with its interpreter (as a file); others with sh.
        let (mut cmd, file) = if script.starts_with("#!") {
            use std::io::Write;
            use std::os::unix::fs::PermissionsExt;
            let mut f = tempfile::Builder::new()
                .prefix("hangar-script-")
                .tempfile()?;
            f.write_all(script.as_bytes())?;
            f.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o700))?;
            let path = f.into_temp_path();
            // Run the interpreter on the file rather than exec the file itself: exec of a
            // file just written fails with ETXTBSY when another thread forks while the
            // write handle is still open, and this agent runs scripts concurrently.
            let (interpreter, arg) = shebang(script);
            let mut c = Command::new(interpreter);
            c.args(arg).arg(&*path);
            (c, Some(path))
        } else {
            let mut c = Command::new("sh");
            c.arg("-c").arg(script);
            (c, None)
        };
        cmd.current_dir(&self.dir)
            // Scripts are the user's code: they get no agent token.
            .env_remove(contract::AGENT_TOKEN)
            .env_remove("CODER_AGENT_TOKEN")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Its own process group, so a timeout or shutdown kills everything it started.
        cmd.as_std_mut().process_group(0);
        Ok((cmd, file))
    }
}

/// Kills a script's whole process group when dropped while armed (timeout, abort).
struct GroupKiller(Option<i32>);

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            // SAFETY: plain syscall; a stale pgid at worst fails with ESRCH.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

fn forward<R: AsyncRead + Unpin + Send + 'static>(
    reader: R,
    reporter: Reporter,
    source: String,
    level: &'static str,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']).to_string();
                    reporter.log(&source, level, line);
                }
            }
        }
    })
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed(String),
    TimedOut,
}

/// Runs one script, streaming its output as log lines from `source`.
pub async fn run_logged(
    ctx: &ScriptContext,
    source: &str,
    script: &str,
    timeout: Option<Duration>,
) -> Outcome {
    let (mut cmd, _file) = match ctx.command(script) {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(format!("preparing the script: {e}")),
    };
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("cannot start the script: {e}");
            ctx.reporter.log(source, "error", msg.clone());
            return Outcome::Failed(msg);
        }
    };
    let mut killer = GroupKiller(child.id().map(|p| p as i32));
    let out = forward(
        child.stdout.take().expect("piped stdout"),
        ctx.reporter.clone(),
        source.to_string(),
        "info",
    );
    let err = forward(
        child.stderr.take().expect("piped stderr"),
        ctx.reporter.clone(),
        source.to_string(),
        "error",
    );
    let waited = match timeout {
        Some(t) => tokio::time::timeout(t, child.wait()).await.ok(),
        None => Some(child.wait().await),
    };
    let outcome = match waited {
        None => {
            // Dropping the armed killer ends the whole group.
            drop(killer);
            ctx.reporter.log(
                source,
                "error",
                "the script timed out and was killed".into(),
            );
            Outcome::TimedOut
        }
        Some(status) => {
            // Exited by itself: what it left running in the background is the user's.
            killer.0 = None;
            match status {
                Ok(s) if s.success() => Outcome::Succeeded,
                Ok(s) => Outcome::Failed(format!("the script exited with {s}")),
                Err(e) => Outcome::Failed(format!("waiting for the script: {e}")),
            }
        }
    };
    for reader in [out, err] {
        let abort = reader.abort_handle();
        if tokio::time::timeout(OUTPUT_GRACE, reader).await.is_err() {
            abort.abort();
        }
    }
    if let Outcome::Failed(why) = &outcome {
        ctx.reporter.log(source, "error", why.clone());
    }
    outcome
}

fn secs(n: u64) -> Option<Duration> {
    (n > 0).then(|| Duration::from_secs(n))
}

/// Runs the given scripts concurrently under one overall timeout and says how it went.
async fn run_all(
    ctx: &ScriptContext,
    scripts: Vec<(String, String, Option<Duration>)>,
    overall: Option<Duration>,
) -> Outcome {
    let runs = futures::future::join_all(
        scripts
            .iter()
            .map(|(source, script, timeout)| run_logged(ctx, source, script, *timeout)),
    );
    let results = match overall {
        Some(t) => match tokio::time::timeout(t, runs).await {
            Ok(r) => r,
            Err(_) => return Outcome::TimedOut,
        },
        None => runs.await,
    };
    if results.contains(&Outcome::TimedOut) {
        return Outcome::TimedOut;
    }
    match results.into_iter().find(|r| *r != Outcome::Succeeded) {
        Some(failed) => failed,
        None => Outcome::Succeeded,
    }
}

/// The startup script and `run_on_start` scripts → the lifecycle that follows.
pub async fn run_start(ctx: &ScriptContext, spec: &AgentSpec) -> Lifecycle {
    let mut scripts = Vec::new();
    if !spec.startup_script.trim().is_empty() {
        scripts.push((
            "startup_script".to_string(),
            spec.startup_script.clone(),
            None,
        ));
    }
    for s in spec.scripts.iter().filter(|s| s.run_on_start) {
        scripts.push((s.display_name.clone(), s.script.clone(), secs(s.timeout)));
    }
    for d in &spec.devcontainers {
        scripts.push((
            format!("devcontainer {}", d.workspace_folder),
            devcontainer_script(d),
            None,
        ));
    }
    match run_all(ctx, scripts, secs(spec.startup_script_timeout)).await {
        Outcome::Succeeded => Lifecycle::Ready,
        Outcome::TimedOut => Lifecycle::StartTimeout,
        Outcome::Failed(_) => Lifecycle::StartError,
    }
}

/// Brings a Dev Container up with the `devcontainer` CLI; where the CLI or Docker is
/// missing, says so in the log (the workspace still starts: the container is extra).
pub fn devcontainer_script(d: &crate::wire::agent::DevcontainerSpec) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let mut up = format!(
        "devcontainer up --workspace-folder {}",
        quote(&d.workspace_folder)
    );
    if !d.config_path.is_empty() {
        up.push_str(&format!(" --config {}", quote(&d.config_path)));
    }
    format!(
        "if ! command -v devcontainer >/dev/null 2>&1; then\n  echo 'not started: the devcontainer CLI is not installed in this workspace (npm install -g @devcontainers/cli)' >&2\n  exit 0\nfi\nif ! command -v docker >/dev/null 2>&1; then\n  echo 'not started: docker is not installed in this workspace' >&2\n  exit 0\nfi\nexec {up}\n"
    )
}

/// The shutdown script and `run_on_stop` scripts → the final lifecycle.
pub async fn run_stop(ctx: &ScriptContext, spec: &AgentSpec) -> Lifecycle {
    let mut scripts = Vec::new();
    if !spec.shutdown_script.trim().is_empty() {
        scripts.push((
            "shutdown_script".to_string(),
            spec.shutdown_script.clone(),
            None,
        ));
    }
    for s in spec.scripts.iter().filter(|s| s.run_on_stop) {
        scripts.push((s.display_name.clone(), s.script.clone(), secs(s.timeout)));
    }
    match run_all(ctx, scripts, secs(spec.shutdown_script_timeout)).await {
        Outcome::Succeeded => Lifecycle::Off,
        Outcome::TimedOut => Lifecycle::ShutdownTimeout,
        Outcome::Failed(_) => Lifecycle::ShutdownError,
    }
}

/// Runs a metadata script once: its trimmed stdout is the value.
pub async fn collect(ctx: &ScriptContext, m: &MetadataSpec) -> MetadataResult {
    let timeout = Duration::from_secs(if m.timeout > 0 {
        m.timeout
    } else {
        m.interval.max(1)
    });
    let result = |value: String, error: String| MetadataResult {
        key: m.key.clone(),
        value,
        error,
        collected_at: now_ms(),
    };
    let (mut cmd, _file) = match ctx.command(&m.script) {
        Ok(c) => c,
        Err(e) => return result(String::new(), format!("preparing the script: {e}")),
    };
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return result(String::new(), format!("cannot start the script: {e}")),
    };
    let mut killer = GroupKiller(child.id().map(|p| p as i32));
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => result(
            String::new(),
            format!("timed out after {} s", timeout.as_secs()),
        ),
        Ok(Err(e)) => result(String::new(), format!("running the script: {e}")),
        Ok(Ok(out)) => {
            killer.0 = None;
            let value = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() {
                result(value, String::new())
            } else {
                let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
                result(value, format!("exited with {}: {stderr}", out.status))
            }
        }
    }
}

/// One task per metadata item, each on its own interval.
pub fn spawn_metadata(
    ctx: &Arc<ScriptContext>,
    items: &[MetadataSpec],
) -> Vec<tokio::task::AbortHandle> {
    items
        .iter()
        .cloned()
        .map(|m| {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let every = Duration::from_secs(m.interval.max(1));
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let r = collect(&ctx, &m).await;
                    ctx.reporter.metadata(r);
                }
            })
            .abort_handle()
        })
        .collect()
}

/// Runs the scripts that have a `cron` schedule, each at its times, until dropped (the
/// agent drops it at shutdown, killing a run in progress). A bad schedule is reported in
/// that script's log and skipped.
pub async fn run_cron(ctx: &ScriptContext, scripts: &[super::protocol::ScriptSpec]) {
    let runs = scripts.iter().filter_map(|s| {
        let cron = s.cron.as_deref()?.trim();
        if cron.is_empty() {
            return None;
        }
        let schedule = match super::cron::Schedule::parse(cron) {
            Ok(schedule) => schedule,
            Err(e) => {
                ctx.reporter.log(&s.display_name, "error", e);
                return None;
            }
        };
        Some(async move {
            loop {
                let now = now_ms();
                let Some(next) = schedule.next_after(now / 1000) else {
                    ctx.reporter.log(
                        &s.display_name,
                        "error",
                        "this cron schedule never matches again".into(),
                    );
                    return;
                };
                tokio::time::sleep(Duration::from_millis((next * 1000 - now).max(0) as u64)).await;
                run_logged(ctx, &s.display_name, &s.script, secs(s.timeout)).await;
            }
        })
    });
    futures::future::join_all(runs).await;
}

#[cfg(test)]
mod shebang_tests {
    #[test]
    fn reads_interpreter_and_its_one_argument() {
        assert_eq!(super::shebang("#!/bin/sh\necho hi"), ("/bin/sh", None));
        assert_eq!(
            super::shebang("#!/usr/bin/env bash\n"),
            ("/usr/bin/env", Some("bash"))
        );
        assert_eq!(
            super::shebang("#! /bin/bash -e -u\n"),
            ("/bin/bash", Some("-e -u"))
        );
    }
}

#[cfg(test)]
mod devcontainer_tests {
    use crate::wire::agent::DevcontainerSpec;

    #[test]
    fn a_missing_cli_is_reported_not_fatal() {
        let script = super::devcontainer_script(&DevcontainerSpec {
            workspace_folder: "/w/it's here".into(),
            config_path: String::new(),
        });
        assert!(
            script.contains(r"--workspace-folder '/w/it'\''s here'"),
            "{script}"
        );
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .env("PATH", "/nonexistent")
            .output()
            .unwrap();
        assert!(out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("devcontainer CLI is not installed"), "{err}");
    }
}
