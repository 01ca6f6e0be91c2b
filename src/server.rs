//! `hangar server`: the HTTP API and web UI, the database, and in-process provisioners,
//! served on a listener the caller binds (tests bind 127.0.0.1:0).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::api::{self, AppState};
use crate::db::Database;
use crate::provisioner::queue::Runner;

#[derive(Debug, Clone)]
pub struct Config {
    /// Where the SQLite file, job work dirs and caches live.
    pub data_dir: PathBuf,
    /// The URL agents and users reach this server at (printed, and given to templates).
    pub access_url: String,
    /// How many builds this server runs at once.
    pub provisioners: usize,
    /// The binary terraform runs as Hangar's provider (this executable, except in tests).
    pub hangar_binary: PathBuf,
    /// How long one terraform run of a job may take before it is interrupted.
    pub job_timeout: std::time::Duration,
    /// How long old builds keep their logs and states (None: forever); see `db::retention`.
    pub retention: Option<std::time::Duration>,
}

impl Config {
    pub fn new(data_dir: PathBuf, access_url: String) -> Config {
        Config {
            data_dir,
            access_url,
            provisioners: 3,
            hangar_binary: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("hangar")),
            job_timeout: crate::provisioner::terraform::DEFAULT_TIMEOUT,
            retention: None,
        }
    }
}

/// Serves until `shutdown` resolves, then drains requests and stops the provisioners.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    db: Database,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (job_updates, _) = tokio::sync::broadcast::channel(1024);
    let state = AppState {
        db: db.clone(),
        config: Arc::new(config.clone()),
        jobs_available: Arc::new(tokio::sync::Notify::new()),
        job_updates: job_updates.clone(),
        agent_conns: Default::default(),
        login_limits: Default::default(),
    };
    private_dir(&config.data_dir)?;
    let runner = Runner::new(db, &config, job_updates);
    let recovered = runner.recover_leftovers().await?;
    if recovered > 0 {
        tracing::warn!(
            recovered,
            "failed the jobs of a provisioner that died, keeping their state"
        );
    }
    let stop_workers = runner.stopping.clone();
    let mut workers = Vec::new();
    for n in 1..=config.provisioners {
        workers.push(tokio::spawn(
            runner.provisioner(n).work(state.jobs_available.clone()),
        ));
    }
    let reaper = {
        let (runner, stop) = (runner.clone(), stop_workers.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(crate::provisioner::queue::HEARTBEAT) => {}
                    _ = stop.cancelled() => return,
                }
                if let Err(e) = runner.reap().await {
                    tracing::warn!(error = format!("{e:#}"), "reaping stale jobs");
                }
            }
        })
    };
    let purger = config
        .retention
        .map(|keep| tokio::spawn(purge_loop(state.db.clone(), keep, stop_workers.clone())));
    let app = api::router(state.clone())
        .merge(crate::web::router(state.clone()))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::guard::same_origin,
        ))
        .layer(axum::middleware::from_fn(api::guard::json_errors))
        .layer(axum::middleware::from_fn(api::guard::security_headers))
        .layer(tower_http::trace::TraceLayer::new_for_http());
    // Upgraded agent sockets are not requests the graceful shutdown waits for: close them
    // ourselves, so agents notice at once and reconnect to the next server.
    let conns = state.agent_conns.clone();
    let shutdown = async move {
        shutdown.await;
        conns.shutdown.cancel();
    };
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("serving HTTP")?;
    state.agent_conns.close_all().await;
    // Running builds are interrupted like a cancel: terraform stops cleanly and the state
    // it wrote is kept, so nothing it made is forgotten.
    stop_workers.cancel();
    for w in workers {
        let _ = w.await;
    }
    let _ = reaper.await;
    if let Some(purger) = purger {
        let _ = purger.await;
    }
    state.db.close().await;
    Ok(())
}

/// Purges what is older than `keep` now and then: often enough that nothing outlives
/// its retention by much (a tenth of it), at most hourly, at least every second.
async fn purge_loop(
    db: Database,
    keep: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let every = (keep / 10).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(3600),
    );
    loop {
        let cutoff = crate::model::now_ms() - keep.as_millis() as i64;
        match db.purge_before(cutoff).await {
            Ok(p) if !p.is_empty() => tracing::info!(
                build_states = p.build_states,
                job_log_lines = p.job_log_lines,
                agent_rows = p.agent_rows,
                "retention purged old builds' data"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention purge"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// The data dir holds the database (terraform state with agent tokens), work dirs and
/// the admin password: only this user may enter it.
fn private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the data dir {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("making the data dir {} private", dir.display()))
}

/// Makes a new server ready to use: an owner `admin` whose generated password is written
/// to `<data_dir>/admin-password` (mode 0600), and every built-in template pushed.
/// Idempotent: an existing owner or template is left as it is.
pub async fn bootstrap(access_url: &str, data_dir: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let anon = crate::client::Client::new(access_url, None);
    let password_file = data_dir.join("admin-password");
    let client = if !anon.first_user_exists().await? {
        let password = crate::model::secret::generate_token().expose()[..24].to_string();
        let created = anon
            .create_first_user(&crate::api::users::CreateUserRequest {
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
    let existing: Vec<String> = client
        .templates()
        .await?
        .into_iter()
        .map(|t| t.name)
        .collect();
    for id in crate::cli::templates::builtin_ids() {
        if existing.contains(&id) {
            continue;
        }
        let dir = tempfile::tempdir()?;
        crate::cli::templates::write_builtin(&id, dir.path())?;
        crate::cli::templates::push(&client, &id, dir.path(), "built-in", None, true, false)
            .await?;
    }
    println!(
        "Log in with:\n  hangar login {access_url} --username admin --password \"$(cat {})\"",
        password_file.display()
    );
    Ok(())
}
