//! Runs the terraform CLI for a build: finding it, giving it a clean environment,
//! turning its `-json` output into log lines, and stopping it on cancel or timeout.
//!
//! Every terraform process costs ~0.1 s of CPU, so this module offers exactly the calls a
//! build needs (init, with a cache; graph; plan + show; apply) and reads the final state
//! from the state file instead of running `terraform show` again.

mod env;
mod init_cache;
mod output;
mod process;
pub mod run_as;

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use env::{allow_listed, TerraformEnv};
pub use init_cache::{InitCache, InitOutcome};
pub use output::{parse_line, strip_ansi, Diagnostic, LogLevel, LogLine, Stage};
pub use process::{read_output_files, OUTPUT_PREFIX};

use output::{join_errors, now_ms, parse_diagnostic};
use process::Stdout;

/// How long terraform gets after SIGINT to stop providers and write its state before it is
/// killed. Killing earlier risks losing track of resources that are being created.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// A run that takes longer than this is stopped like a cancel.
pub use crate::config::DEFAULT_JOB_TIMEOUT as DEFAULT_TIMEOUT;

pub use super::workdir::STATE_FILE;

/// The saved plan `plan_json` writes and `apply_saved` applies.
pub const PLAN_FILE: &str = "plan.bin";

#[derive(Debug, thiserror::Error)]
pub enum TerraformError {
    #[error("terraform was not found: HANGAR_TERRAFORM is not set and neither `terraform` nor `tofu` is on PATH ({path}); install Terraform (https://developer.hashicorp.com/terraform/install) or OpenTofu, or set HANGAR_TERRAFORM=/path/to/terraform")]
    NotFound { path: String },
    #[error("HANGAR_TERRAFORM is set to {value:?}, which is not an executable file; point it at a terraform or tofu binary, or unset it to search PATH")]
    BadOverride { value: String },
    #[error("preparing terraform's configuration in {dir}: {reason}")]
    Setup { dir: String, reason: String },
    #[error("could not start {binary}: {source}; check that it is an executable terraform binary")]
    Spawn {
        binary: String,
        #[source]
        source: std::io::Error,
    },
    #[error("terraform {stage} failed (exit code {exit_code}): {message}")]
    Failed {
        stage: Stage,
        exit_code: i32,
        message: String,
    },
    #[error("terraform {stage} was canceled")]
    Canceled { stage: Stage },
    #[error("terraform {stage} did not finish within {after:?} and was stopped; raise the build timeout if the template is expected to take this long")]
    TimedOut { stage: Stage, after: Duration },
    #[error("terraform {stage} printed output Hangar could not read: {reason}")]
    Output { stage: Stage, reason: String },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl TerraformError {
    /// The failure kind a job records (see STYLE.md: failures sorted into kinds).
    pub fn kind(&self) -> &'static str {
        match self {
            TerraformError::NotFound { .. } | TerraformError::BadOverride { .. } => {
                "terraform_missing"
            }
            TerraformError::Canceled { .. } => "canceled",
            TerraformError::TimedOut { .. } => "timeout",
            TerraformError::Failed { stage, .. } => match stage {
                Stage::Init => "init_failed",
                Stage::Plan => "plan_failed",
                Stage::Apply => "apply_failed",
                _ => "terraform_failed",
            },
            _ => "internal",
        }
    }

    fn io(action: &'static str, path: impl AsRef<Path>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.as_ref().display().to_string();
        move |source| TerraformError::Io {
            action,
            path,
            source,
        }
    }
}

/// What a successful run produced.
#[derive(Debug, Clone, Default)]
pub struct RunOutput {
    /// Warnings (errors make the run fail).
    pub diagnostics: Vec<Diagnostic>,
    /// Only for commands whose stdout is a document (`graph`, `show -json`).
    pub stdout: String,
    pub lines: usize,
    pub elapsed: Duration,
    pub exit_code: i32,
}

/// A plan saved in the work dir plus its JSON form (`terraform show -json`).
#[derive(Clone)]
pub struct Plan {
    pub file: PathBuf,
    /// Holds sensitive values in clear (terraform only flags them in `*_sensitive`):
    /// read what is needed from it, never log or store it whole.
    pub json: serde_json::Value,
}

impl fmt::Debug for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plan")
            .field("file", &self.file)
            .field("json", &"***")
            .finish()
    }
}

/// A located terraform (or tofu) binary with the environment it runs in.
#[derive(Debug, Clone)]
pub struct Terraform {
    binary: PathBuf,
    env: TerraformEnv,
    /// Time between SIGINT and SIGKILL on cancel or timeout.
    pub grace: Duration,
    /// Per-run limit.
    pub timeout: Duration,
    /// The user terraform runs as when it is not this process's (see `run_as`).
    run_as: Option<run_as::RunAs>,
}

impl Terraform {
    /// `HANGAR_TERRAFORM`, else `terraform` on PATH, else `tofu` on PATH.
    pub fn locate() -> Result<Terraform, TerraformError> {
        Self::locate_from(
            std::env::var_os("HANGAR_TERRAFORM"),
            std::env::var_os("PATH"),
        )
    }

    /// `locate` with the two inputs passed explicitly, so tests need not change the
    /// process environment.
    pub fn locate_from(
        override_: Option<OsString>,
        path: Option<OsString>,
    ) -> Result<Terraform, TerraformError> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let binary = match override_.filter(|v| !v.is_empty()) {
            Some(value) => {
                let as_path = PathBuf::from(&value);
                let found = if as_path.components().count() > 1 {
                    is_executable(&as_path).then_some(as_path)
                } else {
                    // A bare name (`tofu`) is looked up on PATH.
                    which::which_in(&value, path.as_ref(), &cwd).ok()
                };
                found.ok_or_else(|| TerraformError::BadOverride {
                    value: value.to_string_lossy().into_owned(),
                })?
            }
            None => which::which_in("terraform", path.as_ref(), &cwd)
                .or_else(|_| which::which_in("tofu", path.as_ref(), &cwd))
                .map_err(|_| TerraformError::NotFound {
                    path: path
                        .as_ref()
                        .map(|p| p.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "PATH is unset".into()),
                })?,
        };
        Ok(Terraform::at(binary))
    }

    /// A specific binary with the inherited (allow-listed) environment.
    pub fn at(binary: impl Into<PathBuf>) -> Terraform {
        Terraform {
            binary: binary.into(),
            env: TerraformEnv::inherited(),
            grace: DEFAULT_GRACE,
            timeout: DEFAULT_TIMEOUT,
            run_as: None,
        }
    }

    /// Runs every terraform process as `user` (see `run_as`).
    pub fn run_as(mut self, user: run_as::RunAs) -> Terraform {
        self.run_as = Some(user);
        self
    }

    pub fn with_env(mut self, env: TerraformEnv) -> Terraform {
        self.env = env;
        self
    }

    pub fn binary(&self) -> &Path {
        &self.binary
    }

    pub fn env(&self) -> &TerraformEnv {
        &self.env
    }

    /// Runs `terraform <args>` in `dir`, streaming every output line (parsed if it is a
    /// `-json` line) to `sink`. Errors carry terraform's diagnostics.
    pub async fn run(
        &self,
        dir: &Path,
        stage: Stage,
        args: &[&str],
        sink: &mut (dyn FnMut(LogLine) + Send),
        cancel: &CancellationToken,
    ) -> Result<RunOutput, TerraformError> {
        self.exec(dir, stage, args, Stdout::Lines, sink, cancel)
            .await
    }

    /// `terraform init -input=false -json`.
    pub async fn init(
        &self,
        dir: &Path,
        sink: &mut (dyn FnMut(LogLine) + Send),
        cancel: &CancellationToken,
    ) -> Result<RunOutput, TerraformError> {
        self.run(
            dir,
            Stage::Init,
            &["init", "-input=false", "-json"],
            sink,
            cancel,
        )
        .await
    }

    /// Init through the cache: on a hit, `.terraform` becomes a symlink to the cached one
    /// and the lock file is copied, with no terraform process; on a miss, init runs and
    /// its result is stored under `key` (atomically: concurrent misses both init, one
    /// publishes). Cached `.terraform` dirs are shared and must be treated as read-only,
    /// which plan and apply with the local backend do.
    pub async fn init_cached(
        &self,
        dir: &Path,
        cache: &InitCache,
        key: &str,
        sink: &mut (dyn FnMut(LogLine) + Send),
        cancel: &CancellationToken,
    ) -> Result<InitOutcome, TerraformError> {
        if cache.restore(key, dir)? {
            return Ok(InitOutcome::CacheHit);
        }
        let out = match self.init(dir, sink, cancel).await {
            // The template pins `coder/coder` to a version the mirror lacks: publish the
            // alias at one that matches (it is the same provider) and init again.
            Err(e @ TerraformError::Failed { .. }) => {
                match self.env.publish_coder_version_for(&e.to_string()) {
                    Some(version) => {
                        sink(LogLine {
                            stage: Stage::Init,
                            level: LogLevel::Info,
                            text: format!("the template's constraints on coder/coder need version {version}: serving Hangar's provider under that version too"),
                            at_ms: crate::model::now_ms(),
                        });
                        self.init(dir, sink, cancel).await?
                    }
                    None => return Err(e),
                }
            }
            other => other?,
        };
        cache.publish(key, dir)?;
        Ok(InitOutcome::Ran(out))
    }

    /// `terraform validate -json`: fails with the configuration's error diagnostics.
    pub async fn validate(
        &self,
        dir: &Path,
        sink: &mut (dyn FnMut(LogLine) + Send),
        cancel: &CancellationToken,
    ) -> Result<Vec<Diagnostic>, TerraformError> {
        // validate exits 1 on invalid configuration but still prints its JSON document;
        // that document is the better error, so read it either way.
        let out = self
            .exec(
                dir,
                Stage::Validate,
                &["validate", "-json", "-no-color"],
                Stdout::CaptureAnyExit,
                sink,
                cancel,
            )
            .await?;
        let stdout = out.stdout;
        let doc: serde_json::Value =
            serde_json::from_str(&stdout).map_err(|e| TerraformError::Output {
                stage: Stage::Validate,
                reason: e.to_string(),
            })?;
        let diags: Vec<Diagnostic> = doc["diagnostics"]
            .as_array()
            .map(|a| a.iter().map(parse_diagnostic).collect())
            .unwrap_or_default();
        // validate prints one document rather than lines; its diagnostics are the log.
        for d in &diags {
            sink(LogLine {
                stage: Stage::Validate,
                level: d.severity,
                text: d.to_string(),
                at_ms: now_ms(),
            });
        }
        if doc["valid"].as_bool() == Some(false) {
            return Err(TerraformError::Failed {
                stage: Stage::Validate,
                exit_code: 1,
                message: join_errors(&diags),
            });
        }
        Ok(diags)
    }

    /// `terraform graph`: DOT text of the resource dependency graph. Terraform ≥ 1.7
    /// prints resources only, with locals, variables, outputs and module calls collapsed
    /// into direct resource-to-resource edges; older versions and OpenTofu print the full
    /// plan graph. `classify::Graph::parse` reads both.
    pub async fn graph(
        &self,
        dir: &Path,
        sink: &mut (dyn FnMut(LogLine) + Send),
        cancel: &CancellationToken,
    ) -> Result<String, TerraformError> {
        let out = self
            .exec(dir, Stage::Graph, &["graph"], Stdout::Capture, sink, cancel)
            .await?;
        Ok(out.stdout)
    }

    /// `plan -json -out=plan.bin [-destroy]` then `show -json plan.bin`. Use only where the
    /// plan is needed before applying (import dry runs, quotas, previews); otherwise
    /// `apply` alone is one process instead of three. `apply_saved` applies this plan.
    pub async fn plan_json(
        &self,
        dir: &Path,
        destroy: bool,
        sink: &mut (dyn FnMut(LogLine) + Send),
        cancel: &CancellationToken,
    ) -> Result<Plan, TerraformError> {
        let out_arg = format!("-out={PLAN_FILE}");
        let mut args = vec!["plan", "-input=false", "-json", out_arg.as_str()];
        if destroy {
            args.push("-destroy");
        }
        self.run(dir, Stage::Plan, &args, sink, cancel).await?;
        let shown = self
            .exec(
                dir,
                Stage::Show,
                &["show", "-json", "-no-color", PLAN_FILE],
                Stdout::Capture,
                sink,
                cancel,
            )
            .await?;
        let json = serde_json::from_str(&shown.stdout).map_err(|e| TerraformError::Output {
            stage: Stage::Show,
            reason: e.to_string(),
        })?;
        Ok(Plan {
            file: dir.join(PLAN_FILE),
            json,
        })
    }

    /// `apply -auto-approve -json [-destroy]`: plan and apply in one process.
    pub async fn apply(
        &self,
        dir: &Path,
        destroy: bool,
        sink: &mut (dyn FnMut(LogLine) + Send),
        cancel: &CancellationToken,
    ) -> Result<RunOutput, TerraformError> {
        let mut args = vec!["apply", "-auto-approve", "-input=false", "-json"];
        if destroy {
            args.push("-destroy");
        }
        self.run(dir, Stage::Apply, &args, sink, cancel).await
    }

    /// Applies a plan saved by `plan_json`, without planning again.
    pub async fn apply_saved(
        &self,
        dir: &Path,
        plan: &Plan,
        sink: &mut (dyn FnMut(LogLine) + Send),
        cancel: &CancellationToken,
    ) -> Result<RunOutput, TerraformError> {
        let file = plan.file.to_string_lossy();
        self.run(
            dir,
            Stage::Apply,
            &["apply", "-auto-approve", "-input=false", "-json", &file],
            sink,
            cancel,
        )
        .await
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The state terraform left in `dir` (`terraform.tfstate`), if any. Read after apply
/// instead of running `terraform show`; also after a failed apply, whose partial state
/// must be kept so nothing created is forgotten.
pub fn read_state(dir: &Path) -> Result<Option<Vec<u8>>, TerraformError> {
    match super::untrusted_fs::read(dir, STATE_FILE, super::untrusted_fs::MAX_READ_BYTES) {
        Ok(Some(bytes)) if bytes.is_empty() => Ok(None),
        Ok(bytes) => Ok(bytes),
        Err(e) => Err(TerraformError::io("reading", dir.join(STATE_FILE))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_prefers_override_then_terraform_then_tofu() {
        let bin = tempfile::tempdir().unwrap();
        let write_exe = |name: &str| {
            use std::os::unix::fs::PermissionsExt;
            let p = bin.path().join(name);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p
        };
        let path = Some(bin.path().as_os_str().to_owned());
        let err = Terraform::locate_from(None, path.clone()).unwrap_err();
        assert_eq!(err.kind(), "terraform_missing");
        assert!(err.to_string().contains("HANGAR_TERRAFORM"), "{err}");

        let tofu = write_exe("tofu");
        assert_eq!(
            Terraform::locate_from(None, path.clone()).unwrap().binary(),
            tofu
        );
        let tf = write_exe("terraform");
        assert_eq!(
            Terraform::locate_from(None, path.clone()).unwrap().binary(),
            tf
        );
        let custom = write_exe("my-terraform");
        let found = Terraform::locate_from(Some(custom.clone().into()), None).unwrap();
        assert_eq!(found.binary(), custom);
        let found = Terraform::locate_from(Some("tofu".into()), path.clone()).unwrap();
        assert_eq!(found.binary(), tofu);
        let err = Terraform::locate_from(Some("/nonexistent/terraform".into()), path).unwrap_err();
        assert!(matches!(err, TerraformError::BadOverride { .. }), "{err}");
    }
}
