//! Parsing a template's HCL in a child process, so a hostile file can never take the
//! server down.
//!
//! hcl-rs recurses once per nesting level (brackets, parentheses, unary and binary
//! operators, conditionals, interpolations) with no limit of its own: a 2 KB file of 600
//! nested lists overflowed a thread's stack, and a stack overflow aborts the whole
//! process, not just the request. No depth pre-check can cover every construct that
//! recurses, so the parse runs in a child `hangar` (this binary, started with
//! [`CHILD_ENV`]) limited in CPU time, memory and wall time. If it crashes or runs out of
//! a limit, only it dies, and the push gets a 400 naming the file it was parsing.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::model::parameter::{parameters_in, sort_parameters, HclError, Parameter};

/// Set (to anything) in the child's environment: `main` then parses instead of running
/// the CLI.
pub const CHILD_ENV: &str = "HANGAR_ISOLATED_HCL_PARSE";

/// The child's stack: deep enough for any template a person writes (thousands of levels),
/// bounded so that a hostile one ends in an overflow rather than eating memory.
const CHILD_STACK_BYTES: usize = 64 * 1024 * 1024;
const CHILD_CPU_SECONDS: u64 = 20;
const CHILD_ADDRESS_SPACE_BYTES: u64 = 4 * 1024 * 1024 * 1024;
const CHILD_WALL_TIME: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The HCL is wrong: the parser's message, with file and line.
    #[error("{0}")]
    Invalid(#[from] HclError),
    /// The parser died or hit a limit in this file.
    #[error("{file}: the parser gave up on this file ({why}); it is nested too deeply or too large: simplify it")]
    Crashed { file: String, why: String },
    /// The child could not be run at all: the server's problem, not the template's.
    #[error("running the HCL parser: {0}")]
    Spawn(String),
}

#[derive(Serialize, Deserialize)]
enum Outcome {
    Parameters(Vec<Parameter>),
    Invalid { file: String, message: String },
}

/// The parameters `files` declare, parsed by a child of `hangar_binary`.
pub async fn parse_parameters(
    hangar_binary: &Path,
    files: &[(String, String)],
) -> Result<Vec<Parameter>, ParseError> {
    let input = serde_json::to_vec(files).map_err(|e| ParseError::Spawn(e.to_string()))?;
    let mut cmd = tokio::process::Command::new(hangar_binary);
    cmd.env_clear()
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: only async-signal-safe calls (setrlimit) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            limit(libc::RLIMIT_CPU, CHILD_CPU_SECONDS)?;
            limit(libc::RLIMIT_AS, CHILD_ADDRESS_SPACE_BYTES)?;
            limit(libc::RLIMIT_CORE, 0)
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| ParseError::Spawn(format!("{}: {e}", hangar_binary.display())))?;
    let (mut stdin, mut stdout, mut stderr) = (
        child.stdin.take().expect("piped"),
        child.stdout.take().expect("piped"),
        child.stderr.take().expect("piped"),
    );
    let run = async {
        // The child may die before reading everything; its exit status says why.
        let write = async {
            let _ = stdin.write_all(&input).await;
            drop(stdin);
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (_, _, _, status) = tokio::join!(
            write,
            stdout.read_to_end(&mut out),
            stderr.read_to_end(&mut err),
            child.wait()
        );
        (out, err, status)
    };
    let (out, err, status) = tokio::time::timeout(CHILD_WALL_TIME, run)
        .await
        .map_err(|_| ParseError::Crashed {
            file: "the template".into(),
            why: format!("no answer within {}s", CHILD_WALL_TIME.as_secs()),
        })?;
    let status = status.map_err(|e| ParseError::Spawn(e.to_string()))?;
    if status.success() {
        return match serde_json::from_slice(&out) {
            Ok(Outcome::Parameters(p)) => Ok(p),
            Ok(Outcome::Invalid { file, message }) => {
                Err(ParseError::Invalid(HclError { file, message }))
            }
            Err(e) => Err(ParseError::Spawn(format!("unreadable answer: {e}"))),
        };
    }
    // The child names each file on stderr before parsing it: the last one is the culprit.
    let err = String::from_utf8_lossy(&err);
    let file = err
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("parsing "))
        .unwrap_or("the template")
        .to_string();
    use std::os::unix::process::ExitStatusExt;
    let why = match status.signal() {
        Some(libc::SIGSEGV) | Some(libc::SIGBUS) | Some(libc::SIGABRT) => "it crashed".into(),
        Some(libc::SIGXCPU) | Some(libc::SIGKILL) => "it used too much CPU time".into(),
        _ => format!("it exited with {status}"),
    };
    Err(ParseError::Crashed { file, why })
}

fn limit(resource: libc::__rlimit_resource_t, value: u64) -> std::io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: setrlimit reads the struct we pass and nothing else.
    if unsafe { libc::setrlimit(resource, &lim) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The child's side: files as JSON on stdin, an [`Outcome`] as JSON on stdout.
pub fn child_main() -> std::process::ExitCode {
    let run = || -> Result<Outcome, String> {
        let mut input = Vec::new();
        std::io::stdin()
            .read_to_end(&mut input)
            .map_err(|e| e.to_string())?;
        let files: Vec<(String, String)> =
            serde_json::from_slice(&input).map_err(|e| e.to_string())?;
        let parse = move || {
            let mut found = Vec::new();
            for (file, text) in &files {
                eprintln!("parsing {file}");
                match parameters_in(file, text) {
                    Ok(p) => found.extend(p),
                    Err(HclError { file, message }) => {
                        return Outcome::Invalid { file, message };
                    }
                }
            }
            sort_parameters(&mut found);
            Outcome::Parameters(found)
        };
        std::thread::Builder::new()
            .stack_size(CHILD_STACK_BYTES)
            .spawn(parse)
            .map_err(|e| e.to_string())?
            .join()
            .map_err(|_| "the parser panicked".to_string())
    };
    match run().and_then(|o| serde_json::to_vec(&o).map_err(|e| e.to_string())) {
        Ok(out) => {
            let _ = std::io::stdout().write_all(&out);
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hangar: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
