//! `hangar_agent`: the process that connects a workspace back to Hangar.
//!
//! Token: fresh random bytes on create *and on every refresh*, like Coder's provider, so
//! each build (plan refreshes) hands out a new token and the previous one dies with the
//! previous build. The token is sensitive and never part of `init_script`.
//!
//! Init script: `HANGAR_AGENT_SCRIPT_<os>_<arch>` (rendered by the server), with
//! `${ACCESS_URL}` and `${AUTH_TYPE}` replaced as Coder does. The script reads the token
//! from `HANGAR_AGENT_TOKEN` in its environment: a template runs it with
//! `HANGAR_AGENT_TOKEN = hangar_agent.x.token` set (see `templates/local`). Keeping the
//! token out of the script keeps the script non-sensitive and printable.

use rand::RngCore;
use tf_provider::schema::{AttributeType, NestedBlock, Schema};
use tf_provider::value::ValueAny;
use tf_provider::Diagnostics;

use super::common::{
    attr_error, block, boolean, computed, defaulted, get_blocks, get_i64, get_str, number,
    optional, required, s, schema, sensitive, string, with_blocks, Obj, ResourceSpec,
};
use super::contract::{
    agent_script_env_name, lookup, lookup_non_empty, running_agent_token_env_name,
};

pub struct Agent;

pub const OSES: &[&str] = &["linux", "darwin", "windows"];
pub const ARCHES: &[&str] = &["amd64", "arm64", "armv7"];
/// Coder's agent auth kinds. Only `token` connects here; the others are recorded and
/// refused at connect with a reason (no cloud metadata service to verify them against).
pub const AUTHS: &[&str] = &[
    "token",
    "google-instance-identity",
    "aws-instance-identity",
    "azure-instance-identity",
];
pub const API_KEY_SCOPES: &[&str] = &["all", "no_user_data"];

/// A new agent token: 32 random bytes, hex (shell-safe, no quoting needed).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl ResourceSpec for Agent {
    fn schema(&self) -> Schema {
        let metadata = block(
            "A value the agent computes by running `script` every `interval` seconds and reports to the dashboard.",
            vec![
                ("key", required(string(), "Unique key of the item.")),
                ("display_name", optional(string(), "Name shown for the item.")),
                ("script", required(string(), "Shell script whose output is the value.")),
                ("interval", required(number(), "Seconds between runs.")),
                ("timeout", optional(number(), "Seconds a run may take.")),
                ("order", optional(number(), "Position; lower first.")),
            ],
        );
        let display_apps = block(
            "Built-in apps shown for the agent. Unset attributes mean Coder's defaults (all but vscode_insiders).",
            vec![
                ("vscode", optional(boolean(), "VS Code Desktop.")),
                ("vscode_insiders", optional(boolean(), "VS Code Insiders.")),
                ("web_terminal", optional(boolean(), "Web terminal.")),
                ("ssh_helper", optional(boolean(), "SSH instructions.")),
                ("port_forwarding_helper", optional(boolean(), "Port forwarding.")),
            ],
        );
        let memory = block(
            "Alert when the workspace's memory is fuller than `threshold` percent.",
            vec![
                ("enabled", required(boolean(), "Whether to alert.")),
                (
                    "threshold",
                    required(number(), "Percent of the memory limit, 0 to 100."),
                ),
            ],
        );
        let volume = block(
            "Alert when the filesystem at `path` is fuller than `threshold` percent; the agent reports its use.",
            vec![
                ("path", required(string(), "Absolute path in the workspace.")),
                ("enabled", required(boolean(), "Whether to alert.")),
                ("threshold", required(number(), "Percent of the filesystem's size, 0 to 100.")),
            ],
        );
        let resources_monitoring = with_blocks(
            block("Thresholds the dashboard raises alerts at.", vec![]),
            vec![
                ("memory", NestedBlock::Optional(memory)),
                ("volume", NestedBlock::Set(volume)),
            ],
        );
        schema(with_blocks(
            block(
                "An agent: run its `init_script` with `HANGAR_AGENT_TOKEN` set to its `token` on the machine that hosts the workspace.",
                vec![
                    ("os", required(string(), "`linux`, `darwin` or `windows`.")),
                    ("arch", required(string(), "`amd64`, `arm64` or `armv7`.")),
                    ("auth", defaulted(string(), "Authentication: `token` (the default); the instance-identity kinds (`google-instance-identity`, `aws-instance-identity`, `azure-instance-identity`) are accepted but refused when the agent connects.")),
                    ("api_key_scope", defaulted(string(), "What the agent's token may reach: `all` (default) or `no_user_data` (not the owner's external auth tokens or git SSH key).")),
                    ("dir", optional(string(), "Starting directory of sessions; default `$HOME`.")),
                    ("env", optional(AttributeType::Map(Box::new(string())), "Environment variables of sessions and scripts.")),
                    ("startup_script", optional(string(), "Runs when the agent starts.")),
                    ("startup_script_behavior", defaulted(string(), "`non-blocking` (default) or `blocking` (logins wait for it).")),
                    ("shutdown_script", optional(string(), "Runs before the agent stops.")),
                    ("connection_timeout", defaulted(number(), "Seconds until an agent that never connected counts as timed out; 0 never. Default 120.")),
                    ("troubleshooting_url", optional(string(), "Link shown when the agent is unhealthy.")),
                    ("motd_file", optional(string(), "File shown on SSH login.")),
                    ("order", optional(number(), "Position among agents; lower first.")),
                    ("id", computed(string(), "ID of the agent.")),
                    ("init_script", computed(string(), "Script that downloads and starts the agent; needs `HANGAR_AGENT_TOKEN` in its environment.")),
                    ("token", sensitive(computed(string(), "The agent's secret; new on every build. Export it as `HANGAR_AGENT_TOKEN`."))),
                ],
            ),
            vec![
                ("metadata", NestedBlock::List(metadata)),
                ("display_apps", NestedBlock::Optional(display_apps)),
                ("resources_monitoring", NestedBlock::Optional(resources_monitoring)),
            ],
        ))
    }

    fn validate(&self, config: &Obj, diags: &mut Diagnostics) {
        for (attr, allowed) in [("os", OSES), ("arch", ARCHES)] {
            if let Some(value) = get_str(config, attr) {
                if !allowed.contains(&value) {
                    attr_error(
                        diags,
                        attr,
                        format!("{attr} \"{value}\" is not one of {}", allowed.join(", ")),
                    );
                }
            }
        }
        if let Some(url) = get_str(config, "troubleshooting_url") {
            if let Some(scheme) = super::common::script_scheme(url) {
                attr_error(
                    diags,
                    "troubleshooting_url",
                    format!(
                        "a {scheme}: troubleshooting_url runs script in the dashboard; use http(s)"
                    ),
                );
            }
        }
        for (attr, allowed) in [("auth", AUTHS), ("api_key_scope", API_KEY_SCOPES)] {
            if let Some(value) = get_str(config, attr).filter(|v| !allowed.contains(v)) {
                attr_error(
                    diags,
                    attr,
                    format!("{attr} \"{value}\" is not one of {}", allowed.join(", ")),
                );
            }
        }
        if let Some(b) = get_str(config, "startup_script_behavior") {
            if b != "blocking" && b != "non-blocking" {
                attr_error(
                    diags,
                    "startup_script_behavior",
                    format!(
                        "startup_script_behavior \"{b}\" must be \"blocking\" or \"non-blocking\""
                    ),
                );
            }
        }
        if let Some(t) = get_i64(config, "connection_timeout") {
            if t < 0 {
                attr_error(
                    diags,
                    "connection_timeout",
                    format!("connection_timeout {t} must be at least 0"),
                );
            }
        }
        for monitoring in get_blocks(config, "resources_monitoring") {
            let thresholds = get_blocks(&monitoring, "memory")
                .into_iter()
                .chain(get_blocks(&monitoring, "volume"));
            for t in thresholds {
                if let Some(v) = get_i64(&t, "threshold").filter(|v| !(0..=100).contains(v)) {
                    attr_error(
                        diags,
                        "resources_monitoring",
                        format!("threshold {v} must be a percent, from 0 to 100"),
                    );
                }
                if let Some(p) = get_str(&t, "path").filter(|p| !p.starts_with('/')) {
                    attr_error(
                        diags,
                        "resources_monitoring",
                        format!("volume path \"{p}\" must be absolute"),
                    );
                }
            }
        }
        let mut keys = std::collections::HashSet::new();
        for item in get_blocks(config, "metadata") {
            if let Some(key) = get_str(&item, "key") {
                if !keys.insert(key.to_string()) {
                    attr_error(
                        diags,
                        "metadata",
                        format!("duplicate agent metadata key \"{key}\""),
                    );
                }
            }
        }
    }

    /// Every attribute, as in Coder: an agent whose settings change is a new agent.
    fn force_new(&self) -> &'static [&'static str] {
        &[
            "os",
            "arch",
            "auth",
            "api_key_scope",
            "dir",
            "env",
            "startup_script",
            "startup_script_behavior",
            "shutdown_script",
            "connection_timeout",
            "troubleshooting_url",
            "motd_file",
            "order",
            "metadata",
            "display_apps",
            "resources_monitoring",
        ]
    }

    fn computed(&self) -> &'static [&'static str] {
        &["id", "token", "init_script"]
    }

    fn defaults(&self) -> Vec<(&'static str, ValueAny)> {
        vec![
            ("auth", s("token")),
            ("api_key_scope", s("all")),
            ("startup_script_behavior", s("non-blocking")),
            ("connection_timeout", ValueAny::Number(120)),
        ]
    }

    fn refresh(&self, state: &mut Obj) {
        let running =
            get_str(state, "id").and_then(|id| lookup_non_empty(&running_agent_token_env_name(id)));
        state.insert("token".into(), s(running.unwrap_or_else(new_token)));
        let os = get_str(state, "os").unwrap_or_default().to_string();
        let arch = get_str(state, "arch").unwrap_or_default().to_string();
        let auth = get_str(state, "auth").unwrap_or("token").to_string();
        state.insert("init_script".into(), s(init_script(&os, &arch, &auth)));
    }
}

/// The init script for a platform, from the environment; empty when the runner gave none
/// (e.g. `terraform plan` outside Hangar), which templates must tolerate.
pub fn init_script(os: &str, arch: &str, auth: &str) -> String {
    let Some(script) = lookup(&agent_script_env_name(os, arch)) else {
        return String::new();
    };
    let mut url = super::access_url();
    if !url.ends_with('/') {
        url.push('/');
    }
    script
        .replace("${ACCESS_URL}", &url)
        .replace("${AUTH_TYPE}", auth)
}
