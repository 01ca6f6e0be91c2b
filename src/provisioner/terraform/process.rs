//! One terraform process: spawned with its output going to files in the work dir, those
//! files tailed into log lines, and stopped on cancel or timeout (SIGINT, a grace period,
//! then SIGKILL to its whole process group).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::output::{join_errors, now_ms, parse_line, strip_ansi};
use super::{Diagnostic, LogLevel, LogLine, RunOutput, Stage, Terraform, TerraformError};
use crate::provisioner::untrusted_fs;

/// Output lines after the process exits are drained for at most this long: a background
/// process started by a local-exec may hold the pipe open forever.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How many stderr lines are kept to explain a failure that printed no diagnostic.
const STDERR_TAIL: usize = 20;

/// Output files terraform writes in a work dir (never part of the configuration), named
/// `.hangar-output-<stage>-<random>.out|.err`.
pub const OUTPUT_PREFIX: &str = ".hangar-output-";

/// `close_range`'s flag that marks descriptors close-on-exec instead of closing them.
const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;

/// What happens to terraform's stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stdout {
    /// `-json` lines, streamed as log lines.
    Lines,
    /// One document (`graph`, `show -json`), returned whole.
    Capture,
    /// Like `Capture`, and a non-zero exit is not an error: `validate -json` exits 1 on
    /// invalid configuration and its document is the better error.
    CaptureAnyExit,
}

enum Interrupt {
    Canceled,
    TimedOut,
}

impl Terraform {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn exec(
        &self,
        dir: &Path,
        stage: Stage,
        args: &[&str],
        stdout_mode: Stdout,
        sink: &mut (dyn FnMut(LogLine) + Send),
        cancel: &CancellationToken,
    ) -> Result<RunOutput, TerraformError> {
        let started = Instant::now();
        if let Some(user) = &self.run_as {
            user.hand_over(dir).map_err(TerraformError::io(
                "handing the work dir to terraform's user:",
                dir,
            ))?;
        }
        // Terraform writes to files in the work dir, which the runner tails, not to pipes:
        // if the server dies, a pipe breaks and terraform would die on its next write
        // (Go exits on EPIPE to stdout) before saving its state. A file never breaks.
        let output_file = |suffix: &str| {
            tempfile::Builder::new()
                .prefix(&format!("{OUTPUT_PREFIX}{stage}-"))
                .suffix(suffix)
                .tempfile_in(dir)
                .map_err(TerraformError::io("creating an output file in", dir))
        };
        let (out_file, err_file) = (output_file(".out")?, output_file(".err")?);
        let mut cmd = tokio::process::Command::new(&self.binary);
        cmd.args(args)
            .current_dir(dir)
            .env_clear()
            .envs(self.env.vars())
            .stdin(Stdio::null())
            .stdout(
                out_file
                    .reopen()
                    .map_err(TerraformError::io("opening output in", dir))?,
            )
            .stderr(
                err_file
                    .reopen()
                    .map_err(TerraformError::io("opening output in", dir))?,
            )
            .kill_on_drop(true)
            // Its own process group, so a kill reaches providers and local-exec children
            // too; SIGINT still goes to terraform alone, which stops them in order.
            .process_group(0);
        // Before the hook below: a parent-death signal does not survive setuid.
        if let Some(user) = &self.run_as {
            user.apply(cmd.as_std_mut());
        }
        // If the server dies (kill -9, OOM), terraform is interrupted as on a cancel: it
        // stops cleanly and writes its state instead of running on unattended, and the
        // next start recovers that state from the work dir.
        #[cfg(target_os = "linux")]
        // SAFETY: prctl is async-signal-safe and touches only the child being set up.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT);
                // Descriptors the server inherited without close-on-exec (a socket from
                // its supervisor, say) are not terraform's: closed at exec. Kernels
                // before 5.11 lack the flag; nothing else depends on it.
                libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC);
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|source| TerraformError::Spawn {
            binary: self.binary.display().to_string(),
            source,
        })?;
        let pid = child.id().map(|p| p as i32);
        // If this future is dropped mid-run (job task aborted, server shutting down),
        // kill_on_drop would reach terraform only; the guard takes its whole group.
        let mut group_guard = GroupGuard(pid);

        let (tx, mut rx) = mpsc::unbounded_channel::<(bool, String)>();
        let (exited_tx, exited) = tokio::sync::watch::channel(false);
        // Lines mode streams stdout; the capture modes read the whole file at the end.
        let captured = if stdout_mode == Stdout::Lines {
            tokio::spawn(tail_lines(
                reader(&out_file, dir)?,
                true,
                tx.clone(),
                exited.clone(),
            ));
            None
        } else {
            Some(reader(&out_file, dir)?)
        };
        tokio::spawn(tail_lines(reader(&err_file, dir)?, false, tx, exited));

        let mut state = LineState::default();
        let mut handle = |is_stdout: bool, raw: String, state: &mut LineState| {
            let (line, diag) = if is_stdout {
                parse_line(stage, &raw)
            } else {
                let text = strip_ansi(&raw).trim_end().to_string();
                state.stderr_tail.push(text.clone());
                if state.stderr_tail.len() > STDERR_TAIL {
                    state.stderr_tail.remove(0);
                }
                (
                    LogLine {
                        stage,
                        level: LogLevel::Warn,
                        text,
                        at_ms: now_ms(),
                    },
                    None,
                )
            };
            if line.text.trim().is_empty() {
                return;
            }
            if let Some(d) = diag {
                state.diagnostics.push(d);
            }
            state.lines += 1;
            sink(line);
        };

        let timeout = tokio::time::sleep(self.timeout);
        tokio::pin!(timeout);
        // Armed (reset) only once SIGINT has been sent.
        let kill_at = tokio::time::sleep(Duration::from_secs(365 * 24 * 3600));
        tokio::pin!(kill_at);
        let mut interrupted: Option<Interrupt> = None;
        let mut killed = false;
        let status = loop {
            tokio::select! {
                biased;
                Some((is_stdout, raw)) = rx.recv() => handle(is_stdout, raw, &mut state),
                status = child.wait() => break status,
                _ = cancel.cancelled(), if interrupted.is_none() => {
                    interrupted = Some(Interrupt::Canceled);
                    signal(pid, libc::SIGINT);
                    kill_at.as_mut().reset(tokio::time::Instant::now() + self.grace);
                }
                _ = &mut timeout, if interrupted.is_none() => {
                    interrupted = Some(Interrupt::TimedOut);
                    signal(pid, libc::SIGINT);
                    kill_at.as_mut().reset(tokio::time::Instant::now() + self.grace);
                }
                _ = &mut kill_at, if interrupted.is_some() && !killed => {
                    killed = true;
                    // The whole group: providers and local-exec children must not outlive
                    // a build that was given up on.
                    signal(pid.map(|p| -p), libc::SIGKILL);
                }
            }
        }
        .map_err(TerraformError::io("waiting for terraform in", dir))?;
        // The tails read what is left and finish.
        let _ = exited_tx.send(true);
        // Terraform has exited. After a normal run, what is left in its group (an agent a
        // local-exec started in the background, as the `local` template does) is meant to
        // outlive it. After an interrupt, what is left are provisioner commands terraform
        // gave up on mid-way: they go with the build (a detached agent, in its own
        // session, is not in this group and stays).
        if interrupted.is_some() && !killed {
            signal(pid.map(|p| -p), libc::SIGKILL);
        }
        group_guard.0 = None;

        let drain = async {
            while let Some((is_stdout, raw)) = rx.recv().await {
                handle(is_stdout, raw, &mut state);
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain).await;
        // Bounded: another process of terraform's user may hold the file and keep
        // writing (a document larger than this fails the run).
        let stdout = match captured {
            Some(file) => {
                let read = tokio::task::spawn_blocking(move || {
                    untrusted_fs::read_bounded(file, untrusted_fs::MAX_READ_BYTES)
                });
                match read.await {
                    Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                        return Err(TerraformError::Output {
                            stage,
                            reason: format!("its output is {e}"),
                        });
                    }
                    _ => String::new(),
                }
            }
            None => String::new(),
        };
        drop((out_file, err_file));

        match interrupted {
            Some(Interrupt::Canceled) => return Err(TerraformError::Canceled { stage }),
            Some(Interrupt::TimedOut) => {
                return Err(TerraformError::TimedOut {
                    stage,
                    after: self.timeout,
                })
            }
            None => {}
        }
        if !status.success() && stdout_mode != Stdout::CaptureAnyExit {
            let mut message = join_errors(&state.diagnostics);
            if message.is_empty() {
                message = state.stderr_tail.join("\n");
            }
            if message.is_empty() && !stdout.is_empty() {
                message = stdout.trim().to_string();
            }
            if message.is_empty() {
                message = "terraform printed no error; see the build logs".into();
            }
            if let Some(user) = self
                .run_as
                .as_ref()
                .filter(|_| message.contains("ermission denied"))
            {
                message.push_str(&format!(
                    "\n(terraform runs as the user {}, not as the server's: that user needs access to the path above; see --terraform-user)",
                    user.name()
                ));
            }
            return Err(TerraformError::Failed {
                stage,
                exit_code: status.code().unwrap_or(-1),
                message,
            });
        }
        Ok(RunOutput {
            diagnostics: state.diagnostics,
            stdout,
            lines: state.lines,
            elapsed: started.elapsed(),
            exit_code: status.code().unwrap_or(-1),
        })
    }
}

/// A reader of an output file at its start, through the descriptor the server created
/// (the work dir may belong to terraform's user, who could swap the name for a link).
fn reader(file: &tempfile::NamedTempFile, dir: &Path) -> Result<std::fs::File, TerraformError> {
    file.as_file()
        .try_clone()
        .map_err(TerraformError::io("reading output in", dir))
}

/// SIGKILLs a process group when dropped while still armed.
struct GroupGuard(Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        signal(self.0.map(|p| -p), libc::SIGKILL);
    }
}

#[derive(Default)]
struct LineState {
    diagnostics: Vec<Diagnostic>,
    stderr_tail: Vec<String>,
    lines: usize,
}

fn signal(pid: Option<i32>, sig: i32) {
    if let Some(pid) = pid {
        // SAFETY: kill(2) has no memory effects; a stale pid at worst yields ESRCH.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// The log lines of the output files in `dir`, oldest file first: what a run wrote,
/// including what no server was alive to store.
pub fn read_output_files(dir: &Path) -> Vec<LogLine> {
    let mut files: Vec<(std::time::SystemTime, PathBuf, Stage, bool)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let rest = name.strip_prefix(OUTPUT_PREFIX)?;
            let stage = Stage::ALL
                .into_iter()
                .find(|s| rest.starts_with(&format!("{s}-")))?;
            let modified = e.metadata().and_then(|m| m.modified()).ok()?;
            Some((modified, e.path(), stage, name.ends_with(".out")))
        })
        .collect();
    files.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut lines = Vec::new();
    for (_, path, stage, is_stdout) in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let text = untrusted_fs::read(dir, name, untrusted_fs::MAX_READ_BYTES)
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        for raw in text.lines().filter(|l| !l.trim().is_empty()) {
            lines.push(if is_stdout {
                parse_line(stage, raw).0
            } else {
                LogLine {
                    stage,
                    level: LogLevel::Warn,
                    text: strip_ansi(raw).trim_end().to_string(),
                    at_ms: now_ms(),
                }
            });
        }
    }
    lines.retain(|l| !l.text.trim().is_empty());
    lines
}

/// Follows a file terraform is writing, sending each complete line; once `exited` turns
/// true it reads what is left (a last line without a newline included) and stops.
/// Lines as lossy UTF-8: a provider printing binary must not end the log stream.
async fn tail_lines(
    file: std::fs::File,
    is_stdout: bool,
    tx: mpsc::UnboundedSender<(bool, String)>,
    mut exited: tokio::sync::watch::Receiver<bool>,
) {
    let mut file = tokio::fs::File::from_std(file);
    let mut pending = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let done = *exited.borrow();
        match file.read(&mut chunk).await {
            Ok(0) if done => break,
            Ok(0) => {
                // Nothing new: wait for more output or terraform's exit.
                let _ = tokio::time::timeout(Duration::from_millis(25), exited.changed()).await;
            }
            Ok(n) => {
                pending.extend_from_slice(&chunk[..n]);
                while let Some(at) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=at).collect();
                    let text = String::from_utf8_lossy(&line).trim_end().to_string();
                    if tx.send((is_stdout, text)).is_err() {
                        return;
                    }
                }
            }
            Err(_) => break,
        }
    }
    if !pending.is_empty() {
        let _ = tx.send((
            is_stdout,
            String::from_utf8_lossy(&pending).trim_end().to_string(),
        ));
    }
}
