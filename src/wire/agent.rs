//! What the agent and the server say to each other: the manifest (over HTTP) and the
//! messages on the agent's WebSocket, one JSON object per text frame. Both sides use
//! these types, so they agree by construction.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::agent::{AppHealth, Lifecycle};

/// Why the server refuses the token of an agent whose workspace was deleted. An agent
/// that hears it exits: nothing will ever accept it again.
pub const DELETED_WORKSPACE_REFUSAL: &str = "this agent token belongs to a deleted workspace";

/// What a build records for an agent (`workspace_agents.manifest`), written by the build
/// runner from the `hangar_agent`, `hangar_script`, `hangar_env` and `hangar_app`
/// resources. Every field has a default so an older or partial manifest still parses.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(default)]
pub struct AgentSpec {
    /// Working directory of scripts; empty means the agent's `$HOME`.
    pub dir: String,
    pub env: BTreeMap<String, String>,
    pub startup_script: String,
    /// `non-blocking` (default) or `blocking`; recorded for logins, scripts run the same.
    pub startup_script_behavior: String,
    /// Seconds the startup scripts may take before the lifecycle is `start_timeout`;
    /// 0 means no limit.
    pub startup_script_timeout: u64,
    pub shutdown_script: String,
    /// Seconds the shutdown scripts may take; 0 means no limit.
    pub shutdown_script_timeout: u64,
    /// Seconds until an agent that never connected counts as timed out; 0 never.
    pub connection_timeout: i64,
    pub troubleshooting_url: String,
    pub scripts: Vec<ScriptSpec>,
    pub metadata: Vec<MetadataSpec>,
    pub apps: Vec<AppSpec>,
    /// A file in the workspace shown at interactive SSH logins; empty for none.
    pub motd_file: String,
    /// Which built-in apps the dashboard offers for this agent.
    #[serde(deserialize_with = "one_block")]
    pub display_apps: DisplayApps,
    /// Thresholds the dashboard raises alerts at; the agent samples the listed volumes.
    #[serde(deserialize_with = "one_block")]
    pub resources_monitoring: ResourcesMonitoring,
    /// `token`, or a cloud instance identity kind (refused when the agent connects:
    /// this server cannot verify instance identities).
    pub auth: String,
    /// `all` or `no_user_data` (the token may not read the owner's external auth tokens).
    pub api_key_scope: String,
    /// Dev Containers the agent starts (`hangar_devcontainer`).
    pub devcontainers: Vec<DevcontainerSpec>,
}

/// A `hangar_devcontainer`: a project folder whose `.devcontainer` the agent brings up.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(default)]
pub struct DevcontainerSpec {
    pub workspace_folder: String,
    /// Empty for the default (`.devcontainer/devcontainer.json` in the folder).
    pub config_path: String,
}

/// A `resources_monitoring` block: alert when memory or a volume is fuller than its
/// threshold (percent).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(default)]
pub struct ResourcesMonitoring {
    #[serde(deserialize_with = "one_block")]
    pub memory: Option<MemoryMonitor>,
    #[serde(rename = "volume")]
    pub volumes: Vec<VolumeMonitor>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(default)]
pub struct MemoryMonitor {
    pub enabled: bool,
    /// Percent of the memory limit.
    pub threshold: u8,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(default)]
pub struct VolumeMonitor {
    /// An absolute path in the workspace; its filesystem is measured.
    pub path: String,
    pub enabled: bool,
    /// Percent of the filesystem's size.
    pub threshold: u8,
}

/// What the agent measured of its workspace at one moment: the container's share when it
/// runs in one (cgroups), else the machine's.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Usage {
    /// Milliseconds since the epoch.
    pub collected_at: i64,
    /// Cores busy on average since the previous sample.
    pub cpu_used_cores: f64,
    /// Cores the workspace may use (its CPU quota, else the machine's cores).
    pub cpu_total_cores: f64,
    pub memory_used_bytes: u64,
    /// The memory limit (the container's, else the machine's).
    pub memory_total_bytes: u64,
    /// The home directory's filesystem first, then each monitored volume.
    pub disks: Vec<DiskUsage>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct DiskUsage {
    pub path: String,
    pub used_bytes: u64,
    pub total_bytes: u64,
}

/// Bytes for people: `512 B`, `3.2 MiB`, `1.5 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `cpu 0.25/2 cores, memory 1.0/4.0 GiB (25%), disk / 3.0/10.0 GiB (30%)`.
impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cpu {:.2}/{} cores, memory {}/{} ({:.0}%)",
            self.cpu_used_cores,
            self.cpu_total_cores,
            human_bytes(self.memory_used_bytes),
            human_bytes(self.memory_total_bytes),
            percent(self.memory_used_bytes, self.memory_total_bytes)
        )?;
        for d in &self.disks {
            write!(
                f,
                ", disk {} {}/{} ({:.0}%)",
                d.path,
                human_bytes(d.used_bytes),
                human_bytes(d.total_bytes),
                percent(d.used_bytes, d.total_bytes)
            )?;
        }
        Ok(())
    }
}

/// Percent of `total` that `used` is (0 when total is 0).
pub fn percent(used: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        used as f64 * 100.0 / total as f64
    }
}

/// A `display_apps` block: Coder's defaults when it is absent or an attribute is unset.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct DisplayApps {
    #[serde(default = "yes")]
    pub vscode: bool,
    #[serde(default)]
    pub vscode_insiders: bool,
    #[serde(default = "yes")]
    pub web_terminal: bool,
    #[serde(default = "yes")]
    pub ssh_helper: bool,
    #[serde(default = "yes")]
    pub port_forwarding_helper: bool,
}

impl Default for DisplayApps {
    fn default() -> Self {
        DisplayApps {
            vscode: true,
            vscode_insiders: false,
            web_terminal: true,
            ssh_helper: true,
            port_forwarding_helper: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// A nested block that holds at most one item: Terraform's state writes it as a list
/// (empty when absent), the stored manifest as the item itself.
fn one_block<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrList<T> {
        List(Vec<T>),
        One(T),
    }
    Ok(match Option::<OneOrList<T>>::deserialize(d)? {
        Some(OneOrList::One(t)) => t,
        Some(OneOrList::List(items)) => items.into_iter().next().unwrap_or_default(),
        None => T::default(),
    })
}

/// An app's `healthcheck` block: the agent polls `url` every `interval` seconds; the app
/// is unhealthy after `threshold` failures in a row.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(default)]
pub struct HealthcheckSpec {
    pub url: String,
    pub interval: u64,
    pub threshold: u64,
}

/// A `hangar_script`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(default)]
pub struct ScriptSpec {
    pub display_name: String,
    pub script: String,
    pub run_on_start: bool,
    pub run_on_stop: bool,
    /// Six-field cron schedule (seconds first; UTC).
    pub cron: Option<String>,
    /// Seconds before the script is killed; 0 means none.
    pub timeout: u64,
    pub log_path: Option<String>,
    pub start_blocks_login: bool,
}

/// A `metadata` block of a `hangar_agent`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(default)]
pub struct MetadataSpec {
    pub key: String,
    pub display_name: String,
    pub script: String,
    /// Seconds between runs (at least 1).
    pub interval: u64,
    /// Seconds a run may take; 0 means the interval.
    pub timeout: u64,
    pub order: i64,
}

/// A `hangar_app`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(default)]
pub struct AppSpec {
    pub slug: String,
    pub display_name: String,
    pub url: String,
    pub command: String,
    pub icon: String,
    pub external: bool,
    pub subdomain: bool,
    pub share: String,
    /// `None` when the app has no `healthcheck` block.
    #[serde(deserialize_with = "one_block")]
    pub healthcheck: Option<HealthcheckSpec>,
    pub hidden: bool,
    pub order: i64,
    /// Markdown shown when hovering over the app.
    pub tooltip: String,
    pub group: String,
    /// The interface of the workspace's AI tasks (`hangar_ai_task`), shown in a sidebar.
    pub ai_task: bool,
}

/// `GET /api/v2/workspaceagents/me`: everything the agent needs, identity included.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Manifest {
    pub agent_id: String,
    pub agent_name: String,
    pub workspace_id: String,
    pub workspace_name: String,
    pub owner_name: String,
    pub access_url: String,
    #[serde(flatten)]
    pub spec: AgentSpec,
}

/// One line of script output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct LogLine {
    pub at: i64,
    /// Which script: `startup_script`, `shutdown_script`, a script's display name, `agent`.
    pub source: String,
    /// `info` (stdout), `error` (stderr).
    pub level: String,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct MetadataResult {
    pub key: String,
    pub value: String,
    pub error: String,
    pub collected_at: i64,
}

/// Agent → server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMessage {
    /// First message of every connection. After it the agent sends what it queued while
    /// away, then its current lifecycle again, so a server that missed a message catches
    /// up without ever seeing `ready` before the startup output.
    Hello {
        version: String,
        os: String,
        arch: String,
        hostname: String,
    },
    Lifecycle {
        state: Lifecycle,
    },
    Logs {
        logs: Vec<LogLine>,
    },
    Metadata {
        results: Vec<MetadataResult>,
    },
    /// The TCP ports listening in the workspace, whenever they change.
    Ports {
        ports: Vec<u16>,
    },
    /// The health of every app with a healthcheck (by slug), whenever one changes.
    AppHealth {
        apps: BTreeMap<String, AppHealth>,
    },
    /// A sample of the workspace's CPU, memory and disks, every few seconds.
    Usage {
        usage: Usage,
    },
    Heartbeat,
}

/// Server → agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Answer to a heartbeat: the agent knows the server is still there.
    Pong,
    /// The server is closing this connection; `reason` is for the agent's log.
    Goodbye { reason: String },
    /// The workspace changed hands (a user claimed a prebuilt workspace): the agent
    /// restarts with this new token (the old one stops working), reading its manifest and
    /// running its startup scripts again as the new owner's.
    Reinit { token: String },
}

/// The platform names templates use (`hangar_agent.os`/`arch`) for this build.
pub use crate::model::this_platform;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_tagged_json() {
        let m = AgentMessage::Lifecycle {
            state: Lifecycle::Ready,
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"type":"lifecycle","state":"ready"}"#
        );
        let back: AgentMessage = serde_json::from_str(r#"{"type":"heartbeat"}"#).unwrap();
        assert_eq!(back, AgentMessage::Heartbeat);
    }

    #[test]
    fn usage_reads_as_a_sentence() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * 1024 * 1024 + 200 * 1024), "3.2 MiB");
        let u = Usage {
            collected_at: 0,
            cpu_used_cores: 0.25,
            cpu_total_cores: 2.0,
            memory_used_bytes: 1 << 30,
            memory_total_bytes: 4 << 30,
            disks: vec![DiskUsage {
                path: "/home/ann".into(),
                used_bytes: 3 << 30,
                total_bytes: 10 << 30,
            }],
        };
        assert_eq!(
            u.to_string(),
            "cpu 0.25/2 cores, memory 1.0 GiB/4.0 GiB (25%), disk /home/ann 3.0 GiB/10.0 GiB (30%)"
        );
    }

    #[test]
    fn a_partial_spec_parses() {
        let spec: AgentSpec = serde_json::from_str(r#"{"startup_script":"echo hi"}"#).unwrap();
        assert_eq!(spec.startup_script, "echo hi");
        assert!(spec.scripts.is_empty());
        let spec: AgentSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(spec, AgentSpec::default());
    }

    #[test]
    fn single_blocks_parse_from_state_lists_and_from_the_stored_manifest() {
        // Terraform state: lists, unset attributes already dropped.
        let state = r#"{"display_apps":[{"vscode":false}],
            "apps":[{"slug":"a","healthcheck":[{"url":"http://localhost:1","interval":5,"threshold":3}]},
                    {"slug":"b","healthcheck":[]}]}"#;
        let spec: AgentSpec = serde_json::from_str(state).unwrap();
        assert!(!spec.display_apps.vscode);
        assert!(spec.display_apps.web_terminal && !spec.display_apps.vscode_insiders);
        let check = spec.apps[0].healthcheck.as_ref().unwrap();
        assert_eq!((check.interval, check.threshold), (5, 3));
        assert_eq!(spec.apps[1].healthcheck, None);
        // The stored manifest round-trips.
        let stored = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<AgentSpec>(&stored).unwrap(), spec);
        // No block at all: Coder's defaults.
        assert_eq!(
            serde_json::from_str::<AgentSpec>("{}")
                .unwrap()
                .display_apps,
            DisplayApps::default()
        );
    }
}
