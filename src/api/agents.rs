//! Workspace agents: the agent's own endpoints (manifest, WebSocket), what users see of
//! an agent (status, logs, metadata), and the init script + binary agents start from.

use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::Json;
use tokio::sync::mpsc;

use super::auth::{bearer, hashes_equal, Auth};
use super::{ApiError, ApiResult, AppState};
use crate::db::agents::{AgentMetadataRow, AgentWithWorkspace};
use crate::model::agent::AppHealth;
use crate::model::{now_ms, secret::hash_token};
use crate::tunnel::{self, Control, Split};
use crate::wire::agent::{AgentMessage, AgentSpec, Manifest, ServerMessage};
use crate::wire::agents::{AgentLog, AgentLogsQuery, AgentView, MetadataView};
use crate::wire::Timestamp;

/// Limits on what one agent message may store, so a chatty script cannot fill the disk
/// through one frame.
const MAX_LOG_LINES_PER_MESSAGE: usize = 1000;
const MAX_LOG_LINE_BYTES: usize = 16 * 1024;
const MAX_METADATA_VALUE_BYTES: usize = 4 * 1024;
const MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;
/// Listening ports stored per agent at most.
const MAX_PORTS: usize = 256;
/// Log text stored per agent over its whole life, as Coder keeps: a startup script that
/// prints forever must not fill the server's disk.
pub const MAX_AGENT_LOG_BYTES: i64 = 1024 * 1024;

/// The agent a request comes from, authenticated by its token.
#[derive(Clone)]
pub struct AgentAuth(pub AgentWithWorkspace);

/// Why a known agent's token no longer works, or None while it does: only the agent of
/// the latest build of a live workspace whose latest build starts it may connect.
/// `claim_grace`: the prebuild's agent stays valid while a claim build runs (for its
/// control connection only: not to read the new owner's manifest or tokens).
pub fn agent_token_refusal(a: &AgentWithWorkspace, claim_grace: bool) -> Option<String> {
    if a.workspace_deleted {
        return Some(crate::wire::agent::DELETED_WORKSPACE_REFUSAL.into());
    }
    if a.latest_build_transition != crate::model::Transition::Start {
        return Some(format!(
            "workspace {} is not started (its latest build is a {} build): start it to use this agent",
            a.workspace_name, a.latest_build_transition
        ));
    }
    // While a claim build runs, the prebuild's agent (of the build just before) stays.
    let claiming = claim_grace && a.claim_pending && a.build_number + 1 == a.latest_build_number;
    let superseded = a.build_number != a.latest_build_number && !claiming;
    if superseded || a.build_transition != crate::model::Transition::Start {
        return Some(format!(
            "this agent token belongs to an old build of workspace {}: every build issues new agent tokens, so start the agent with the token of the latest build",
            a.workspace_name
        ));
    }
    None
}

#[axum::async_trait]
impl FromRequestParts<AppState> for AgentAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(agent) = parts.extensions.get::<AgentAuth>() {
            return Ok(agent.clone());
        }
        // The token itself goes no further than this hash: it is never logged or stored.
        let hash = bearer(parts).map(|t| hash_token(&t)).ok_or_else(|| {
            ApiError::Unauthorized(
                "missing agent token: send `Authorization: Bearer <token>` (the agent reads it from HANGAR_AGENT_TOKEN)".into(),
            )
        })?;
        let invalid = || {
            ApiError::Unauthorized(
                "this agent token is not valid: it was never issued, or its workspace was rebuilt or deleted".into(),
            )
        };
        let agent = state
            .db
            .find_agent_by_token_hash(&hash)
            .await?
            .ok_or_else(invalid)?;
        // The lookup used an index; compare again without timing differences anyway.
        if !hashes_equal(&agent.token_hash, &hash) {
            return Err(invalid());
        }
        if let Some(why) = agent_token_refusal(&agent, false) {
            return Err(ApiError::Unauthorized(why));
        }
        Ok(AgentAuth(agent))
    }
}

/// `GET /workspaceagents/me`
pub async fn manifest(
    State(state): State<AppState>,
    AgentAuth(a): AgentAuth,
) -> ApiResult<Json<Manifest>> {
    Ok(Json(Manifest {
        spec: a.agent.spec()?,
        agent_id: a.agent.id,
        agent_name: a.agent.name,
        workspace_id: a.workspace_id,
        workspace_name: a.workspace_name,
        owner_name: a.owner_name,
        access_url: state.config.access_url.clone(),
    }))
}

/// `GET /workspaceagents/me/ws`
pub async fn connect(
    State(state): State<AppState>,
    AgentAuth(a): AgentAuth,
    ws: WebSocketUpgrade,
) -> Response {
    let conns = state.agent_conns.clone();
    // Agents send small JSON frames; a huge one is a bug or an attack, not a log batch.
    ws.max_message_size(MAX_FRAME_BYTES).on_upgrade(move |socket| {
        conns.track(async move {
            let id = a.agent.id.clone();
            if let Err(err) = serve_agent(socket, &state, a).await {
                tracing::warn!(agent_id = %id, error = format!("{err:#}"), "agent connection failed");
            }
            if let Err(err) = state.db.agent_disconnected(&id, now_ms()).await {
                tracing::warn!(agent_id = %id, error = %err, "recording an agent disconnect");
            }
            tracing::info!(agent_id = %id, "agent disconnected");
        })
    })
}

/// Live agent connections: closed when the server shuts down, and waited for before the
/// database closes (an upgraded socket outlives its HTTP request). Each holds its tunnel,
/// through which user sessions reach the agent.
#[derive(Clone, Default)]
pub struct AgentConnections {
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Each live connection holds a read guard; closing takes the write lock, which is
    /// granted once every connection ended.
    live: std::sync::Arc<tokio::sync::RwLock<()>>,
    /// Agent id → its one live connection: number, the tunnel's control, and what ends
    /// it. A new connection of the same agent replaces the old one, which is told so.
    tunnels: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Live>>>,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Agent id → sessions open through it.
    sessions: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
}

/// Sessions one agent carries at most at once.
pub const MAX_SESSIONS_PER_AGENT: usize = 64;

#[derive(Clone)]
struct Live {
    n: u64,
    control: Control,
    replaced: tokio_util::sync::CancellationToken,
    /// Rings when the agent's standing may have changed (its workspace was claimed): the
    /// connection checks its token again at once, not at the next heartbeat.
    recheck: std::sync::Arc<tokio::sync::Notify>,
}

/// One registered connection: its number, what ends it, and its recheck bell.
struct Registered {
    n: u64,
    replaced: tokio_util::sync::CancellationToken,
    recheck: std::sync::Arc<tokio::sync::Notify>,
}

/// A session's place in its agent's count; given back when dropped.
pub struct SessionSlot {
    conns: AgentConnections,
    agent_id: String,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut sessions = lock(&self.conns.sessions);
        if let Some(n) = sessions.get_mut(&self.agent_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                sessions.remove(&self.agent_id);
            }
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl AgentConnections {
    async fn track<F: std::future::Future>(self, f: F) -> F::Output {
        let _live = self.live.clone().read_owned().await;
        f.await
    }

    /// Asks every connection to say goodbye and waits (bounded) until they did.
    pub async fn close_all(&self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.live.write()).await;
    }

    fn register(&self, agent_id: &str, control: Control) -> Registered {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let replaced = tokio_util::sync::CancellationToken::new();
        let recheck = std::sync::Arc::new(tokio::sync::Notify::new());
        let live = Live {
            n,
            control,
            replaced: replaced.clone(),
            recheck: recheck.clone(),
        };
        if let Some(old) = lock(&self.tunnels).insert(agent_id.to_string(), live) {
            old.replaced.cancel();
        }
        Registered {
            n,
            replaced,
            recheck,
        }
    }

    /// Makes the agent's connection (if it has one here) check its token now.
    pub fn recheck(&self, agent_id: &str) {
        if let Some(live) = lock(&self.tunnels).get(agent_id) {
            live.recheck.notify_one();
        }
    }

    fn unregister(&self, agent_id: &str, n: u64) {
        let mut tunnels = lock(&self.tunnels);
        if tunnels.get(agent_id).is_some_and(|l| l.n == n) {
            tunnels.remove(agent_id);
        }
    }

    /// How many agents hold a connection to this server.
    pub fn connected(&self) -> usize {
        lock(&self.tunnels).len()
    }

    /// The tunnel to a connected agent, to open a session stream on.
    pub fn tunnel(&self, agent_id: &str) -> Option<Control> {
        lock(&self.tunnels).get(agent_id).map(|l| l.control.clone())
    }

    /// A place for one more session through this agent, unless it carries its maximum.
    pub fn session_slot(&self, agent_id: &str) -> Option<SessionSlot> {
        let mut sessions = lock(&self.sessions);
        let n = sessions.entry(agent_id.to_string()).or_default();
        if *n >= MAX_SESSIONS_PER_AGENT {
            return None;
        }
        *n += 1;
        Some(SessionSlot {
            conns: self.clone(),
            agent_id: agent_id.to_string(),
        })
    }
}

/// A fresh token for agent `id` if it is due one (a claim build's agent): the new token,
/// whose hash is now the agent's.
async fn rotate(state: &AppState, id: &str) -> anyhow::Result<Option<String>> {
    let fresh = crate::model::secret::generate_token();
    let hash = crate::model::secret::hash_token(fresh.expose());
    Ok(state
        .db
        .rotate_token_if_due(id, &hash)
        .await?
        .then(|| fresh.expose().to_string()))
}

async fn send(control: &mpsc::Sender<String>, msg: &ServerMessage) -> anyhow::Result<()> {
    let text = serde_json::to_string(msg)?;
    control
        .send(text)
        .await
        .map_err(|_| anyhow::anyhow!("the agent's socket is closed"))
}

async fn serve_agent(
    socket: WebSocket,
    state: &AppState,
    a: AgentWithWorkspace,
) -> anyhow::Result<()> {
    let id = a.agent.id.clone();
    let spec = a.agent.spec()?;
    let Split {
        mut control_rx,
        control_tx,
        mux,
        ..
    } = tunnel::split(socket);
    let (control, mux_task) = tunnel::server_side(mux);
    let Registered {
        n,
        replaced,
        recheck,
    } = state.agent_conns.register(&id, control);
    let result = tokio::select! {
        r = control_loop(state, &id, &spec, &mut control_rx, &control_tx, &recheck) => r,
        // One live connection per agent: whoever connects with its token last holds it.
        _ = replaced.cancelled() => {
            tracing::warn!(agent_id = %id, "a newer connection of this agent replaced this one");
            let _ = send(&control_tx, &ServerMessage::Goodbye {
                reason: "another connection with this agent's token replaced this one".into(),
            }).await;
            Ok(())
        }
    };
    state.agent_conns.unregister(&id, n);
    mux_task.abort();
    result
}

async fn control_loop(
    state: &AppState,
    id: &str,
    spec: &AgentSpec,
    control_rx: &mut mpsc::Receiver<String>,
    control_tx: &mpsc::Sender<String>,
    recheck_now: &tokio::sync::Notify,
) -> anyhow::Result<()> {
    state.db.agent_connected(id, now_ms()).await?;
    tracing::info!(agent_id = %id, "agent connected");
    // A claimed prebuild's agent still holds the prebuild's token: it gets its own now,
    // and restarts with it (as the new owner's).
    if let Some(token) = rotate(state, id).await? {
        tracing::info!(agent_id = %id, "the workspace was claimed: the agent gets a new token");
        send(control_tx, &ServerMessage::Reinit { token }).await?;
    }
    let interval = Duration::from_millis(crate::model::agent::HEARTBEAT_INTERVAL_MS as u64);
    let mut recheck = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    let goodbye = |reason: String| async move {
        let _ = send(control_tx, &ServerMessage::Goodbye { reason }).await;
    };
    loop {
        tokio::select! {
            _ = state.agent_conns.shutdown.cancelled() => {
                goodbye("the server is shutting down".into()).await;
                return Ok(());
            }
            // A token stops working when the workspace is stopped, rebuilt or deleted:
            // a connected agent is told then, not only on its next connect.
            // Rung (the workspace was claimed, say): the check below runs right away.
            _ = recheck_now.notified() => recheck.reset_immediately(),
            _ = recheck.tick() => {
                let refusal = match state.db.get_agent_with_workspace(id).await? {
                    Some(current) => agent_token_refusal(&current, true),
                    None => Some("this agent no longer exists".into()),
                };
                if let Some(reason) = refusal {
                    // A claimed prebuild's agent: its successor row takes over, and the agent
                    // gets a token of its own right here.
                    if let Some(next) = state.db.successor_due_token(id).await? {
                        if let Some(token) = rotate(state, &next).await? {
                            tracing::info!(agent_id = %id, "the workspace was claimed: the agent gets a new token");
                            send(control_tx, &ServerMessage::Reinit { token }).await?;
                            return Ok(());
                        }
                    }
                    tracing::info!(agent_id = %id, reason = %reason, "closing the connection of a revoked agent");
                    goodbye(reason).await;
                    return Ok(());
                }
            }
            msg = control_rx.recv() => match msg {
                None => return Ok(()),
                Some(text) => match serde_json::from_str::<AgentMessage>(&text) {
                    Ok(m) => {
                        if let Some(reply) = handle_message(state, id, spec, m).await? {
                            send(control_tx, &reply).await?;
                        }
                    }
                    Err(err) => tracing::warn!(agent_id = %id, error = %err, "ignoring a malformed agent message"),
                },
            },
        }
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// Applies one agent message to the database; returns the reply, if any.
pub async fn handle_message(
    state: &AppState,
    agent_id: &str,
    spec: &AgentSpec,
    msg: AgentMessage,
) -> anyhow::Result<Option<ServerMessage>> {
    let db = &state.db;
    match msg {
        AgentMessage::Hello {
            version,
            os,
            arch,
            hostname,
        } => {
            db.set_agent_hello(
                agent_id,
                &truncate(version, 128),
                &truncate(os, 64),
                &truncate(arch, 64),
                &truncate(hostname, 255),
            )
            .await?;
            Ok(None)
        }
        AgentMessage::Lifecycle { state } => {
            db.set_agent_lifecycle(agent_id, state.as_str()).await?;
            Ok(None)
        }
        AgentMessage::Logs { mut logs } => {
            logs.truncate(MAX_LOG_LINES_PER_MESSAGE);
            for l in &mut logs {
                l.text = truncate(std::mem::take(&mut l.text), MAX_LOG_LINE_BYTES);
                l.source = truncate(std::mem::take(&mut l.source), 255);
            }
            db.insert_agent_logs(agent_id, &logs, MAX_AGENT_LOG_BYTES)
                .await?;
            Ok(None)
        }
        AgentMessage::Metadata { mut results } => {
            // Only keys the template defined: the agent cannot invent rows.
            results.retain(|r| spec.metadata.iter().any(|m| m.key == r.key));
            for r in &mut results {
                r.value = truncate(std::mem::take(&mut r.value), MAX_METADATA_VALUE_BYTES);
                r.error = truncate(std::mem::take(&mut r.error), MAX_METADATA_VALUE_BYTES);
            }
            db.upsert_agent_metadata(agent_id, &results).await?;
            Ok(None)
        }
        AgentMessage::Ports { mut ports } => {
            ports.sort_unstable();
            ports.dedup();
            ports.truncate(MAX_PORTS);
            db.set_agent_ports(agent_id, &ports).await?;
            Ok(None)
        }
        AgentMessage::AppHealth { mut apps } => {
            // Only apps the template gave a healthcheck: the agent cannot invent entries.
            apps.retain(|slug, health| {
                *health != AppHealth::Disabled
                    && spec
                        .apps
                        .iter()
                        .any(|a| &a.slug == slug && a.healthcheck.is_some())
            });
            db.set_agent_app_health(agent_id, &apps).await?;
            Ok(None)
        }
        AgentMessage::Usage { usage } => {
            if let Some(due) = state.usage.record(agent_id, usage, now_ms()) {
                db.set_agent_usage(agent_id, &due).await?;
            }
            Ok(None)
        }
        AgentMessage::Heartbeat => {
            db.agent_seen(agent_id, now_ms()).await?;
            Ok(Some(ServerMessage::Pong))
        }
    }
}

/// The view of an agent at `now` (the workspaces API uses it for `list` and `show`).
pub fn agent_view(a: &AgentWithWorkspace, now: i64) -> ApiResult<AgentView> {
    let place = super::convert::AgentPlace {
        workspace_id: &a.workspace_id,
        workspace_name: &a.workspace_name,
        owner_name: &a.owner_name,
    };
    Ok(super::convert::agent(&a.agent, &place, now)?)
}

/// The agent `id` if `auth` may see it: its workspace's owner, owners and template-admins.
async fn visible_agent(state: &AppState, auth: &Auth, id: &str) -> ApiResult<AgentWithWorkspace> {
    match state.db.get_agent_with_workspace(id).await? {
        Some(a) if super::authz::may_see_workspace(&auth.user, &a.owner_id) => Ok(a),
        // Someone else's agent is reported as missing, not forbidden: ids do not leak.
        _ => Err(ApiError::NotFound(format!("no workspace agent {id}"))),
    }
}

/// `GET /workspaceagents/:id`
pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<AgentView>> {
    let a = visible_agent(&state, &auth, &id).await?;
    Ok(Json(agent_view(&a, now_ms())?))
}

/// At most this many lines per request; page with `after`.
pub const LOGS_PAGE: i64 = 1000;

/// `GET /workspaceagents/:id/logs?after=N` or `?tail=N`
pub async fn logs(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<AgentLogsQuery>,
) -> ApiResult<Json<Vec<AgentLog>>> {
    let a = visible_agent(&state, &auth, &id).await?;
    let logs = match q.tail {
        Some(n) => {
            state
                .db
                .tail_agent_logs(&a.agent.id, n.clamp(0, LOGS_PAGE))
                .await?
        }
        None => {
            state
                .db
                .list_agent_logs(&a.agent.id, q.after, LOGS_PAGE)
                .await?
        }
    };
    Ok(Json(logs.into_iter().map(Into::into).collect()))
}

/// `GET /workspaceagents/:id/metadata`, in the template's order.
pub async fn metadata(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<MetadataView>>> {
    let a = visible_agent(&state, &auth, &id).await?;
    Ok(Json(metadata_views(&state, &a.agent).await?))
}

/// `GET /workspaceagents/:id/usage`: the samples this server holds (the last hour), or
/// the latest one the database has when it holds none (after a restart, or another
/// replica's agent).
pub async fn usage(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<crate::wire::agent::Usage>>> {
    let a = visible_agent(&state, &auth, &id).await?;
    let history = state.usage.history(&id);
    Ok(Json(if history.is_empty() {
        a.agent.last_usage.into_iter().collect()
    } else {
        history
    }))
}

/// The metadata of agent `id` (which the caller was allowed to see), or none if it is gone.
pub async fn metadata_views_by_id(state: &AppState, id: &str) -> ApiResult<Vec<MetadataView>> {
    match state.db.get_agent_with_workspace(id).await? {
        Some(a) => metadata_views(state, &a.agent).await,
        None => Ok(Vec::new()),
    }
}

/// An agent's metadata items with their latest values, in the template's order.
pub async fn metadata_views(
    state: &AppState,
    agent: &crate::db::agents::Agent,
) -> ApiResult<Vec<MetadataView>> {
    let mut spec = agent.spec()?;
    let rows = state.db.list_agent_metadata(&agent.id).await?;
    spec.metadata
        .sort_by(|x, y| x.order.cmp(&y.order).then(x.key.cmp(&y.key)));
    let views = spec
        .metadata
        .into_iter()
        .map(|m| {
            let row: Option<&AgentMetadataRow> = rows.iter().find(|r| r.key == m.key);
            MetadataView {
                display_name: if m.display_name.is_empty() {
                    m.key.clone()
                } else {
                    m.display_name
                },
                key: m.key,
                interval: m.interval,
                value: row.map(|r| r.value.clone()).unwrap_or_default(),
                error: row.map(|r| r.error.clone()).unwrap_or_default(),
                collected_at: row.map(|r| Timestamp(r.collected_at)),
            }
        })
        .collect();
    Ok(views)
}

/// `POST /workspaceagents/{google,aws,azure}-instance-identity`: where an agent with
/// `auth = "<cloud>-instance-identity"` would trade its instance's identity document for
/// a token. This server has no cloud to verify documents against, so it says so (400).
pub async fn instance_identity(uri: axum::http::Uri) -> ApiError {
    let kind = uri
        .path()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    // A 400, not a 501: the request is fine for a server that has clouds to ask; this one
    // answers what the agent's configuration must change to.
    ApiError::BadRequest(format!(
        "agent auth \"{kind}\" is not supported on this server: set auth = \"token\" on the agent and run its init script with HANGAR_AGENT_TOKEN set to the agent's token"
    ))
}

/// `GET /init-script/:os/:arch` (no auth: the script holds no secret).
pub async fn init_script(
    State(state): State<AppState>,
    Path((os, arch)): Path<(String, String)>,
) -> ApiResult<Response> {
    let script = crate::provisioner::init_script::render(&state.config.access_url, &os, &arch)
        .map_err(|e| match e {
            crate::provisioner::init_script::InitScriptError::Unsupported { .. } => {
                ApiError::NotFound(e.to_string())
            }
            other => ApiError::Internal(other.into()),
        })?;
    Ok((
        [(header::CONTENT_TYPE, "text/x-shellscript; charset=utf-8")],
        script,
    )
        .into_response())
}

/// `GET /bin/:file` with file = `hangar-{os}-{arch}`: this server's own executable, which
/// is the agent too. Only this server's platform is available.
pub async fn binary(
    State(state): State<AppState>,
    Path(file): Path<String>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    let (os, arch) = crate::wire::agent::this_platform();
    let ours = format!("hangar-{os}-{arch}");
    if file != ours {
        return Err(ApiError::NotFound(format!(
            "no agent binary {file}: this server runs on {os}/{arch} and serves only {ours}; run agents on {os}/{arch} machines, or install a hangar binary for your platform yourself and run `hangar agent`"
        )));
    }
    let path = state.config.hangar_binary.clone();
    let internal = |e: std::io::Error| {
        ApiError::Internal(anyhow::Error::new(e).context(format!(
            "reading the server's own executable {}",
            path.display()
        )))
    };
    let f = tokio::fs::File::open(&path).await.map_err(internal)?;
    let meta = f.metadata().await.map_err(internal)?;
    let etag = binary_etag(&path, &meta).await.map_err(internal)?;
    let cached = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| matches!(tag.trim(), t if t == etag || t == "*"));
    let resp = Response::builder().header(header::ETAG, &etag);
    let built = if cached {
        // The agent already has these bytes: no 28 MB download on every start.
        resp.status(axum::http::StatusCode::NOT_MODIFIED)
            .body(Body::empty())
    } else {
        resp.header(header::CONTENT_TYPE, "application/octet-stream")
            .header(
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{ours}\""),
            )
            .header(header::CONTENT_LENGTH, meta.len())
            .body(Body::from_stream(tokio_util::io::ReaderStream::new(f)))
    };
    built.map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("building the response")))
}

/// A strong ETag of the binary: its SHA-256, computed once per (path, size, mtime) on the
/// blocking pool and then remembered, so a start costs a `stat`, not a hash of 28 MB.
async fn binary_etag(path: &std::path::Path, meta: &std::fs::Metadata) -> std::io::Result<String> {
    use std::sync::Mutex;
    type Key = (std::path::PathBuf, u64, Option<std::time::SystemTime>);
    static CACHE: Mutex<Option<(Key, String)>> = Mutex::new(None);
    let key: Key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    if let Some((k, tag)) = CACHE.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        if *k == key {
            return Ok(tag.clone());
        }
    }
    let owned = path.to_path_buf();
    let digest = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        std::io::copy(&mut std::fs::File::open(owned)?, &mut hasher)?;
        Ok(hex::encode(hasher.finalize()))
    })
    .await
    .map_err(std::io::Error::other)??;
    let tag = format!("\"sha256-{digest}\"");
    *CACHE.lock().unwrap_or_else(|e| e.into_inner()) = Some((key, tag.clone()));
    Ok(tag)
}
