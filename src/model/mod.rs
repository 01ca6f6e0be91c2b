//! Plain domain types and the rules that govern them. No I/O here.

pub mod agent;
pub mod archive;
pub mod name;
pub mod parameter;
pub mod resource;
pub mod secret;
pub mod status;

pub use name::{Name, NameError};
pub use status::{JobKind, JobStatus, Role, Transition, WorkspaceStatus};

/// Milliseconds since the Unix epoch: every stored time uses it.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A fresh opaque id.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An agent's connection status from its last contact: `connecting` before the first,
/// `connected` while heartbeats are fresh, `disconnected` after it went away, and
/// `timeout` when it never came within its connection timeout.
pub fn agent_status(agent: &crate::db::agents::Agent, now: i64) -> &'static str {
    /// Heartbeats come every few seconds; three missed ones mean the agent is gone.
    const STALE_MS: i64 = 30_000;
    const CONNECT_TIMEOUT_MS: i64 = 120_000;
    match (agent.last_connected_at, agent.disconnected_at) {
        (None, _) if now - agent.created_at > CONNECT_TIMEOUT_MS => "timeout",
        (None, _) => "connecting",
        (Some(last), Some(gone)) if gone >= last => "disconnected",
        (Some(last), _) if now - last > STALE_MS => "disconnected",
        _ => "connected",
    }
}
