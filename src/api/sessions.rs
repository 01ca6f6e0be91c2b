//! Sessions users open into a workspace through its agent's tunnel: the caller's WebSocket
//! is relayed to a stream the server opens to the agent. Only the workspace's owner may
//! open one (owners and template-admins see other people's workspaces, but do not get
//! into them); each session is recorded in the audit log when it starts and ends.

use std::time::{Duration, Instant};

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::response::Response;

use super::auth::Auth;
use super::{ApiError, ApiResult, AppState};
use crate::tunnel::{self, StreamHandle, StreamReply, StreamRequest};
use crate::wire::agents::{PtyQuery, TcpQuery};

/// How long the agent has to say whether a session could start.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest WebSocket message a session's client may send (a terminal's paste, a
/// chunk of bytes): axum's 64 MiB default would let one socket pin gigabytes.
const MAX_MESSAGE: usize = 256 * 1024;
/// How often a live session checks that its user, token and workspace still allow it.
const RECHECK: Duration = Duration::from_secs(5);

/// Whether this agent already carries its maximum of sessions (a slot is taken and
/// given back at once; the relay takes its own).
fn full(state: &AppState, agent_id: &str) -> bool {
    state.agent_conns.session_slot(agent_id).is_none()
}

fn limited(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.max_message_size(MAX_MESSAGE).max_frame_size(MAX_MESSAGE)
}

/// Completes when the session must end: the user was suspended, the token revoked or
/// expired, or the workspace's agent is no longer current (stopped, rebuilt, deleted).
pub(crate) async fn ended(state: &AppState, auth: Option<&Auth>, agent_id: &str) -> String {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + RECHECK, RECHECK);
    loop {
        tick.tick().await;
        match still_allowed(state, auth, agent_id).await {
            Ok(None) => {}
            Ok(Some(why)) => return why,
            // The database is away: keep the session rather than cut it on a blip.
            Err(e) => tracing::warn!(error = %e, "rechecking a session"),
        }
    }
}

async fn still_allowed(
    state: &AppState,
    auth: Option<&Auth>,
    agent_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    let now = crate::model::now_ms();
    // Without a user (a public app), only the agent has to stay.
    if let Some(auth) = auth {
        match state.db.get_token(&auth.token_id).await? {
            Some(t) if t.expires_at.is_none_or(|at| at > now) => {}
            _ => return Ok(Some("the session's token was revoked or expired".into())),
        }
        match state.db.get_user(&auth.user.id).await? {
            Some(u) if !u.suspended => {}
            _ => return Ok(Some("the user was suspended".into())),
        }
    }
    let Some(a) = state.db.get_agent_with_workspace(agent_id).await? else {
        return Ok(Some("the agent no longer exists".into()));
    };
    let refusal = super::agents::agent_token_refusal(&a, false);
    if refusal.is_none() {
        // A session in progress is use, whether or not bytes flow.
        state.db.touch_workspace(&a.workspace_id, now).await?;
    }
    Ok(refusal)
}

/// `GET /workspaceagents/{id}/tcp?port=N`: a WebSocket whose binary frames are the bytes
/// of a TCP connection to `port` on the agent's loopback.
pub async fn tcp(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<TcpQuery>,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    let detail = format!("tcp port {}", q.port);
    start(
        state,
        auth,
        &id,
        StreamRequest::Tcp { port: q.port },
        detail,
        ws,
    )
    .await
}

/// `GET /workspaceagents/{id}/ssh`: a WebSocket whose binary frames are an SSH connection
/// to the agent's embedded server (what `hangar ssh --stdio` relays for OpenSSH).
pub async fn ssh(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    start(state, auth, &id, StreamRequest::Ssh, "ssh".into(), ws).await
}

/// `GET /workspaceagents/{id}/echo`: a WebSocket the agent sends every byte back on
/// (`hangar ping` and `hangar speedtest` measure the whole path with it).
pub async fn echo(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    start(state, auth, &id, StreamRequest::Echo, "echo".into(), ws).await
}

async fn start(
    state: AppState,
    auth: Auth,
    agent_id: &str,
    request: StreamRequest,
    detail: String,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    let (stream, place) = open(&state, agent_id, &request).await?;
    let agent_id = agent_id.to_string();
    Ok(limited(ws)
        .on_upgrade(move |socket| relay(state, auth, agent_id, place, detail, socket, stream)))
}

/// `GET /workspaceagents/{id}/pty?reconnect=ID&height=&width=`: the web terminal. The
/// browser sends JSON text frames (`{"data":"…"}`, `{"height":R,"width":C}`) and gets
/// the terminal's output in binary frames. The same `reconnect` id within a few minutes
/// reattaches to the same shell.
pub async fn pty(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<PtyQuery>,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    terminal(state, auth, id, q, ws).await
}

/// Opens a terminal session on agent `id` for `auth`, who the caller authorized.
pub(crate) async fn terminal(
    state: AppState,
    auth: Auth,
    id: String,
    q: PtyQuery,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    // A command comes only from the template's app, never from the URL: a link cannot
    // make someone's terminal run what it likes.
    let command = match &q.app {
        None => None,
        Some(slug) => Some(app_command(&state, &id, slug).await?),
    };
    let request = StreamRequest::Pty {
        id: q.reconnect.clone(),
        rows: q.height.unwrap_or(24),
        cols: q.width.unwrap_or(80),
        command,
    };
    let (stream, place) = open(&state, &id, &request).await?;
    let detail = format!("terminal {}", q.reconnect);
    Ok(limited(ws)
        .on_upgrade(move |socket| relay_terminal(state, auth, id, place, detail, socket, stream)))
}

/// The command of the agent's `command` app `slug`.
async fn app_command(state: &AppState, agent_id: &str, slug: &str) -> ApiResult<String> {
    let a = state
        .db
        .get_agent_with_workspace(agent_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no workspace agent {agent_id}")))?;
    a.agent
        .spec()?
        .apps
        .into_iter()
        .find(|app| app.slug == slug && !app.command.is_empty())
        .map(|app| app.command)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "agent {} has no command app {slug:?}",
                a.agent.name
            ))
        })
}

/// One input message from the browser, re-encoded for the agent (anything else dropped).
#[derive(serde::Deserialize, serde::Serialize)]
struct TerminalInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    height: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    width: Option<u16>,
}

async fn relay_terminal(
    state: AppState,
    auth: Auth,
    agent_id: String,
    place: String,
    detail: String,
    socket: axum::extract::ws::WebSocket,
    stream: StreamHandle,
) {
    use tokio::io::AsyncWriteExt;
    let Some(_slot) = state.agent_conns.session_slot(&agent_id) else {
        return;
    };
    let audit = SessionAudit::start(&state, Some(&auth), &place, &detail).await;
    let tunnel::Split {
        mut control_rx,
        control_tx,
        mux,
        ..
    } = tunnel::split(socket);
    let (mut from_agent, mut to_agent) = tokio::io::split(stream);
    let (mut from_browser, mut to_browser) = tokio::io::split(mux);
    let mut output = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_agent, &mut to_browser).await;
        let _ = to_browser.shutdown().await;
    });
    // Input is text frames; binary ones mean nothing here and are read and dropped, or
    // they would fill the pipe and stall the whole socket.
    let drain = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_browser, &mut tokio::io::sink()).await;
    });
    let input = async {
        while let Some(text) = control_rx.recv().await {
            let Ok(input) = serde_json::from_str::<TerminalInput>(&text) else {
                continue;
            };
            let Ok(mut line) = serde_json::to_vec(&input) else {
                continue;
            };
            line.push(b'\n');
            if to_agent.write_all(&line).await.is_err() {
                break;
            }
        }
    };
    let outcome = tokio::select! {
        _ = input => "closed".to_string(),
        _ = &mut output => {
            // The shell exited: the page says so and does not start another by itself.
            let done = serde_json::json!({ "ended": "the shell exited" }).to_string();
            let _ = control_tx.send(done).await;
            "the terminal ended".to_string()
        }
        why = ended(&state, Some(&auth), &agent_id) => format!("cut: {why}"),
    };
    output.abort();
    drain.abort();
    audit.end(&state, &outcome).await;
}

/// Opens a session stream to a connected agent of a running workspace and waits for the
/// agent's answer; returns the stream and `owner/workspace.agent` for the audit log.
pub(crate) async fn open(
    state: &AppState,
    agent_id: &str,
    request: &StreamRequest,
) -> ApiResult<(StreamHandle, String)> {
    let a = state
        .db
        .get_agent_with_workspace(agent_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no workspace agent {agent_id}")))?;
    let place = format!("{}/{}.{}", a.owner_name, a.workspace_name, a.agent.name);
    if let Some(why) = super::agents::agent_token_refusal(&a, false) {
        return Err(ApiError::Conflict(format!(
            "{place} cannot take sessions: {why}"
        )));
    }
    if full(state, agent_id) {
        return Err(ApiError::Conflict(format!(
            "{place} already carries {} sessions: close some first",
            super::agents::MAX_SESSIONS_PER_AGENT
        )));
    }
    let control = state.agent_conns.tunnel(agent_id).ok_or_else(|| {
        ApiError::Conflict(format!(
            "the agent of {place} is not connected: see `hangar show {}` for its status",
            a.workspace_name
        ))
    })?;
    let start = async {
        let mut stream = control
            .open_stream()
            .await
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        tunnel::write_line(&mut stream, request).await?;
        let reply: StreamReply = tunnel::read_line(&mut stream).await?;
        Ok::<_, std::io::Error>((stream, reply))
    };
    let (stream, reply) = match tokio::time::timeout(START_TIMEOUT, start).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return Err(ApiError::Conflict(format!(
                "the agent of {place} did not take the session: {e}"
            )))
        }
        Err(_) => {
            return Err(ApiError::Conflict(format!(
                "the agent of {place} did not answer within {}s",
                START_TIMEOUT.as_secs()
            )))
        }
    };
    if let Some(error) = reply.error {
        return Err(ApiError::Conflict(error));
    }
    state
        .db
        .touch_workspace(&a.workspace_id, crate::model::now_ms())
        .await?;
    Ok((stream, place))
}

/// Relays the user's WebSocket and the agent's stream until either ends (or the session
/// is no longer allowed), with audit records at both ends.
async fn relay(
    state: AppState,
    auth: Auth,
    agent_id: String,
    place: String,
    detail: String,
    socket: axum::extract::ws::WebSocket,
    mut stream: StreamHandle,
) {
    let Some(_slot) = state.agent_conns.session_slot(&agent_id) else {
        return;
    };
    let audit = SessionAudit::start(&state, Some(&auth), &place, &detail).await;
    let tunnel::Split {
        mut control_rx,
        control_tx: _control_tx,
        mut mux,
        ..
    } = tunnel::split(socket);
    // Text frames mean nothing on a byte session: they are read and dropped, never queued.
    let drain = tokio::spawn(async move { while control_rx.recv().await.is_some() {} });
    let outcome = tokio::select! {
        r = tunnel::relay(&mut mux, &mut stream) => match r {
            Ok((up, down)) => format!("{up} bytes in, {down} out"),
            Err(e) => format!("ended: {e}"),
        },
        why = ended(&state, Some(&auth), &agent_id) => format!("cut: {why}"),
    };
    drain.abort();
    audit.end(&state, &outcome).await;
}

/// A session's audit records: its start now, its end with how it ended and how long it
/// took. While it lives, the session counts in `hangar_sessions_open`.
pub(crate) struct SessionAudit<'a> {
    user: Option<String>,
    place: &'a str,
    detail: &'a str,
    started: Instant,
    _open: crate::metrics::SessionGauge,
}

/// The kind of session a detail describes (`ssh`, `terminal …`, `tcp port N`, `app …`).
fn session_kind(detail: &str) -> &'static str {
    match detail.split(' ').next() {
        Some("ssh") => "ssh",
        Some("terminal") => "terminal",
        Some("tcp") => "tcp",
        Some("app") => "app",
        Some("echo") => "echo",
        _ => "other",
    }
}

impl<'a> SessionAudit<'a> {
    pub(crate) async fn start(
        state: &AppState,
        auth: Option<&Auth>,
        place: &'a str,
        detail: &'a str,
    ) -> Self {
        let user = auth.map(|a| a.user.id.clone());
        let _ = state
            .db
            .audit(user.as_deref(), "session_start", place, detail)
            .await;
        SessionAudit {
            user,
            place,
            detail,
            started: Instant::now(),
            _open: state.metrics.session(session_kind(detail)),
        }
    }

    pub(crate) async fn end(&self, state: &AppState, outcome: &str) {
        let detail = format!(
            "{}, {outcome}, {:.1}s",
            self.detail,
            self.started.elapsed().as_secs_f64()
        );
        let _ = state
            .db
            .audit(self.user.as_deref(), "session_end", self.place, &detail)
            .await;
    }
}
