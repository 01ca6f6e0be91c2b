//! Agent lifecycle states and the derived connection status. Status is never stored: it
//! follows from the times of last contact, like a workspace's status follows from its
//! latest build.

use serde::{Deserialize, Serialize};

/// What the agent says it is doing (reported by the agent itself, stored as text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    Created,
    Starting,
    Ready,
    StartTimeout,
    StartError,
    ShuttingDown,
    ShutdownTimeout,
    ShutdownError,
    Off,
}

impl Lifecycle {
    pub const ALL: &'static [Lifecycle] = &[
        Lifecycle::Created,
        Lifecycle::Starting,
        Lifecycle::Ready,
        Lifecycle::StartTimeout,
        Lifecycle::StartError,
        Lifecycle::ShuttingDown,
        Lifecycle::ShutdownTimeout,
        Lifecycle::ShutdownError,
        Lifecycle::Off,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Created => "created",
            Lifecycle::Starting => "starting",
            Lifecycle::Ready => "ready",
            Lifecycle::StartTimeout => "start_timeout",
            Lifecycle::StartError => "start_error",
            Lifecycle::ShuttingDown => "shutting_down",
            Lifecycle::ShutdownTimeout => "shutdown_timeout",
            Lifecycle::ShutdownError => "shutdown_error",
            Lifecycle::Off => "off",
        }
    }
}

impl std::str::FromStr for Lifecycle {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Lifecycle::ALL
            .iter()
            .copied()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = Lifecycle::ALL.iter().map(|l| l.as_str()).collect();
                format!(
                    "unknown agent lifecycle {s:?}; expected one of: {}",
                    all.join(", ")
                )
            })
    }
}

impl std::fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the server can currently reach the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Never connected yet, still within its connection timeout.
    Connecting,
    Connected,
    /// Was connected; the socket closed or it stopped sending heartbeats.
    Disconnected,
    /// Never connected within its connection timeout.
    Timeout,
}

impl AgentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Connecting => "connecting",
            AgentStatus::Connected => "connected",
            AgentStatus::Disconnected => "disconnected",
            AgentStatus::Timeout => "timeout",
        }
    }
}

impl std::fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An app's health, as its agent's healthcheck last found it (Coder's four states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AppHealth {
    /// The app has no healthcheck.
    #[default]
    Disabled,
    /// Not checked successfully yet, nor failed `threshold` times.
    Initializing,
    Healthy,
    Unhealthy,
}

impl AppHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            AppHealth::Disabled => "disabled",
            AppHealth::Initializing => "initializing",
            AppHealth::Healthy => "healthy",
            AppHealth::Unhealthy => "unhealthy",
        }
    }
}

impl std::fmt::Display for AppHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How often a connected agent sends a heartbeat; last contact is refreshed by each one.
pub const HEARTBEAT_INTERVAL_MS: i64 = 5_000;

/// An agent silent for this long counts as disconnected even though no close was seen
/// (the server that held its socket died, or the network dropped it). Three missed
/// heartbeats, as Coder does with its inactive-disconnect timeout.
pub const INACTIVE_DISCONNECT_MS: i64 = 3 * HEARTBEAT_INTERVAL_MS;

/// The contact times of an agent, all unix ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contact {
    pub created_at: i64,
    pub first_connected_at: Option<i64>,
    pub last_connected_at: Option<i64>,
    pub disconnected_at: Option<i64>,
}

/// The agent's status at `now`. `connection_timeout_secs` = 0 means an agent that never
/// connected is `connecting` forever (as `hangar_agent.connection_timeout` documents).
pub fn agent_status(c: &Contact, now: i64, connection_timeout_secs: i64) -> AgentStatus {
    let Some(_) = c.first_connected_at else {
        let timed_out =
            connection_timeout_secs > 0 && now - c.created_at > connection_timeout_secs * 1000;
        return if timed_out {
            AgentStatus::Timeout
        } else {
            AgentStatus::Connecting
        };
    };
    let last = c.last_connected_at.unwrap_or(0);
    if c.disconnected_at.is_some_and(|d| d >= last) || now - last > INACTIVE_DISCONNECT_MS {
        AgentStatus::Disconnected
    } else {
        AgentStatus::Connected
    }
}

/// HEALTHY means reachable and finished starting.
pub fn agent_healthy(status: AgentStatus, lifecycle: Lifecycle) -> bool {
    status == AgentStatus::Connected && lifecycle == Lifecycle::Ready
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    fn contact(first: Option<i64>, last: Option<i64>, disc: Option<i64>) -> Contact {
        Contact {
            created_at: T0,
            first_connected_at: first,
            last_connected_at: last,
            disconnected_at: disc,
        }
    }

    #[test]
    fn never_connected_is_connecting_until_the_timeout() {
        let c = contact(None, None, None);
        assert_eq!(agent_status(&c, T0 + 1_000, 120), AgentStatus::Connecting);
        assert_eq!(agent_status(&c, T0 + 121_000, 120), AgentStatus::Timeout);
        assert_eq!(
            agent_status(&c, T0 + 10_000_000, 0),
            AgentStatus::Connecting
        );
    }

    #[test]
    fn recent_contact_is_connected() {
        let c = contact(Some(T0), Some(T0 + 50_000), None);
        assert_eq!(agent_status(&c, T0 + 52_000, 120), AgentStatus::Connected);
        // A reconnect after a disconnect counts again.
        let c = contact(Some(T0), Some(T0 + 50_000), Some(T0 + 40_000));
        assert_eq!(agent_status(&c, T0 + 52_000, 120), AgentStatus::Connected);
    }

    #[test]
    fn a_close_or_silence_is_disconnected() {
        let c = contact(Some(T0), Some(T0 + 50_000), Some(T0 + 51_000));
        assert_eq!(
            agent_status(&c, T0 + 52_000, 120),
            AgentStatus::Disconnected
        );
        let c = contact(Some(T0), Some(T0 + 50_000), None);
        assert_eq!(
            agent_status(&c, T0 + 50_000 + INACTIVE_DISCONNECT_MS + 1, 120),
            AgentStatus::Disconnected
        );
        // Once connected, the connection timeout no longer applies.
        assert_eq!(agent_status(&c, T0 + 51_000, 1), AgentStatus::Connected);
    }

    #[test]
    fn healthy_needs_connected_and_ready() {
        assert!(agent_healthy(AgentStatus::Connected, Lifecycle::Ready));
        assert!(!agent_healthy(AgentStatus::Connected, Lifecycle::Starting));
        assert!(!agent_healthy(AgentStatus::Disconnected, Lifecycle::Ready));
    }

    #[test]
    fn lifecycle_texts_round_trip() {
        for l in Lifecycle::ALL {
            assert_eq!(l.as_str().parse::<Lifecycle>().unwrap(), *l);
            assert_eq!(
                serde_json::to_string(l).unwrap(),
                format!("\"{}\"", l.as_str())
            );
        }
        assert!("bogus".parse::<Lifecycle>().unwrap_err().contains("ready"));
    }
}
