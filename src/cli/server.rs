//! `hangar server`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::config::Config;
use crate::db::Database;
use crate::model::secret::Secret;
use crate::server;

#[derive(Debug, Args)]
pub struct ServerArgs {
    #[arg(long, env = "HANGAR_ADDRESS", default_value = "127.0.0.1:3000")]
    pub address: SocketAddr,
    /// Default: $XDG_DATA_HOME/hangar or ~/.local/share/hangar; /var/lib/hangar as root.
    #[arg(long, env = "HANGAR_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Use PostgreSQL instead of the embedded SQLite database.
    #[arg(long, env = "HANGAR_PG_URL", hide_env_values = true)]
    pub postgres_url: Option<String>,
    /// The URL users and agents reach this server at; default http://<address>.
    #[arg(long, env = "HANGAR_ACCESS_URL")]
    pub access_url: Option<String>,
    /// Serve apps with `subdomain = true` at their own host under this wildcard, e.g.
    /// `*.apps.example.com` (its DNS must point at this server; scheme and port are the
    /// access URL's).
    #[arg(long, env = "HANGAR_WILDCARD_ACCESS_URL")]
    pub wildcard_access_url: Option<String>,
    /// How many builds run at once in this server.
    #[arg(long, env = "HANGAR_PROVISIONERS", default_value_t = 3)]
    pub provisioners: usize,
    /// How long one terraform run of a build may take, e.g. 30m or 2h.
    #[arg(long, env = "HANGAR_JOB_TIMEOUT", default_value = "30m")]
    pub job_timeout: String,
    /// Keep old builds' logs and terraform states this long, e.g. 30d or 12h (default:
    /// forever). Each workspace's latest build and its last successful start are always
    /// kept, as are the logs of the agents that run now.
    #[arg(long, env = "HANGAR_RETENTION")]
    pub retention: Option<String>,
    /// Require this bearer token at /metrics (Prometheus' `authorization` setting);
    /// without one, /metrics is open to anyone who reaches the server.
    #[arg(long, env = "HANGAR_METRICS_TOKEN", hide_env_values = true, value_parser = secret)]
    pub metrics_token: Option<Secret>,
    /// A YAML file of OAuth2 providers users link their accounts with (GitHub, GitLab…),
    /// for templates' `hangar_external_auth`: a list of {id, display_name, client_id,
    /// client_secret, auth_url, token_url, scopes}.
    #[arg(long, env = "HANGAR_EXTERNAL_AUTH_CONFIG")]
    pub external_auth_config: Option<PathBuf>,
    /// The unprivileged user terraform (and so every template's local-exec) runs as when
    /// the server runs as root [default when root: hangar-terraform]. `root` keeps root,
    /// which lets templates read the database. A server not run as root cannot switch
    /// users: terraform runs as its own.
    #[arg(long, env = "HANGAR_TERRAFORM_USER")]
    pub terraform_user: Option<String>,
    /// On a new server: create an owner `admin` (password in <data-dir>/admin-password)
    /// and push the built-in templates.
    #[arg(long, env = "HANGAR_BOOTSTRAP")]
    pub bootstrap: bool,
}

/// A secret argument: it prints as `***` wherever the arguments are debug-printed.
fn secret(s: &str) -> Result<Secret, String> {
    if s.trim().is_empty() {
        return Err("must not be empty (leave the flag out for none)".into());
    }
    Ok(Secret::new(s))
}

pub fn default_data_dir() -> PathBuf {
    // Root's home is closed to the user terraform runs as, who must reach the work dirs.
    if crate::unix_user::effective_uid() == 0 {
        return PathBuf::from("/var/lib/hangar");
    }
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("hangar")
}

pub async fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    // Operators read the server's log on stderr; RUST_LOG refines it. Requests are logged
    // by method and path only, and no secret is ever put in a path.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours for a terminal only: a log file keeps plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("hangar=info,tower_http=warn")
            }),
        )
        .try_init();
    let data_dir = args.data_dir.unwrap_or_else(default_data_dir);
    let euid = crate::unix_user::effective_uid();
    let terraform_user =
        crate::provisioner::terraform::run_as::choose(args.terraform_user.as_deref(), euid)?;
    // Before anything binds or changes: a user that does not exist stops the start.
    if let Some(name) = &terraform_user {
        crate::provisioner::terraform::run_as::RunAs::lookup(name)?;
    }
    for (flag, env) in [
        ("--postgres-url", "HANGAR_PG_URL"),
        ("--metrics-token", "HANGAR_METRICS_TOKEN"),
    ] {
        if std::env::args_os().any(|a| a.to_string_lossy().starts_with(flag)) {
            tracing::warn!("{flag} on the command line is readable by every user of this machine (ps, /proc/PID/cmdline), templates included: set {env} instead");
        }
    }
    if euid == 0 && terraform_user.is_none() {
        tracing::warn!("terraform runs as root (--terraform-user root): templates can read the database and change anything on this machine");
    }
    let db = match &args.postgres_url {
        Some(url) => Database::connect(url).await?,
        None => Database::open_sqlite(&data_dir).await?,
    };
    let listener = tokio::net::TcpListener::bind(args.address)
        .await
        .with_context(|| format!("listening on {}", args.address))?;
    let bound = listener.local_addr()?;
    let access_url = args.access_url.unwrap_or_else(|| format!("http://{bound}"));
    let mut config = Config::new(data_dir.clone(), access_url.clone());
    config.provisioners = args.provisioners;
    config.terraform_user = terraform_user;
    config.metrics_token_hash = args
        .metrics_token
        .as_ref()
        .map(|t| crate::model::secret::hash_token(t.expose()));
    config.wildcard = args
        .wildcard_access_url
        .as_deref()
        .map(|w| crate::config::Wildcard::parse(w, &access_url))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    if let Some(path) = &args.external_auth_config {
        config.external_auth = crate::external_auth::load(path).map_err(anyhow::Error::msg)?;
        let ids: Vec<&str> = config.external_auth.iter().map(|p| p.id.as_str()).collect();
        println!("External auth providers: {}", ids.join(", "));
    }
    config.job_timeout =
        std::time::Duration::from_secs(super::output::parse_duration(&args.job_timeout)? as u64);
    config.retention = args
        .retention
        .as_deref()
        .map(|r| {
            super::output::parse_duration(r)
                .map(|secs| std::time::Duration::from_secs(secs as u64))
                .with_context(|| format!("--retention {r}"))
        })
        .transpose()?;
    let backend = if args.postgres_url.is_some() {
        "PostgreSQL"
    } else {
        "embedded SQLite"
    };
    let serving = tokio::spawn(server::serve(listener, config, db, shutdown_signal()));
    println!(
        "Hangar {} is ready at {access_url} (data in {}, {backend}).",
        env!("CARGO_PKG_VERSION"),
        data_dir.display()
    );
    if args.bootstrap {
        bootstrap(&access_url, &data_dir).await?;
    }
    serving.await.context("the server task")??;
    println!("Hangar stopped.");
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("Shutting down…");
}

/// Makes a new server ready to use: an owner `admin` whose generated password is written
/// to `<data_dir>/admin-password` (mode 0600), and every built-in template pushed.
/// Idempotent: an existing owner, or a template with an active version, is left as it is.
async fn bootstrap(access_url: &str, data_dir: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let anon = crate::client::Client::new(access_url, None);
    let password_file = data_dir.join("admin-password");
    let client = if !anon.first_user_exists().await? {
        let password = crate::model::secret::generate_token().expose()[..24].to_string();
        let created = anon
            .create_first_user(&crate::wire::users::CreateUserRequest {
                username: "admin".into(),
                email: "admin@localhost".into(),
                password: password.clone(),
                full_name: "Hangar admin".into(),
                role: None,
            })
            .await?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&password_file)?;
        f.write_all(password.as_bytes())?;
        anon.with_token(&created.session_token)
    } else if let Ok(password) = std::fs::read_to_string(&password_file) {
        anon.with_token(&anon.login("admin", password.trim()).await?.session_token)
    } else {
        println!("This server already has users; log in with `hangar login {access_url}`.");
        return Ok(());
    };
    // Templates with an active version are left as they are; one without (its import
    // failed, say terraform could not run then) is pushed again.
    let ready: Vec<String> = client
        .templates()
        .await?
        .into_iter()
        .filter(|t| t.active_version.is_some())
        .map(|t| t.name)
        .collect();
    for id in super::templates::builtin_ids() {
        if ready.contains(&id) {
            continue;
        }
        let dir = tempfile::tempdir()?;
        super::templates::write_builtin(&id, dir.path())?;
        let q = crate::wire::templates::PushQuery {
            name: None,
            message: "built-in".into(),
            activate: true,
            variables: None,
        };
        // Waits for the import, so a failure is reported here, with its reason.
        super::templates::push(&client, &id, dir.path(), &q, true).await?;
    }
    println!(
        "Log in with:\n  hangar login {access_url} --username admin --password \"$(cat {})\"",
        password_file.display()
    );
    Ok(())
}
