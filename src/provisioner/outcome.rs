//! What a job leaves behind, stored in one transaction with the job's completion: a
//! crash or a database error can never leave half a build (a state without its
//! resources, agents without a finished job, a deleted workspace whose job still runs).

use std::collections::HashMap;

use anyhow::Context;

use super::classify::{self, Graph};
use super::queue::JobResult;
use crate::db::agents::Agent;
use crate::db::jobs::{Completion, Job};
use crate::db::templates::TemplateVersion;
use crate::db::workspaces::Resource;
use crate::db::Database;
use crate::model::agent::Lifecycle;
use crate::model::parameter::Parameter;
use crate::model::resource::Lifetime;
use crate::model::resource::PreviewResource;
use crate::model::secret::hash_token;
use crate::model::{new_id, now_ms};

/// Everything a job's run decided to store. The job body fills it as it goes, so what
/// it learned before a failure (a failed apply's state) is stored with the failure.
#[derive(Default)]
pub struct Record {
    /// The build's terraform state, kept even when the apply failed.
    pub state: Option<(String, Vec<u8>)>,
    /// A successful build's classified resources and agents.
    pub build: Option<BuildRecord>,
    /// A delete (or orphan delete) that succeeded: the workspace is gone.
    pub delete_workspace: Option<String>,
    /// What an import learned about its version.
    pub import: Option<ImportRecord>,
}

pub struct BuildRecord {
    pub build_id: String,
    pub resources: Vec<Resource>,
    /// Each agent with the SHA-256 of its token.
    pub agents: Vec<(Agent, String)>,
}

pub struct ImportRecord {
    pub version_id: String,
    pub parameters: Vec<Parameter>,
    pub preview: Vec<PreviewResource>,
    pub graph: String,
    pub has_external_agent: bool,
    /// The template to make this version active in (the push asked for it).
    pub activate_in: Option<String>,
}

impl Record {
    /// Only the state: what is still worth keeping when the rest could not be stored.
    fn state_only(&self) -> Record {
        Record {
            state: self.state.clone(),
            ..Record::default()
        }
    }
}

/// Stores `record` and completes the job with `result`, all in one transaction. False
/// (and nothing stored) when the job is no longer this worker's.
async fn store(
    db: &Database,
    job: &Job,
    worker_id: &str,
    result: &JobResult,
    timings: &str,
    record: &Record,
) -> anyhow::Result<bool> {
    let mut tx = db.pool().begin().await?;
    if let Some((build_id, state)) = &record.state {
        db.set_build_state(&mut *tx, build_id, state)
            .await
            .context("storing the build's state")?;
    }
    if let Some(b) = &record.build {
        db.set_build_resources(&mut *tx, &b.build_id, &b.resources)
            .await
            .context("storing the build's resources")?;
        db.insert_agents(&mut *tx, &b.agents)
            .await
            .context("storing the build's agents")?;
    }
    if let Some(ws) = &record.delete_workspace {
        db.mark_workspace_deleted(&mut *tx, ws)
            .await
            .context("marking the workspace deleted")?;
    }
    if let Some(i) = &record.import {
        db.set_template_version_import(
            &mut *tx,
            &i.version_id,
            &i.parameters,
            &i.preview,
            Some(&i.graph),
            i.has_external_agent,
        )
        .await
        .context("storing what the import found")?;
        if let Some(template_id) = &i.activate_in {
            db.activate_if_newest(&mut *tx, template_id, &i.version_id)
                .await
                .context("activating the imported version")?;
        }
    }
    let output = result.output.to_string();
    let completed = db
        .complete_job(
            &mut *tx,
            &job.id,
            worker_id,
            &Completion {
                status: result.status,
                error: result.error.as_deref(),
                error_code: result.error_code.as_deref(),
                timings,
                result: &output,
            },
        )
        .await
        .context("completing the job")?;
    if !completed {
        return Ok(false);
    }
    tx.commit().await.context("committing the job's outcome")?;
    Ok(true)
}

/// Ends a job: its record and its completion together. When that fails, the job fails
/// with the reason, keeping only the state (the one thing that must never be lost:
/// it lists what terraform created). Returns the result that was stored.
pub async fn finish(
    db: &Database,
    job: &Job,
    worker_id: &str,
    result: JobResult,
    timings: &str,
    record: &Record,
) -> anyhow::Result<JobResult> {
    let err = match store(db, job, worker_id, &result, timings, record).await {
        Ok(true) => return Ok(result),
        Ok(false) => {
            // Reaped as lost meanwhile: the job is over, but this state is newer than any
            // the reaper could recover, so the next build must start from it.
            tracing::warn!(job = %job.id, "the job was no longer this worker's when it ended");
            if let Some((build_id, state)) = &record.state {
                db.set_build_state(db.pool(), build_id, state).await?;
            }
            return Ok(result);
        }
        Err(e) => e,
    };
    tracing::error!(job = %job.id, error = format!("{err:#}"), "storing a job's outcome");
    let failed = JobResult::failed(
        "internal",
        format!("the job ran, but storing its outcome failed ({err:#}); the terraform state was kept, so the next build manages whatever exists"),
    );
    store(db, job, worker_id, &failed, timings, &record.state_only())
        .await
        .context("storing a job's failure after its outcome could not be stored")?;
    Ok(failed)
}

/// Classifies a build's state into the resources and agents (token hashes only) it
/// records.
pub fn classify_build(
    build_id: &str,
    version: &TemplateVersion,
    state: &[classify::StateResource],
) -> anyhow::Result<BuildRecord> {
    let lifetimes: HashMap<String, Lifetime> = version
        .resources
        .iter()
        .map(|p| (p.address.clone(), p.lifetime))
        .collect();
    let graph = Graph::parse(version.graph.as_deref().unwrap_or("digraph {}"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let classified = classify::classify(&graph, state, &lifetimes);
    let resources: Vec<Resource> = classified
        .resources
        .iter()
        .map(|r| Resource {
            id: new_id(),
            build_id: build_id.to_string(),
            address: r.address.clone(),
            kind_type: r.type_.clone(),
            name: r.name.clone(),
            kind: r.kind,
            lifetime: r.lifetime,
            hide: r.hide,
            icon: r.icon.clone().unwrap_or_default(),
            daily_cost: r.daily_cost,
            metadata: serde_json::to_string(&r.metadata).unwrap_or_else(|_| "[]".into()),
        })
        .collect();
    let now = now_ms();
    let agents: Vec<(Agent, String)> = classified
        .agents
        .iter()
        .map(|a| {
            let manifest = agent_manifest(a, state, &classified.provider_resources);
            (
                Agent {
                    id: new_id(),
                    build_id: build_id.to_string(),
                    name: a.name.clone(),
                    host_address: a.host.clone(),
                    external: a.external,
                    os: a.os.clone(),
                    arch: a.arch.clone(),
                    manifest: manifest.to_string(),
                    lifecycle: Lifecycle::Created,
                    version: String::new(),
                    hostname: String::new(),
                    first_connected_at: None,
                    last_connected_at: None,
                    disconnected_at: None,
                    created_at: now,
                    listening_ports: Vec::new(),
                    app_health: Default::default(),
                    last_usage: None,
                },
                hash_token(&a.token),
            )
        })
        .collect();
    Ok(BuildRecord {
        build_id: build_id.to_string(),
        resources,
        agents,
    })
}

/// What the agent needs to run (`agent::protocol::AgentSpec`): its own settings and the
/// apps, scripts and env that name it, plus `agent_id` to find its token in the state.
/// The token itself is never part of it.
fn agent_manifest(
    agent: &classify::AgentRecord,
    state: &[classify::StateResource],
    extras: &[classify::StateResource],
) -> serde_json::Value {
    use crate::wire::agent::AgentSpec;
    let attrs = state
        .iter()
        .find(|r| r.address == agent.address)
        .map(|r| without_nulls(r.masked_attributes()))
        .unwrap_or_default();
    let mut spec: AgentSpec = serde_json::from_value(attrs.clone()).unwrap_or_default();
    let mine = |kind: &'static str| {
        extras.iter().filter(move |r| {
            r.type_.ends_with(kind) && r.attr_str("agent_id").as_deref() == Some(agent.id.as_str())
        })
    };
    spec.scripts = mine("_script")
        .filter_map(|r| serde_json::from_value(without_nulls(r.masked_attributes())).ok())
        .collect();
    spec.apps = mine("_app")
        .filter_map(|r| serde_json::from_value(without_nulls(r.masked_attributes())).ok())
        .collect();
    for env in mine("_env") {
        if let (Some(name), Some(value)) = (env.attr_str("name"), env.attr_str("value")) {
            spec.env.insert(name, value);
        }
    }
    let mut out = serde_json::to_value(&spec).unwrap_or_default();
    out["agent_id"] = agent.id.clone().into();
    out
}

/// Terraform writes unset attributes as null; the agent's spec wants them absent so
/// its defaults apply.
fn without_nulls(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(map) => map
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k, without_nulls(v)))
            .collect(),
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(without_nulls).collect())
        }
        other => other,
    }
}
