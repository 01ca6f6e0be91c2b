//! `hangar server`: the HTTP API and web UI, the database, and in-process provisioners,
//! served on a listener the caller binds (tests bind 127.0.0.1:0).

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;

use crate::api::{self, AppState};
use crate::config::Config;
use crate::db::Database;
use crate::provisioner::queue::Runner;

/// Serves until `shutdown` resolves, then drains requests and stops the provisioners.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    db: Database,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (job_updates, _) = tokio::sync::broadcast::channel(1024);
    let metrics = Arc::new(crate::metrics::Metrics::new());
    metrics.provisioners.set(config.provisioners as i64);
    let state = AppState {
        db: db.clone(),
        config: Arc::new(config.clone()),
        jobs_available: Arc::new(tokio::sync::Notify::new()),
        job_updates: job_updates.clone(),
        agent_conns: Default::default(),
        login_limits: Default::default(),
        usage: Default::default(),
        metrics: metrics.clone(),
        http: reqwest::Client::new(),
    };
    private_dir(&config.data_dir, config.terraform_user.is_some())?;
    let runner = Runner::new(db, &config, job_updates, metrics)?;
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
    let prebuilds = tokio::spawn(api::prebuilds::run(state.clone(), stop_workers.clone()));
    let scrape = axum::Router::new()
        .route("/metrics", axum::routing::get(api::metrics::scrape))
        .with_state(state.clone());
    let app = api::router(state.clone())
        .merge(crate::web::router(state.clone()))
        .merge(scrape)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::guard::same_origin,
        ))
        // App hosts first: their requests are the apps', not Hangar's (own origin checks).
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::web::subdomain::route,
        ))
        .layer(axum::middleware::from_fn(api::guard::json_errors))
        .layer(axum::middleware::from_fn(api::guard::security_headers))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        // Outermost: requests the layers above refuse (403, 400) are counted too.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::metrics::track,
        ));
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
    // Agent sockets and sessions carry small writes that must go out at once.
    .tcp_nodelay(true)
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
    let _ = prebuilds.await;
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
/// the admin password: only this user may enter it. When terraform runs as another user,
/// that user may pass through it (0711: not list it) to the work dirs, the init cache and
/// the provider mirror; what is secret in it is private by its own mode (the database
/// 0600, its WAL and shared memory likewise, the admin password 0600).
fn private_dir(dir: &std::path::Path, traversable: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the data dir {}", dir.display()))?;
    let mode = if traversable { 0o711 } else { 0o700 };
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("making the data dir {} private", dir.display()))
}
