//! Database rows into wire types: the one place that decides what a stored row looks like
//! to clients. Stored JSON is decoded here, and a row that does not decode is an internal
//! error naming the row, never an empty default.

use anyhow::Context;
use serde::de::DeserializeOwned;

use crate::db;
use crate::model::agent::AppHealth;
use crate::wire::agents::{AgentLog, AgentView, AppView};
use crate::wire::audit::AuditEntry;
use crate::wire::jobs::{Job, JobLog};
use crate::wire::tokens::Token;
use crate::wire::users::User;
use crate::wire::workspaces::{ResourceMetadata, ResourceView};
use crate::wire::Timestamp;

/// Decodes a JSON column; `what` names the row and column for the operator's log.
pub fn decode<T: DeserializeOwned>(json: &str, what: impl FnOnce() -> String) -> anyhow::Result<T> {
    serde_json::from_str(json).with_context(|| format!("{} holds invalid JSON", what()))
}

fn time(ms: Option<i64>) -> Option<Timestamp> {
    ms.map(Timestamp)
}

impl From<db::users::User> for User {
    fn from(u: db::users::User) -> Self {
        User {
            id: u.id,
            username: u.username,
            email: u.email,
            full_name: u.full_name,
            role: u.role,
            suspended: u.suspended,
            created_at: Timestamp(u.created_at),
        }
    }
}

impl From<db::tokens::ApiToken> for Token {
    fn from(t: db::tokens::ApiToken) -> Self {
        Token {
            id: t.id,
            user_id: t.user_id,
            name: t.name,
            login_type: t.login_type,
            created_at: Timestamp(t.created_at),
            expires_at: time(t.expires_at),
            last_used_at: time(t.last_used_at),
        }
    }
}

impl From<db::jobs::JobLog> for JobLog {
    fn from(l: db::jobs::JobLog) -> Self {
        JobLog {
            id: l.id,
            at: Timestamp(l.at),
            stage: l.stage,
            level: l.level,
            text: l.text,
        }
    }
}

impl From<db::agents::AgentLog> for AgentLog {
    fn from(l: db::agents::AgentLog) -> Self {
        AgentLog {
            id: l.id,
            at: Timestamp(l.at),
            source: l.source,
            level: l.level,
            text: l.text,
        }
    }
}

impl From<db::audit::AuditEntry> for AuditEntry {
    fn from(e: db::audit::AuditEntry) -> Self {
        AuditEntry {
            at: Timestamp(e.at),
            user_id: e.user_id,
            action: e.action,
            target: e.target,
            detail: e.detail,
        }
    }
}

pub fn job(j: db::jobs::Job) -> anyhow::Result<Job> {
    let id = j.id.clone();
    Ok(Job {
        input: decode(&j.input, || format!("job {id}'s input"))?,
        timings: decode(&j.timings, || format!("job {id}'s timings"))?,
        result: decode(&j.result, || format!("job {id}'s result"))?,
        id: j.id,
        kind: j.kind,
        status: j.status,
        worker_id: j.worker_id,
        created_at: Timestamp(j.created_at),
        started_at: time(j.started_at),
        updated_at: Timestamp(j.updated_at),
        completed_at: time(j.completed_at),
        canceled_at: time(j.canceled_at),
        error: j.error,
        error_code: j.error_code,
    })
}

/// Where an agent belongs, which its own row does not say.
pub struct AgentPlace<'a> {
    pub workspace_id: &'a str,
    pub workspace_name: &'a str,
    pub owner_name: &'a str,
}

/// An agent with its status and health at `now`.
pub fn agent(a: &db::agents::Agent, place: &AgentPlace<'_>, now: i64) -> anyhow::Result<AgentView> {
    let spec = a.spec()?;
    let (status, healthy) = a.health(&spec, now);
    let apps: Vec<AppView> = spec
        .apps
        .into_iter()
        .map(|app| {
            let health = match &app.healthcheck {
                None => AppHealth::Disabled,
                Some(_) => a
                    .app_health
                    .get(&app.slug)
                    .copied()
                    .unwrap_or(AppHealth::Initializing),
            };
            AppView { spec: app, health }
        })
        .collect();
    let connected = status == crate::model::agent::AgentStatus::Connected;
    // A disconnected agent's last sample describes a machine that may be gone.
    let usage = a.last_usage.clone().filter(|_| connected);
    let alerts = usage
        .as_ref()
        .map(|u| super::usage::alerts(&spec.resources_monitoring, u))
        .unwrap_or_default();
    // As in Coder, an app failing its healthcheck makes its agent unhealthy.
    let healthy = healthy && !apps.iter().any(|app| app.health == AppHealth::Unhealthy);
    Ok(AgentView {
        id: a.id.clone(),
        name: a.name.clone(),
        workspace_id: place.workspace_id.to_string(),
        workspace_name: place.workspace_name.to_string(),
        owner_name: place.owner_name.to_string(),
        host_address: a.host_address.clone(),
        external: a.external,
        os: a.os.clone(),
        arch: a.arch.clone(),
        version: a.version.clone(),
        hostname: a.hostname.clone(),
        lifecycle: a.lifecycle,
        status,
        healthy,
        first_connected_at: time(a.first_connected_at),
        last_connected_at: time(a.last_connected_at),
        disconnected_at: time(a.disconnected_at),
        created_at: Timestamp(a.created_at),
        troubleshooting_url: spec.troubleshooting_url,
        dir: spec.dir,
        apps,
        display_apps: spec.display_apps,
        // What a disconnected agent last reported is not there to reach.
        listening_ports: if connected {
            a.listening_ports.clone()
        } else {
            Vec::new()
        },
        alerts,
        usage,
        devcontainers: spec.devcontainers,
    })
}

pub fn resource(
    r: db::workspaces::Resource,
    agents: Vec<AgentView>,
) -> anyhow::Result<ResourceView> {
    let id = r.id.clone();
    let metadata: Vec<ResourceMetadata> =
        decode(&r.metadata, || format!("resource {id}'s metadata"))?;
    Ok(ResourceView {
        kind: r.kind,
        lifetime: r.lifetime,
        id: r.id,
        address: r.address,
        type_: r.kind_type,
        name: r.name,
        hide: r.hide,
        icon: r.icon,
        daily_cost: r.daily_cost,
        metadata,
        agents,
    })
}
