//! `hangar agent`: runs inside a workspace and connects back to the server.
//!
//! It fetches its manifest, keeps one outbound WebSocket to the server (reconnecting with
//! backoff and jitter when the server goes away), runs the startup and start scripts and
//! the metadata scripts, reports lifecycle, logs and metadata over the socket, and on
//! SIGTERM/SIGINT runs the shutdown scripts. Scripts never wait for the connection:
//! whatever they report while the server is away is queued and sent on reconnect.

pub mod apphealth;
pub mod connection;
pub mod cron;
pub mod forward;
/// The agent ↔ server messages live in the wire layer; this name keeps the agent's code short.
pub use crate::wire::agent as protocol;
pub mod ports;
pub mod pty;
pub mod scripts;
pub mod sessions;
pub mod ssh;
pub mod usage;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, watch};

use crate::client::{Client, ClientError};
use crate::model::agent::Lifecycle;
use crate::model::secret::Secret;
use crate::provider::contract;
use protocol::{AgentMessage, LogLine, Manifest};

/// Where the agent connects and who it is.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The server's base URL (`HANGAR_URL`).
    pub url: String,
    /// The agent token (`HANGAR_AGENT_TOKEN`); prints as `***`.
    pub token: Secret,
}

impl AgentConfig {
    /// Reads `HANGAR_URL` and `HANGAR_AGENT_TOKEN`, falling back to Coder's
    /// `CODER_AGENT_URL` and `CODER_AGENT_TOKEN`.
    pub fn from_env() -> anyhow::Result<AgentConfig> {
        let url = contract::lookup_non_empty(contract::URL).ok_or_else(|| {
            anyhow::anyhow!(
                "HANGAR_URL is not set: set it to the Hangar server's URL (the init script does this)"
            )
        })?;
        let token = contract::lookup_non_empty(contract::AGENT_TOKEN).ok_or_else(|| {
            anyhow::anyhow!(
                "HANGAR_AGENT_TOKEN is not set: set it to the agent's token (hangar_agent.token, or `hangar external-workspaces agent-instructions`)"
            )
        })?;
        Ok(AgentConfig {
            url: url.trim_end_matches('/').to_string(),
            token: Secret::new(token.trim()),
        })
    }
}

/// What scripts report goes through here: to the log file and to the server (queued).
#[derive(Clone)]
pub struct Reporter {
    tx: mpsc::UnboundedSender<AgentMessage>,
    lifecycle: Arc<watch::Sender<Lifecycle>>,
    log_file: Arc<std::sync::Mutex<Option<std::fs::File>>>,
}

impl Reporter {
    pub fn lifecycle(&self, state: Lifecycle) {
        tracing::info!(lifecycle = %state, "lifecycle");
        self.append(&format!("lifecycle: {state}"));
        self.lifecycle.send_replace(state);
        let _ = self.tx.send(AgentMessage::Lifecycle { state });
    }

    pub fn log(&self, source: &str, level: &str, text: String) {
        self.append(&format!("[{source}] {text}"));
        let _ = self.tx.send(AgentMessage::Logs {
            logs: vec![LogLine {
                at: crate::model::now_ms(),
                source: source.to_string(),
                level: level.to_string(),
                text,
            }],
        });
    }

    pub fn ports(&self, ports: Vec<u16>) {
        let _ = self.tx.send(AgentMessage::Ports { ports });
    }

    pub fn usage(&self, usage: protocol::Usage) {
        let _ = self.tx.send(AgentMessage::Usage { usage });
    }

    pub fn app_health(
        &self,
        apps: std::collections::BTreeMap<String, crate::model::agent::AppHealth>,
    ) {
        let _ = self.tx.send(AgentMessage::AppHealth { apps });
    }

    pub fn metadata(&self, result: protocol::MetadataResult) {
        let _ = self.tx.send(AgentMessage::Metadata {
            results: vec![result],
        });
    }

    fn append(&self, line: &str) {
        use std::io::Write;
        if let Ok(mut guard) = self.log_file.lock() {
            if let Some(f) = guard.as_mut() {
                let _ = writeln!(f, "{} {line}", crate::model::now_ms());
            }
        }
    }
}

/// Sleeps for the `attempt`-th retry: exponential from 250 ms, capped, with jitter so a
/// fleet of agents does not reconnect in lockstep after a server restart.
pub fn backoff(attempt: u32, cap: Duration) -> Duration {
    use rand::Rng;
    let base = Duration::from_millis(250).saturating_mul(1u32 << attempt.min(16));
    let full = base.min(cap);
    full.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Fetches the manifest, retrying until it works: the server may be down, or may not have
/// recorded this agent yet (the agent starts while its build is still applying). Fails
/// only when its workspace was deleted.
async fn fetch_manifest(client: &Client) -> anyhow::Result<Manifest> {
    let mut attempt = 0u32;
    loop {
        match client.agent_manifest().await {
            Ok(m) => return Ok(m),
            Err(ClientError::Api { body, .. })
                if body
                    .message
                    .contains(crate::wire::agent::DELETED_WORKSPACE_REFUSAL) =>
            {
                anyhow::bail!("{}: exiting", body.message);
            }
            Err(err) => {
                let unauthorized =
                    matches!(&err, ClientError::Api { status, .. } if status.as_u16() == 401);
                // A refused token may start working once the build finished recording
                // the agent; after a minute of refusals, slow down.
                let cap = if unauthorized && attempt > 12 {
                    Duration::from_secs(30)
                } else {
                    connection::RECONNECT_CAP
                };
                let wait = backoff(attempt, cap);
                tracing::warn!(error = %err, retry_in_ms = wait.as_millis() as u64, "fetching the agent manifest");
                tokio::time::sleep(wait).await;
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

/// The directory scripts run in: the manifest's (with `~` expanded, created if missing),
/// else `$HOME`, else the current directory.
fn resolve_dir(dir: &str) -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let expanded = match (dir, &home) {
        ("", Some(h)) => h.clone(),
        ("~", Some(h)) => h.clone(),
        (d, Some(h)) if d.starts_with("~/") => h.join(&d[2..]),
        (d, _) => PathBuf::from(d),
    };
    if expanded.as_os_str().is_empty() {
        return std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    }
    match std::fs::create_dir_all(&expanded) {
        Ok(()) => expanded,
        Err(err) => {
            let fallback = home.unwrap_or_else(|| PathBuf::from("/"));
            tracing::warn!(dir = %expanded.display(), error = %err, fallback = %fallback.display(), "the agent's dir is unusable");
            fallback
        }
    }
}

/// Where the template's `motd_file` is: `~/` means the home directory, a relative path
/// is under the agent's directory.
fn motd_path(file: &str, dir: &std::path::Path) -> Option<PathBuf> {
    let file = file.trim();
    if file.is_empty() {
        return None;
    }
    match (file.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Some(PathBuf::from(home).join(rest)),
        _ => Some(dir.join(file)),
    }
}

fn open_log_file(dir: &std::path::Path) -> Option<std::fs::File> {
    let open = |p: PathBuf| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .map(|f| (f, p))
    };
    match open(dir.join(".hangar-agent.log"))
        .or_else(|_| open(std::env::temp_dir().join(".hangar-agent.log")))
    {
        Ok((f, p)) => {
            tracing::info!(path = %p.display(), "writing script output to the log file");
            Some(f)
        }
        Err(err) => {
            tracing::warn!(error = %err, "no log file: script output only goes to the server");
            None
        }
    }
}

/// Runs the agent until SIGTERM or SIGINT (then runs the shutdown scripts and exits).
pub async fn run(config: AgentConfig) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Agents usually log to a file (the init script's redirect): no colour codes there.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HANGAR_AGENT_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .try_init();
    tracing::info!(url = %config.url, version = env!("CARGO_PKG_VERSION"), "hangar agent starting");
    let client = Client::new(&config.url, Some(config.token.expose().to_string()));

    let signal = shutdown_signal();
    tokio::pin!(signal);
    let manifest = tokio::select! {
        m = fetch_manifest(&client) => m?,
        _ = &mut signal => {
            tracing::info!("stopped before the agent ever connected");
            return Ok(());
        }
    };
    tracing::info!(agent = %manifest.agent_name, workspace = %manifest.workspace_name, owner = %manifest.owner_name, "got the manifest");

    let dir = resolve_dir(&manifest.spec.dir);
    let (tx, rx) = mpsc::unbounded_channel();
    let (lifecycle_tx, lifecycle_rx) = watch::channel(Lifecycle::Created);
    let reporter = Reporter {
        tx,
        lifecycle: Arc::new(lifecycle_tx),
        log_file: Arc::new(std::sync::Mutex::new(open_log_file(&dir))),
    };
    let (os, arch) = protocol::this_platform();
    // Once: it makes the `hangar` link sessions and scripts find on their PATH.
    let env = scripts::session_env(&manifest);
    let sessions = Arc::new(ssh::SessionEnv {
        dir: dir.clone(),
        env: env.clone(),
        motd_file: motd_path(&manifest.spec.motd_file, &dir),
    });
    // Cancelled by the connection when the server says the workspace was deleted.
    let gone = tokio_util::sync::CancellationToken::new();
    let conn = tokio::spawn(connection::run(
        connection::Hello {
            version: env!("CARGO_PKG_VERSION").to_string(),
            os: os.to_string(),
            arch: arch.to_string(),
            hostname: hostname(),
        },
        config.clone(),
        sessions,
        rx,
        lifecycle_rx,
        gone.clone(),
    ));

    let ctx = Arc::new(scripts::ScriptContext::new(env, dir, reporter.clone()));
    let metadata = scripts::spawn_metadata(&ctx, &manifest.spec.metadata);
    let ports = tokio::spawn(ports::watch(reporter.clone()));
    // The workspace's home is where its sessions start (`dir`, else `$HOME`).
    let usage = tokio::spawn(usage::watch(
        reporter.clone(),
        usage::disk_paths(&ctx.dir, &manifest.spec),
    ));
    let app_health = tokio::spawn(apphealth::watch(
        reporter.clone(),
        manifest.spec.apps.clone(),
    ));

    reporter.lifecycle(Lifecycle::Starting);
    let startup = tokio::spawn({
        let ctx = ctx.clone();
        let spec = manifest.spec.clone();
        async move {
            let state = scripts::run_start(&ctx, &spec).await;
            ctx.reporter.lifecycle(state);
            // Scheduled scripts begin once starting is over, as Coder's agent does.
            scripts::run_cron(&ctx, &spec.scripts).await;
        }
    });
    let startup_abort = startup.abort_handle();
    tokio::select! {
        _ = signal => {}
        _ = gone.cancelled() => {}
    }
    tracing::info!("shutting down");
    // Start and cron scripts still running are killed: shutdown wins.
    startup_abort.abort();
    for m in &metadata {
        m.abort();
    }
    ports.abort();
    usage.abort();
    app_health.abort();
    reporter.lifecycle(Lifecycle::ShuttingDown);
    let end = scripts::run_stop(&ctx, &manifest.spec).await;
    reporter.lifecycle(end);
    drop(ctx);
    drop(reporter);
    // Give the connection a moment to deliver what is queued (it ends once drained).
    match tokio::time::timeout(Duration::from_secs(5), conn).await {
        Ok(joined) => joined.context("the connection task")?,
        Err(_) => tracing::warn!("the server was unreachable; exiting with reports undelivered"),
    }
    Ok(())
}

/// Replaces this process with a fresh agent holding `token` (same binary, arguments and
/// environment otherwise), which reads its manifest again and runs its startup scripts
/// as the workspace's new owner's. Returns only when that failed.
pub fn restart_with_token(token: &Secret) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return e,
    };
    std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(contract::AGENT_TOKEN, token.expose())
        .env_remove("CODER_AGENT_TOKEN")
        .exec()
}
