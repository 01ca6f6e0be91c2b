//! Runs the terraform CLI for a build: finding it, giving it a clean environment,
//! turning its `-json` output into log lines, and stopping it on cancel or timeout.
//!
//! Every terraform process costs ~0.1 s of CPU, so this module offers exactly the calls a
//! build needs (init, with a cache; graph; plan + show; apply) and reads the final state
//! from the state file instead of running `terraform show` again.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::provider::mirror;

/// How long terraform gets after SIGINT to stop providers and write its state before it is
/// killed. Killing earlier risks losing track of resources that are being created.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// A run that takes longer than this is stopped like a cancel.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The parent environment variables terraform may see. Everything else (database URLs,
/// tokens, cloud credentials of the server itself) is withheld: a template's local-exec
/// or a third-party provider could print or send them anywhere.
const ALLOWED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "TZ",
    "TMPDIR",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// Output lines after the process exits are drained for at most this long: a background
/// process started by a local-exec may hold the pipe open forever.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How many stderr lines are kept to explain a failure that printed no diagnostic.
const STDERR_TAIL: usize = 20;

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

/// Which terraform command a log line or error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Init,
    Validate,
    Graph,
    Plan,
    Show,
    Apply,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Init,
        Stage::Validate,
        Stage::Graph,
        Stage::Plan,
        Stage::Show,
        Stage::Apply,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Init => "init",
            Stage::Validate => "validate",
            Stage::Graph => "graph",
            Stage::Plan => "plan",
            Stage::Show => "show",
            Stage::Apply => "apply",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }

    /// terraform's `@level` values; anything unknown is shown rather than dropped.
    fn from_terraform(s: &str) -> Self {
        match s {
            "trace" => LogLevel::Trace,
            "debug" => LogLevel::Debug,
            "warn" => LogLevel::Warn,
            "error" => LogLevel::Error,
            _ => LogLevel::Info,
        }
    }
}

/// One line of build output, already redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    pub stage: Stage,
    pub level: LogLevel,
    pub text: String,
    /// Unix milliseconds when Hangar read the line.
    pub at_ms: i64,
}

/// A terraform diagnostic (`"type":"diagnostic"` line), kept to explain failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: LogLevel,
    pub summary: String,
    pub detail: String,
    /// `main.tf:2` or `main.tf:2-4`, when terraform knows where.
    pub location: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(location) = &self.location {
            write!(f, "{location}: ")?;
        }
        f.write_str(&self.summary)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// Replaces known secret strings (parameter values marked secret, agent tokens, the
/// session token the provider uses) with `***` before any line is stored or streamed.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret containing another is masked whole.
    secrets: Vec<String>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    pub fn new<S: Into<String>>(secrets: impl IntoIterator<Item = S>) -> Self {
        let mut r = Redactor::default();
        for s in secrets {
            r.add(s);
        }
        r
    }

    pub fn add(&mut self, secret: impl Into<String>) {
        let secret = secret.into();
        // An empty string would "match" between every character.
        if secret.is_empty() || self.secrets.contains(&secret) {
            return;
        }
        self.secrets.push(secret);
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), "***"));
            }
        }
        out
    }
}

/// The environment terraform runs with: an allow-list of the parent's variables, the
/// provider contract variables of the build, and Hangar's CLI configuration.
#[derive(Clone, Default)]
pub struct TerraformEnv {
    vars: BTreeMap<String, String>,
    /// Changes whenever the provider binary does; part of the init cache key, because the
    /// lock file records the provider's hash.
    provider_fingerprint: String,
}

impl fmt::Debug for TerraformEnv {
    /// Values may be parameter values or tokens: only names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TerraformEnv")
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Keeps the allow-listed variables of `parent` (plus every `LC_*`).
pub fn allow_listed(
    parent: impl IntoIterator<Item = (OsString, OsString)>,
) -> BTreeMap<String, String> {
    parent
        .into_iter()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| ALLOWED_ENV.contains(&k.as_str()) || k.starts_with("LC_"))
        .collect()
}

impl TerraformEnv {
    /// The allow-listed part of this process's environment, without a provider mirror.
    pub fn inherited() -> Self {
        let mut env = TerraformEnv {
            vars: allow_listed(std::env::vars_os()),
            provider_fingerprint: String::new(),
        };
        env.set_automation_vars();
        env
    }

    /// The environment a server or provisioner daemon uses: the allow-listed parent env,
    /// and a CLI configuration in `config_dir` whose filesystem mirror serves
    /// `hangar_binary` as the `hangar/hangar` and `coder/coder` providers; other providers
    /// install as terraform normally would. Call once at start; derive per-build envs
    /// `with_vars`.
    pub fn setup(config_dir: &Path, hangar_binary: &Path) -> Result<Self, TerraformError> {
        let setup_err = |reason: String| TerraformError::Setup {
            dir: config_dir.display().to_string(),
            reason,
        };
        let mirror_dir = config_dir.join("mirror");
        mirror::install(&mirror_dir, hangar_binary).map_err(|e| setup_err(format!("{e:#}")))?;
        let config_file = config_dir.join("terraform.rc");
        std::fs::write(
            &config_file,
            // No plugin cache: terraform's is unsafe under concurrent inits (two imports
            // racing failed with "still not detected in .terraform/providers"), and the
            // per-version init cache already makes init rare.
            mirror::cli_config(&mirror_dir, None),
        )
        .map_err(|e| setup_err(e.to_string()))?;

        let mut env = TerraformEnv::inherited();
        env.vars.insert(
            "TF_CLI_CONFIG_FILE".into(),
            config_file.display().to_string(),
        );
        env.provider_fingerprint = fingerprint(hangar_binary);
        Ok(env)
    }

    /// Adds a build's variables (the provider contract: `HANGAR_WORKSPACE_ID`, …).
    /// Terraform's own automation switches cannot be overridden.
    pub fn with_vars<K: Into<String>, V: Into<String>>(
        mut self,
        extra: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        for (k, v) in extra {
            self.vars.insert(k.into(), v.into());
        }
        self.set_automation_vars();
        self
    }

    fn set_automation_vars(&mut self) {
        // No prompts, no "run terraform apply next" hints, no update checks phoning home.
        for (k, v) in [
            ("TF_IN_AUTOMATION", "1"),
            ("TF_INPUT", "0"),
            ("CHECKPOINT_DISABLE", "1"),
        ] {
            self.vars.insert(k.into(), v.into());
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    pub fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Identifies a build of a binary (path, size, mtime) without hashing hundreds of
/// megabytes.
fn fingerprint(binary: &Path) -> String {
    let path = binary
        .canonicalize()
        .unwrap_or_else(|_| binary.to_path_buf());
    let meta = std::fs::metadata(&path).ok();
    let len = meta.as_ref().map(|m| m.len()).unwrap_or(0);
    let mtime = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let digest = Sha256::digest(format!("{}\0{len}\0{mtime}", path.display()));
    hex::encode(&digest[..8])
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

/// Whether `init_cached` could skip `terraform init`.
#[derive(Debug, Clone)]
pub enum InitOutcome {
    CacheHit,
    Ran(RunOutput),
}

/// `.terraform` dirs and lock files by key, so builds of one template version skip init.
#[derive(Debug, Clone)]
pub struct InitCache {
    root: PathBuf,
}

/// Files that are build state, not configuration; they never affect the cache key.
fn is_state_name(name: &str) -> bool {
    name == ".terraform"
        || name.contains(".tfstate")
        || name == PLAN_FILE
        || name.starts_with(OUTPUT_PREFIX)
}

impl InitCache {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        InitCache { root: root.into() }
    }

    /// A key for the configuration in `dir` as rendered (a `.tf.tera` may render module
    /// sources or provider versions differently per workspace), the terraform binary
    /// (an upgrade in place changes its fingerprint) and the provider build.
    pub fn key_for_dir(dir: &Path, terraform: &Terraform) -> Result<String, TerraformError> {
        let mut hasher = Sha256::new();
        hasher.update(fingerprint(&terraform.binary).as_bytes());
        hasher.update([0]);
        hasher.update(terraform.env.provider_fingerprint.as_bytes());
        hash_tree(dir, Path::new(""), &mut hasher)?;
        Ok(hex::encode(&hasher.finalize()[..16]))
    }

    fn entry(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }
}

fn hash_tree(dir: &Path, rel: &Path, hasher: &mut Sha256) -> Result<(), TerraformError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(TerraformError::io("reading", dir))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if is_state_name(&name.to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        let rel = rel.join(&name);
        let ft = entry
            .file_type()
            .map_err(TerraformError::io("reading", &path))?;
        hasher.update(rel.as_os_str().as_encoded_bytes());
        hasher.update([0]);
        if ft.is_dir() {
            hash_tree(&path, &rel, hasher)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path).map_err(TerraformError::io("reading", &path))?;
            hasher.update(target.as_os_str().as_encoded_bytes());
        } else {
            let data = std::fs::read(&path).map_err(TerraformError::io("reading", &path))?;
            hasher.update((data.len() as u64).to_le_bytes());
            hasher.update(&data);
        }
    }
    Ok(())
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
}

/// What happens to terraform's stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stdout {
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
        }
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
    /// `-json` line, redacted always) to `sink`. Errors carry terraform's diagnostics.
    pub async fn run(
        &self,
        dir: &Path,
        stage: Stage,
        args: &[&str],
        sink: &mut (dyn FnMut(LogLine) + Send),
        cancel: &CancellationToken,
        redact: &Redactor,
    ) -> Result<RunOutput, TerraformError> {
        self.exec(dir, stage, args, Stdout::Lines, sink, cancel, redact)
            .await
    }

    /// `terraform init -input=false -json`.
    pub async fn init(
        &self,
        dir: &Path,
        sink: &mut (dyn FnMut(LogLine) + Send),
        cancel: &CancellationToken,
        redact: &Redactor,
    ) -> Result<RunOutput, TerraformError> {
        self.run(
            dir,
            Stage::Init,
            &["init", "-input=false", "-json"],
            sink,
            cancel,
            redact,
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
        redact: &Redactor,
    ) -> Result<InitOutcome, TerraformError> {
        let entry = cache.entry(key);
        if entry.join("complete").exists() {
            let cached_dot = entry.join("dot-terraform");
            let dot = dir.join(".terraform");
            // An archive made by hand may carry its own .terraform; the cache replaces it.
            if dot.is_dir() && !dot.is_symlink() {
                std::fs::remove_dir_all(&dot).map_err(TerraformError::io("removing", &dot))?;
            }
            if cached_dot.exists() {
                std::os::unix::fs::symlink(&cached_dot, &dot).map_err(TerraformError::io(
                    "linking the cached .terraform into",
                    dir,
                ))?;
            }
            let cached_lock = entry.join("lock.hcl");
            if cached_lock.exists() {
                let lock = dir.join(".terraform.lock.hcl");
                std::fs::copy(&cached_lock, &lock).map_err(TerraformError::io("writing", &lock))?;
            }
            return Ok(InitOutcome::CacheHit);
        }
        let out = self.init(dir, sink, cancel, redact).await?;
        publish_init(dir, &cache.root, &entry)?;
        Ok(InitOutcome::Ran(out))
    }

    /// `terraform validate -json`: fails with the configuration's error diagnostics.
    pub async fn validate(
        &self,
        dir: &Path,
        sink: &mut (dyn FnMut(LogLine) + Send),
        cancel: &CancellationToken,
        redact: &Redactor,
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
                redact,
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
            .map(|a| a.iter().map(|d| parse_diagnostic(d, redact)).collect())
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
        redact: &Redactor,
    ) -> Result<String, TerraformError> {
        let out = self
            .exec(
                dir,
                Stage::Graph,
                &["graph"],
                Stdout::Capture,
                sink,
                cancel,
                redact,
            )
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
        redact: &Redactor,
    ) -> Result<Plan, TerraformError> {
        let out_arg = format!("-out={PLAN_FILE}");
        let mut args = vec!["plan", "-input=false", "-json", out_arg.as_str()];
        if destroy {
            args.push("-destroy");
        }
        self.run(dir, Stage::Plan, &args, sink, cancel, redact)
            .await?;
        let shown = self
            .exec(
                dir,
                Stage::Show,
                &["show", "-json", "-no-color", PLAN_FILE],
                Stdout::Capture,
                sink,
                cancel,
                redact,
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
        redact: &Redactor,
    ) -> Result<RunOutput, TerraformError> {
        let mut args = vec!["apply", "-auto-approve", "-input=false", "-json"];
        if destroy {
            args.push("-destroy");
        }
        self.run(dir, Stage::Apply, &args, sink, cancel, redact)
            .await
    }

    /// Applies a plan saved by `plan_json`, without planning again.
    pub async fn apply_saved(
        &self,
        dir: &Path,
        plan: &Plan,
        sink: &mut (dyn FnMut(LogLine) + Send),
        cancel: &CancellationToken,
        redact: &Redactor,
    ) -> Result<RunOutput, TerraformError> {
        let file = plan.file.to_string_lossy();
        self.run(
            dir,
            Stage::Apply,
            &["apply", "-auto-approve", "-input=false", "-json", &file],
            sink,
            cancel,
            redact,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn exec(
        &self,
        dir: &Path,
        stage: Stage,
        args: &[&str],
        stdout_mode: Stdout,
        sink: &mut (dyn FnMut(LogLine) + Send),
        cancel: &CancellationToken,
        redact: &Redactor,
    ) -> Result<RunOutput, TerraformError> {
        let started = Instant::now();
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
        // If the server dies (kill -9, OOM), terraform is interrupted as on a cancel: it
        // stops cleanly and writes its state instead of running on unattended, and the
        // next start recovers that state from the work dir.
        #[cfg(target_os = "linux")]
        // SAFETY: prctl is async-signal-safe and touches only the child being set up.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT);
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
                out_file.path().to_path_buf(),
                true,
                tx.clone(),
                exited.clone(),
            ));
            None
        } else {
            Some(out_file.path().to_path_buf())
        };
        tokio::spawn(tail_lines(err_file.path().to_path_buf(), false, tx, exited));

        let mut state = LineState::default();
        let mut handle = |is_stdout: bool, raw: String, state: &mut LineState| {
            let (line, diag) = if is_stdout {
                parse_line(stage, &raw, redact)
            } else {
                let text = redact.redact(strip_ansi(&raw).trim_end()).into_owned();
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
        let stdout = match captured {
            Some(path) => tokio::fs::read(&path)
                .await
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default(),
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
                message = redact.redact(stdout.trim()).into_owned();
            }
            if message.is_empty() {
                message = "terraform printed no error; see the build logs".into();
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

fn join_errors(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .filter(|d| d.severity == LogLevel::Error)
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn signal(pid: Option<i32>, sig: i32) {
    if let Some(pid) = pid {
        // SAFETY: kill(2) has no memory effects; a stale pid at worst yields ESRCH.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Lines as lossy UTF-8: a provider printing binary must not end the log stream.
/// Output files terraform writes in a work dir (never part of the configuration), named
/// `.hangar-output-<stage>-<random>.out|.err`.
pub const OUTPUT_PREFIX: &str = ".hangar-output-";

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
    let redact = Redactor::default();
    let mut lines = Vec::new();
    for (_, path, stage, is_stdout) in files {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for raw in text.lines().filter(|l| !l.trim().is_empty()) {
            lines.push(if is_stdout {
                parse_line(stage, raw, &redact).0
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
async fn tail_lines(
    path: PathBuf,
    is_stdout: bool,
    tx: mpsc::UnboundedSender<(bool, String)>,
    mut exited: tokio::sync::watch::Receiver<bool>,
) {
    let Ok(mut file) = tokio::fs::File::open(&path).await else {
        return;
    };
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

/// Turns one stdout line into a log line: a `-json` line by its `@level`/`@message` (and
/// diagnostic detail with file:line), anything else verbatim at info level.
pub fn parse_line(stage: Stage, raw: &str, redact: &Redactor) -> (LogLine, Option<Diagnostic>) {
    let at_ms = now_ms();
    let parsed: Option<serde_json::Value> = raw
        .trim_start()
        .starts_with('{')
        .then(|| serde_json::from_str(raw).ok())
        .flatten();
    let Some(v) = parsed.filter(|v| v.get("@message").is_some()) else {
        return (
            LogLine {
                stage,
                level: LogLevel::Info,
                text: redact.redact(strip_ansi(raw).trim_end()).into_owned(),
                at_ms,
            },
            None,
        );
    };
    let level = LogLevel::from_terraform(v["@level"].as_str().unwrap_or("info"));
    let mut text = v["@message"].as_str().unwrap_or_default().to_string();
    let mut diag = None;
    if v["type"] == "diagnostic" {
        let d = parse_diagnostic(&v["diagnostic"], redact);
        if !d.detail.is_empty() {
            text.push_str(": ");
            text.push_str(&d.detail);
        }
        if let Some(loc) = &d.location {
            text.push_str(&format!(" ({loc})"));
        }
        diag = Some(d);
    }
    (
        LogLine {
            stage,
            level,
            text: redact.redact(&text).into_owned(),
            at_ms,
        },
        diag,
    )
}

/// Removes terminal colour sequences (`ESC [ … letter`): terraform colours human output
/// on stderr even when it is not a terminal, and log lines are shown in a browser.
pub fn strip_ansi(text: &str) -> Cow<'_, str> {
    if !text.contains('\u{1b}') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    Cow::Owned(out)
}

fn parse_diagnostic(d: &serde_json::Value, redact: &Redactor) -> Diagnostic {
    let range = &d["range"];
    let location = range["filename"].as_str().map(|file| {
        let start = range["start"]["line"].as_u64().unwrap_or(0);
        let end = range["end"]["line"].as_u64().unwrap_or(start);
        if end > start {
            format!("{file}:{start}-{end}")
        } else {
            format!("{file}:{start}")
        }
    });
    Diagnostic {
        severity: LogLevel::from_terraform(d["severity"].as_str().unwrap_or("error")),
        summary: redact
            .redact(d["summary"].as_str().unwrap_or_default())
            .into_owned(),
        detail: redact
            .redact(d["detail"].as_str().unwrap_or_default())
            .into_owned(),
        location,
    }
}

/// Stores a fresh init under `entry`, via a temp dir renamed into place so readers never
/// see half an entry.
fn publish_init(dir: &Path, root: &Path, entry: &Path) -> Result<(), TerraformError> {
    std::fs::create_dir_all(root).map_err(TerraformError::io("creating", root))?;
    let staging = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(root)
        .map_err(TerraformError::io("creating a staging dir in", root))?;
    let dot = dir.join(".terraform");
    if dot.exists() {
        copy_tree(&dot, &staging.path().join("dot-terraform"))?;
    }
    let lock = dir.join(".terraform.lock.hcl");
    if lock.exists() {
        std::fs::copy(&lock, staging.path().join("lock.hcl"))
            .map_err(TerraformError::io("copying", &lock))?;
    }
    std::fs::write(staging.path().join("complete"), b"")
        .map_err(TerraformError::io("writing", staging.path()))?;
    let staged = staging.keep();
    if std::fs::rename(&staged, entry).is_err() {
        // Another build published the same key first; theirs is as good as ours.
        let _ = std::fs::remove_dir_all(&staged);
    }
    Ok(())
}

/// Copies a directory, keeping symlinks as symlinks (terraform links providers into
/// `.terraform` from the mirror and the plugin cache; those are absolute).
fn copy_tree(from: &Path, to: &Path) -> Result<(), TerraformError> {
    std::fs::create_dir_all(to).map_err(TerraformError::io("creating", to))?;
    for entry in std::fs::read_dir(from).map_err(TerraformError::io("reading", from))? {
        let entry = entry.map_err(TerraformError::io("reading", from))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let ft = entry
            .file_type()
            .map_err(TerraformError::io("reading", &src))?;
        if ft.is_dir() {
            copy_tree(&src, &dst)?;
        } else if ft.is_symlink() {
            let mut target =
                std::fs::read_link(&src).map_err(TerraformError::io("reading", &src))?;
            if target.is_relative() {
                // Relative links would point elsewhere from the cache; pin them.
                target = src
                    .parent()
                    .unwrap_or(from)
                    .join(&target)
                    .canonicalize()
                    .map_err(TerraformError::io("resolving", &src))?;
            }
            std::os::unix::fs::symlink(&target, &dst)
                .map_err(TerraformError::io("linking", &dst))?;
        } else {
            std::fs::copy(&src, &dst).map_err(TerraformError::io("copying", &src))?;
        }
    }
    Ok(())
}

/// The state terraform left in `dir` (`terraform.tfstate`), if any. Read after apply
/// instead of running `terraform show`; also after a failed apply, whose partial state
/// must be kept so nothing created is forgotten.
pub fn read_state(dir: &Path) -> Result<Option<Vec<u8>>, TerraformError> {
    let path = dir.join(STATE_FILE);
    match std::fs::read(&path) {
        Ok(bytes) if bytes.is_empty() => Ok(None),
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(TerraformError::io("reading", &path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_keeps_only_listed_names() {
        let parent = [
            ("PATH", "/bin"),
            ("HOME", "/root"),
            ("LC_ALL", "C"),
            ("https_proxy", "http://p"),
            ("HANGAR_PG_URL", "postgres://secret"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("TF_CLI_CONFIG_FILE", "/root/.terraformrc"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let kept = allow_listed(parent);
        let names: Vec<_> = kept.keys().map(String::as_str).collect();
        assert_eq!(names, ["HOME", "LC_ALL", "PATH", "https_proxy"]);
    }

    #[test]
    fn automation_vars_win_over_extras() {
        let env = TerraformEnv::inherited().with_vars([("TF_INPUT", "1"), ("HANGAR_URL", "u")]);
        assert_eq!(env.get("TF_INPUT"), Some("0"));
        assert_eq!(env.get("HANGAR_URL"), Some("u"));
        assert!(!format!("{env:?}").contains("\"u\""));
    }

    #[test]
    fn strips_colours() {
        let coloured =
            "\u{1b}[31m\u{1b}[31m╷\u{1b}[0m\u{1b}[0m \u{1b}[1m\u{1b}[31mError: \u{1b}[0mboom";
        assert_eq!(strip_ansi(coloured), "╷ Error: boom");
        assert!(matches!(strip_ansi("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn redactor_masks_longest_first() {
        let r = Redactor::new(["abc", "abcdef", ""]);
        assert_eq!(r.redact("x abcdef y abc z"), "x *** y *** z");
        assert!(matches!(r.redact("clean"), Cow::Borrowed(_)));
    }

    #[test]
    fn parses_json_lines_and_diagnostics() {
        let r = Redactor::new(["hunter2"]);
        let raw = r#"{"@level":"error","@message":"Error: Reference to undeclared input variable","diagnostic":{"severity":"error","summary":"Reference to undeclared input variable","detail":"An input variable with the name \"hunter2\" has not been declared.","range":{"filename":"main.tf","start":{"line":2,"column":11},"end":{"line":2,"column":19}}},"type":"diagnostic"}"#;
        let (line, diag) = parse_line(Stage::Plan, raw, &r);
        assert_eq!(line.level, LogLevel::Error);
        assert!(line.text.contains("(main.tf:2)"), "{}", line.text);
        assert!(!line.text.contains("hunter2"), "{}", line.text);
        let diag = diag.unwrap();
        assert_eq!(diag.location.as_deref(), Some("main.tf:2"));
        assert!(diag
            .to_string()
            .starts_with("main.tf:2: Reference to undeclared"));

        let (line, diag) = parse_line(Stage::Init, "plain text hunter2", &r);
        assert_eq!(
            (line.level, line.text.as_str()),
            (LogLevel::Info, "plain text ***")
        );
        assert!(diag.is_none());
    }

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
