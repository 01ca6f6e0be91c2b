//! The agent's one outbound WebSocket. Messages from scripts queue here while the server
//! is away and go out in order once it is back; every connection starts with a hello
//! that carries the current lifecycle, so a restarted server catches up.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::protocol::{AgentMessage, ServerMessage};
use super::ssh::SessionEnv;
use super::{backoff, AgentConfig};
use crate::model::agent::{Lifecycle, HEARTBEAT_INTERVAL_MS};
use crate::model::secret::Secret;
use crate::tunnel;
use crate::wire::agent::DELETED_WORKSPACE_REFUSAL;
use std::sync::Arc;

/// The longest wait between reconnect attempts: after a server restart the agent is back
/// within this (plus the connect itself).
pub const RECONNECT_CAP: Duration = Duration::from_secs(5);

/// After this many refusals in a row the agent retries less often (its workspace was
/// probably stopped or deleted; it keeps trying in case it comes back).
const REFUSALS_BEFORE_SLOWING: u32 = 12;

/// Queued messages kept while disconnected; beyond it the oldest logs are dropped.
const MAX_PENDING: usize = 20_000;

/// What the agent says about itself on every connect.
#[derive(Debug, Clone)]
pub struct Hello {
    pub version: String,
    pub os: String,
    pub arch: String,
    pub hostname: String,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[derive(Debug)]
enum ConnectError {
    /// The server refused the token (401): its message says why.
    Refused(String),
    Other(String),
}

fn ws_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    let rest = base
        .strip_prefix("https://")
        .map(|r| format!("wss://{r}"))
        .or_else(|| base.strip_prefix("http://").map(|r| format!("ws://{r}")))
        .unwrap_or_else(|| base.to_string());
    format!("{rest}/api/v2/workspaceagents/me/ws")
}

async fn connect(config: &AgentConfig) -> Result<Socket, ConnectError> {
    let mut req = ws_url(&config.url)
        .into_client_request()
        .map_err(|e| ConnectError::Other(format!("bad server URL {}: {e}", config.url)))?;
    let auth = format!("Bearer {}", config.token.expose())
        .parse()
        .map_err(|_| ConnectError::Other("the agent token is not a valid header value".into()))?;
    req.headers_mut().insert(
        tokio_tungstenite::tungstenite::http::header::AUTHORIZATION,
        auth,
    );
    // No Nagle: session bytes are often small (keystrokes, request lines) and must not
    // wait for the previous segment's acknowledgement.
    let connecting = tokio_tungstenite::connect_async_with_config(req, None, true);
    match tokio::time::timeout(Duration::from_secs(10), connecting).await {
        Err(_) => Err(ConnectError::Other("timed out connecting".into())),
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
            let status = resp.status();
            let message = resp
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice::<crate::wire::ErrorBody>(b).ok())
                .map(|b| b.message)
                .unwrap_or_else(|| format!("the server answered {status}"));
            if status.as_u16() == 401 {
                Err(ConnectError::Refused(message))
            } else {
                Err(ConnectError::Other(message))
            }
        }
        Ok(Err(e)) => Err(ConnectError::Other(e.to_string())),
    }
}

/// Keeps the queue bounded while the server is away: drops the oldest logs and metadata
/// (lifecycle changes are small and always kept).
fn push(pending: &mut VecDeque<AgentMessage>, msg: AgentMessage) {
    pending.push_back(msg);
    while pending.len() > MAX_PENDING {
        match pending
            .iter()
            .position(|m| !matches!(m, AgentMessage::Lifecycle { .. }))
        {
            Some(i) => {
                pending.remove(i);
            }
            None => break,
        }
    }
}

/// Takes the next message to send, merging consecutive log messages into one frame.
fn next_batch(pending: &mut VecDeque<AgentMessage>) -> Option<AgentMessage> {
    let first = pending.pop_front()?;
    let AgentMessage::Logs { mut logs } = first else {
        return Some(first);
    };
    while logs.len() < 500 {
        match pending.front() {
            Some(AgentMessage::Logs { .. }) => {
                if let Some(AgentMessage::Logs { logs: more }) = pending.pop_front() {
                    logs.extend(more);
                }
            }
            _ => break,
        }
    }
    Some(AgentMessage::Logs { logs })
}

async fn send(control: &mpsc::Sender<String>, msg: &AgentMessage) -> Result<(), String> {
    let text = serde_json::to_string(msg).map_err(|e| e.to_string())?;
    control
        .send(text)
        .await
        .map_err(|_| "the connection is closed".to_string())
}

/// How a session ended.
enum Ended {
    /// The reporters are gone and everything was delivered: the agent is exiting.
    Done,
    Lost(String),
    /// The server handed this agent a new token (its workspace changed hands).
    Reinit(Secret),
}

/// One connection: the control protocol in text frames, and the tunnel whose streams
/// the server opens for user sessions (ended with the connection).
async fn session(
    socket: Socket,
    sessions: &Arc<SessionEnv>,
    hello: &Hello,
    rx: &mut mpsc::UnboundedReceiver<AgentMessage>,
    pending: &mut VecDeque<AgentMessage>,
    lifecycle: &watch::Receiver<Lifecycle>,
    reporters_gone: &mut bool,
) -> Ended {
    let tunnel::Split {
        mut control_rx,
        control_tx,
        mux,
        closed,
    } = tunnel::split(socket);
    let env = sessions.clone();
    let streams = tokio::spawn(tunnel::agent_side(mux, move |s| {
        super::sessions::serve(s, env.clone())
    }));
    let ended = control(
        &mut control_rx,
        &control_tx,
        hello,
        rx,
        pending,
        lifecycle,
        reporters_gone,
    )
    .await;
    streams.abort();
    if matches!(ended, Ended::Done) {
        // The agent is about to exit: the last messages (lifecycle `off`) must leave
        // before the process does, so wait until the socket closed behind them.
        drop(control_tx);
        let _ = streams.await;
        let _ = tokio::time::timeout(Duration::from_secs(5), closed).await;
    }
    ended
}

async fn control(
    control_rx: &mut mpsc::Receiver<String>,
    control_tx: &mpsc::Sender<String>,
    hello: &Hello,
    rx: &mut mpsc::UnboundedReceiver<AgentMessage>,
    pending: &mut VecDeque<AgentMessage>,
    lifecycle: &watch::Receiver<Lifecycle>,
    reporters_gone: &mut bool,
) -> Ended {
    let first = AgentMessage::Hello {
        version: hello.version.clone(),
        os: hello.os.clone(),
        arch: hello.arch.clone(),
        hostname: hello.hostname.clone(),
    };
    if let Err(e) = send(control_tx, &first).await {
        return Ended::Lost(e);
    }
    // Read the lifecycle first, then take everything already queued: whatever was
    // reported before this state (its scripts' output) is then sent before it.
    let current = *lifecycle.borrow();
    while let Ok(m) = rx.try_recv() {
        push(pending, m);
    }
    push(pending, AgentMessage::Lifecycle { state: current });
    let interval = Duration::from_millis(HEARTBEAT_INTERVAL_MS as u64);
    let mut heartbeat = tokio::time::interval(interval);
    let mut last_heard = Instant::now();
    loop {
        // Deliver the queue before waiting; a failed send keeps the message for the next
        // connection.
        while let Some(msg) = next_batch(pending) {
            if let Err(e) = send(control_tx, &msg).await {
                pending.push_front(msg);
                return Ended::Lost(e);
            }
        }
        if *reporters_gone {
            return Ended::Done;
        }
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(m) => push(pending, m),
                None => *reporters_gone = true,
            },
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > interval * 3 {
                    return Ended::Lost("the server stopped answering heartbeats".into());
                }
                if let Err(e) = send(control_tx, &AgentMessage::Heartbeat).await {
                    return Ended::Lost(e);
                }
            }
            text = control_rx.recv() => match text {
                None => return Ended::Lost("the server closed the connection".into()),
                Some(text) => {
                    last_heard = Instant::now();
                    match serde_json::from_str::<ServerMessage>(&text) {
                        Ok(ServerMessage::Pong) => {}
                        Ok(ServerMessage::Goodbye { reason }) => {
                            return Ended::Lost(format!("the server said goodbye: {reason}"));
                        }
                        Ok(ServerMessage::Reinit { token }) => {
                            return Ended::Reinit(Secret::new(token));
                        }
                        // A newer server may say things this agent does not know yet.
                        Err(_) => {}
                    }
                }
            },
        }
    }
}

/// Connects and reconnects until every reporter is gone and the queue is delivered.
pub async fn run(
    hello: Hello,
    mut config: AgentConfig,
    sessions: Arc<SessionEnv>,
    mut rx: mpsc::UnboundedReceiver<AgentMessage>,
    lifecycle: watch::Receiver<Lifecycle>,
    gone: tokio_util::sync::CancellationToken,
) {
    let mut pending = VecDeque::new();
    let mut reporters_gone = false;
    let mut attempt = 0u32;
    let mut refusals = 0u32;
    loop {
        let cap = match connect(&config).await {
            Ok(socket) => {
                tracing::info!("connected to the server");
                attempt = 0;
                refusals = 0;
                match session(
                    socket,
                    &sessions,
                    &hello,
                    &mut rx,
                    &mut pending,
                    &lifecycle,
                    &mut reporters_gone,
                )
                .await
                {
                    Ended::Done => return,
                    Ended::Lost(why) => {
                        tracing::warn!(reason = %why, "disconnected from the server")
                    }
                    Ended::Reinit(token) => {
                        tracing::info!("the workspace changed hands: restarting with a new token");
                        let err = super::restart_with_token(&token);
                        // Could not restart (the binary is gone?): carry on with the new
                        // token, on the old manifest.
                        tracing::warn!(error = %err, "restarting the agent; continuing as is");
                        config.token = token;
                    }
                }
                RECONNECT_CAP
            }
            Err(ConnectError::Refused(why)) if why.contains(DELETED_WORKSPACE_REFUSAL) => {
                tracing::error!("this agent's workspace was deleted: exiting");
                gone.cancel();
                return;
            }
            Err(ConnectError::Refused(why)) => {
                refusals += 1;
                tracing::warn!(reason = %why, "the server refused this agent's token");
                if refusals > REFUSALS_BEFORE_SLOWING {
                    Duration::from_secs(30)
                } else {
                    RECONNECT_CAP
                }
            }
            Err(ConnectError::Other(why)) => {
                tracing::warn!(reason = %why, "cannot connect to the server");
                RECONNECT_CAP
            }
        };
        if reporters_gone && pending.is_empty() {
            return;
        }
        let wait = backoff(attempt, cap);
        attempt = attempt.saturating_add(1);
        // Keep taking messages while waiting so the scripts never block on us.
        let deadline = Instant::now() + wait;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                msg = rx.recv(), if !reporters_gone => match msg {
                    Some(m) => push(&mut pending, m),
                    None => reporters_gone = true,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::agent::LogLine;

    fn log(text: &str) -> AgentMessage {
        AgentMessage::Logs {
            logs: vec![LogLine {
                at: 0,
                source: "s".into(),
                level: "info".into(),
                text: text.into(),
            }],
        }
    }

    #[test]
    fn websocket_url_follows_the_scheme() {
        assert_eq!(
            ws_url("http://h:3000/"),
            "ws://h:3000/api/v2/workspaceagents/me/ws"
        );
        assert_eq!(ws_url("https://h"), "wss://h/api/v2/workspaceagents/me/ws");
    }

    #[test]
    fn consecutive_logs_go_out_as_one_batch_in_order() {
        let mut q = VecDeque::new();
        push(&mut q, log("a"));
        push(&mut q, log("b"));
        push(
            &mut q,
            AgentMessage::Lifecycle {
                state: Lifecycle::Ready,
            },
        );
        push(&mut q, log("c"));
        let AgentMessage::Logs { logs } = next_batch(&mut q).unwrap() else {
            panic!("expected logs")
        };
        assert_eq!(logs.len(), 2);
        assert!(matches!(
            next_batch(&mut q),
            Some(AgentMessage::Lifecycle { .. })
        ));
        assert!(matches!(
            next_batch(&mut q),
            Some(AgentMessage::Logs { .. })
        ));
        assert!(next_batch(&mut q).is_none());
    }

    #[test]
    fn the_queue_drops_old_logs_but_keeps_lifecycle() {
        let mut q = VecDeque::new();
        push(
            &mut q,
            AgentMessage::Lifecycle {
                state: Lifecycle::Starting,
            },
        );
        for i in 0..MAX_PENDING + 10 {
            push(&mut q, log(&i.to_string()));
        }
        assert_eq!(q.len(), MAX_PENDING);
        assert!(matches!(q.front(), Some(AgentMessage::Lifecycle { .. })));
    }

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        for attempt in 0..20 {
            let d = backoff(attempt, RECONNECT_CAP);
            assert!(d <= RECONNECT_CAP, "{d:?}");
        }
        assert!(backoff(0, RECONNECT_CAP) <= Duration::from_millis(250));
        assert!(backoff(10, RECONNECT_CAP) >= RECONNECT_CAP / 2);
    }
}
