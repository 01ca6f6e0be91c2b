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
    /// Agents (of a claim build) due a fresh token at their next connect.
    pub rotate_tokens: Vec<String>,
    /// A claim build's workspace: its claim ends with the job, whatever the outcome.
    pub claim_of: Option<String>,
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
    pub facts: crate::model::preset::VersionFacts,
    /// The template to make this version active in (the push asked for it).
    pub activate_in: Option<String>,
}

impl Record {
    /// Only the state: what is still worth keeping when the rest could not be stored.
    fn state_only(&self) -> Record {
        Record {
            state: self.state.clone(),
            claim_of: self.claim_of.clone(),
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
        if !record.rotate_tokens.is_empty() {
            let hashes: Vec<String> = b.agents.iter().map(|(_, h)| h.clone()).collect();
            db.hand_over_token_hashes(&mut tx, &hashes)
                .await
                .context("handing the prebuild's agents over")?;
        }
        db.insert_agents(&mut *tx, &b.agents)
            .await
            .context("storing the build's agents")?;
        db.rotate_tokens_later(&mut tx, &record.rotate_tokens)
            .await
            .context("marking the claimed agents' tokens for rotation")?;
    }
    if let Some(ws) = &record.claim_of {
        db.end_claim(&mut tx, ws)
            .await
            .context("ending the claim")?;
    }
    if let Some(ws) = &record.delete_workspace {
        db.mark_workspace_deleted(&mut *tx, ws)
            .await
            .context("marking the workspace deleted")?;
    }
    if let Some(i) = &record.import {
        let found = crate::db::templates::VersionImport {
            parameters: &i.parameters,
            resources: &i.preview,
            graph: Some(&i.graph),
            has_external_agent: i.has_external_agent,
            facts: &i.facts,
        };
        db.set_template_version_import(&mut *tx, &i.version_id, &found)
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
            let manifest = agent_manifest(a, state, &classified.provider_resources)?;
            Ok((
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
            ))
        })
        .collect::<anyhow::Result<_>>()?;
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
) -> anyhow::Result<serde_json::Value> {
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
    let task_apps: std::collections::HashSet<String> = extras
        .iter()
        .filter(|r| r.type_.ends_with("_ai_task"))
        .filter_map(|r| r.attr_str("app_id"))
        .collect();
    spec.apps = mine("_app")
        .filter_map(|r| {
            let mut app: crate::wire::agent::AppSpec =
                serde_json::from_value(without_nulls(r.masked_attributes())).ok()?;
            app.ai_task = r.attr_str("id").is_some_and(|id| task_apps.contains(&id));
            Some(app)
        })
        .collect();
    let mut envs: Vec<EnvEntry> = mine("_env")
        .filter_map(|r| {
            Some(EnvEntry {
                address: r.address.clone(),
                name: r.attr_str("name")?,
                value: r.attr_str("value").unwrap_or_default(),
                strategy: r
                    .attr_str("merge_strategy")
                    .unwrap_or_else(|| "replace".into()),
            })
        })
        .collect();
    envs.sort_by(|a, b| a.address.cmp(&b.address));
    spec.env = merge_env(std::mem::take(&mut spec.env), &envs)
        .map_err(|e| anyhow::anyhow!("agent \"{}\": {e}", agent.name))?;
    spec.devcontainers = mine("_devcontainer")
        .filter_map(|r| serde_json::from_value(without_nulls(r.masked_attributes())).ok())
        .collect();
    let mut out = serde_json::to_value(&spec).unwrap_or_default();
    out["agent_id"] = agent.id.clone().into();
    Ok(out)
}

/// One `hangar_env` of an agent.
pub struct EnvEntry {
    pub address: String,
    pub name: String,
    pub value: String,
    pub strategy: String,
}

/// The agent's environment: its `env` map, then each `hangar_env` in address order:
/// `replace` sets the value, `append`/`prepend` join it to the current one with `:`,
/// `error` refuses a name another `hangar_env` also sets.
pub fn merge_env(
    mut env: std::collections::BTreeMap<String, String>,
    entries: &[EnvEntry],
) -> Result<std::collections::BTreeMap<String, String>, String> {
    for e in entries {
        let others: Vec<&str> = entries
            .iter()
            .filter(|o| o.name == e.name && o.address != e.address)
            .map(|o| o.address.as_str())
            .collect();
        if e.strategy == "error" && !others.is_empty() {
            return Err(format!(
                "{} sets {} with merge_strategy \"error\", and {} sets it too: remove one, or use append, prepend or replace",
                e.address,
                e.name,
                others.join(", ")
            ));
        }
        let joined = match (e.strategy.as_str(), env.get(&e.name)) {
            ("append", Some(current)) if !current.is_empty() => format!("{current}:{}", e.value),
            ("prepend", Some(current)) if !current.is_empty() => format!("{}:{current}", e.value),
            _ => e.value.clone(),
        };
        env.insert(e.name.clone(), joined);
    }
    Ok(env)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(address: &str, name: &str, value: &str, strategy: &str) -> EnvEntry {
        EnvEntry {
            address: address.into(),
            name: name.into(),
            value: value.into(),
            strategy: strategy.into(),
        }
    }

    #[test]
    fn env_merges_by_strategy_in_address_order() {
        let base = [("PATH".to_string(), "/usr/bin".to_string())].into();
        let env = merge_env(
            base,
            &[
                entry("hangar_env.a", "PATH", "/opt/a", "append"),
                entry("hangar_env.b", "PATH", "/opt/b", "append"),
                entry("hangar_env.c", "PATH", "/first", "prepend"),
                entry("hangar_env.d", "EDITOR", "vi", "replace"),
                entry("hangar_env.e", "EDITOR", "vim", "replace"),
                entry("hangar_env.f", "NEW", "x", "append"),
            ],
        )
        .unwrap();
        assert_eq!(env["PATH"], "/first:/usr/bin:/opt/a:/opt/b");
        assert_eq!(env["EDITOR"], "vim", "the last by address wins");
        assert_eq!(env["NEW"], "x", "nothing to join to");
    }

    #[test]
    fn error_strategy_refuses_a_second_definition() {
        let err = merge_env(
            Default::default(),
            &[
                entry("hangar_env.a", "TOKEN", "1", "error"),
                entry("hangar_env.b", "TOKEN", "2", "replace"),
            ],
        )
        .unwrap_err();
        assert!(
            err.contains("hangar_env.a") && err.contains("hangar_env.b"),
            "{err}"
        );
        assert!(merge_env(
            Default::default(),
            &[entry("hangar_env.a", "T", "1", "error")]
        )
        .is_ok());
    }
}
