//! What users see of workspace agents: status, logs, metadata.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::agent::{AppSpec, DisplayApps, Usage};
use super::Timestamp;
use crate::model::agent::{AgentStatus, AppHealth, Lifecycle};

/// An agent with its derived status and health.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct AgentView {
    pub id: String,
    pub name: String,
    pub workspace_id: String,
    pub workspace_name: String,
    pub owner_name: String,
    /// The resource that runs this agent (none for external agents).
    pub host_address: Option<String>,
    pub external: bool,
    pub os: String,
    pub arch: String,
    pub version: String,
    pub hostname: String,
    pub lifecycle: Lifecycle,
    pub status: AgentStatus,
    /// Connected and ready.
    pub healthy: bool,
    pub first_connected_at: Option<Timestamp>,
    pub last_connected_at: Option<Timestamp>,
    pub disconnected_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub troubleshooting_url: String,
    /// The template's `dir` for sessions (empty: the home directory).
    #[serde(default)]
    pub dir: String,
    /// The `hangar_app`s this agent serves, with their health.
    pub apps: Vec<AppView>,
    /// Which built-in apps (terminal, SSH, VS Code, ports) the dashboard offers.
    #[serde(default)]
    pub display_apps: DisplayApps,
    /// TCP ports listening in the workspace (as the agent last reported them).
    #[serde(default)]
    pub listening_ports: Vec<u16>,
    /// The latest resource usage sample, while the agent is connected.
    #[serde(default)]
    pub usage: Option<Usage>,
    /// What the template's `resources_monitoring` thresholds raise for that sample.
    #[serde(default)]
    pub alerts: Vec<String>,
    /// Dev Containers the agent brings up (`hangar_devcontainer`).
    #[serde(default)]
    pub devcontainers: Vec<crate::wire::agent::DevcontainerSpec>,
}

/// An app and its health.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct AppView {
    #[serde(flatten)]
    pub spec: AppSpec,
    pub health: AppHealth,
}

/// One stored line of an agent's script output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct AgentLog {
    pub id: i64,
    pub at: Timestamp,
    pub source: String,
    pub level: String,
    pub text: String,
}

/// `GET /workspaceagents/{id}/logs?after=N` or `?tail=N`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgentLogsQuery {
    /// Lines after this id (0: from the start).
    #[serde(default)]
    pub after: i64,
    /// Only the last `tail` lines (overrides `after`).
    pub tail: Option<i64>,
}

/// One metadata item: its definition and the latest result, if any arrived yet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct MetadataView {
    pub key: String,
    pub display_name: String,
    pub interval: u64,
    pub value: String,
    pub error: String,
    pub collected_at: Option<Timestamp>,
}

/// `GET /workspaceagents/{id}/tcp?port=`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TcpQuery {
    /// The TCP port on the agent's loopback.
    pub port: u16,
}

/// `GET /workspaceagents/{id}/pty?reconnect=&height=&width=`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PtyQuery {
    /// The terminal's id (the browser makes one and keeps it in its URL): the same id
    /// reattaches to the same shell.
    pub reconnect: String,
    pub height: Option<u16>,
    pub width: Option<u16>,
    /// A `command` app of the agent, by slug: a new terminal runs its command instead of
    /// a plain shell.
    pub app: Option<String>,
}
