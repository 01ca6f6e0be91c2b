//! The `workspace_agents`, `agent_logs` and `agent_metadata` tables.

use sqlx::Row;

use super::{flag, Database};
use crate::model::agent::Lifecycle;
use crate::model::Transition;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Agent {
    pub id: String,
    pub build_id: String,
    pub name: String,
    /// The resource that runs this agent (None for external agents).
    pub host_address: Option<String>,
    pub external: bool,
    pub os: String,
    pub arch: String,
    /// JSON: what the agent needs to run (dir, env, startup/shutdown scripts, scripts,
    /// metadata definitions, apps). Built by the provisioner from the state.
    pub manifest: String,
    pub lifecycle: Lifecycle,
    pub version: String,
    pub hostname: String,
    pub first_connected_at: Option<i64>,
    pub last_connected_at: Option<i64>,
    pub disconnected_at: Option<i64>,
    pub created_at: i64,
    /// The TCP ports listening in the workspace, as the agent last reported them.
    pub listening_ports: Vec<u16>,
    /// Each app's health by slug, as the agent last reported it (apps without a
    /// healthcheck are absent).
    pub app_health: std::collections::BTreeMap<String, crate::model::agent::AppHealth>,
    /// The latest resource usage sample written (None until one arrived).
    pub last_usage: Option<crate::wire::agent::Usage>,
}

impl Agent {
    /// What the runner recorded for this agent. A manifest that does not parse is an
    /// error naming the agent: it is never read as an agent with no scripts.
    pub fn spec(&self) -> Result<crate::wire::agent::AgentSpec, sqlx::Error> {
        super::parse_json(
            format_args!("the manifest of agent {}", self.id),
            &self.manifest,
        )
    }

    /// Its connection status at `now` (`spec` is `self.spec()`, parsed once by the caller) and whether it is healthy (connected and ready):
    /// the one place both are derived from the row.
    pub fn health(
        &self,
        spec: &crate::wire::agent::AgentSpec,
        now: i64,
    ) -> (crate::model::agent::AgentStatus, bool) {
        use crate::model::agent::{agent_healthy, agent_status, Contact};
        let contact = Contact {
            created_at: self.created_at,
            first_connected_at: self.first_connected_at,
            last_connected_at: self.last_connected_at,
            disconnected_at: self.disconnected_at,
        };
        let status = agent_status(&contact, now, spec.connection_timeout);
        (status, agent_healthy(status, self.lifecycle))
    }
}

pub const AGENT_COLUMNS: &str = "id, build_id, name, host_address, external, os, arch, manifest, lifecycle, version, hostname, first_connected_at, last_connected_at, disconnected_at, created_at, listening_ports, app_health, last_usage";

pub fn agent_from_row(row: &sqlx::any::AnyRow) -> Result<Agent, sqlx::Error> {
    Ok(Agent {
        id: row.try_get("id")?,
        build_id: row.try_get("build_id")?,
        name: row.try_get("name")?,
        host_address: row.try_get("host_address")?,
        external: flag(row.try_get("external")?),
        os: row.try_get("os")?,
        arch: row.try_get("arch")?,
        manifest: row.try_get("manifest")?,
        lifecycle: super::parse_text(
            "workspace_agents.lifecycle",
            &row.try_get::<String, _>("lifecycle")?,
        )?,
        version: row.try_get("version")?,
        hostname: row.try_get("hostname")?,
        first_connected_at: row.try_get("first_connected_at")?,
        last_connected_at: row.try_get("last_connected_at")?,
        disconnected_at: row.try_get("disconnected_at")?,
        created_at: row.try_get("created_at")?,
        app_health: super::parse_json(
            "workspace_agents.app_health",
            &row.try_get::<String, _>("app_health")?,
        )?,
        listening_ports: super::parse_json(
            "workspace_agents.listening_ports",
            &row.try_get::<String, _>("listening_ports")?,
        )?,
        last_usage: match row.try_get::<String, _>("last_usage")?.as_str() {
            "" => None,
            text => Some(super::parse_json("workspace_agents.last_usage", text)?),
        },
    })
}

impl Database {
    /// Records a build's agents with the SHA-256 of their tokens, all or nothing (inside
    /// the caller's transaction when `conn` is one).
    pub async fn insert_agents<'a, A>(
        &self,
        conn: A,
        agents: &[(Agent, String)],
    ) -> Result<(), sqlx::Error>
    where
        A: sqlx::Acquire<'a, Database = sqlx::Any>,
    {
        let mut tx = conn.begin().await?;
        for (a, token_hash) in agents {
            sqlx::query("INSERT INTO workspace_agents (id, build_id, name, host_address, external, os, arch, token_hash, manifest, lifecycle, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'created', $10)")
                .bind(&a.id)
                .bind(&a.build_id)
                .bind(&a.name)
                .bind(&a.host_address)
                .bind(a.external as i64)
                .bind(&a.os)
                .bind(&a.arch)
                .bind(token_hash)
                .bind(&a.manifest)
                .bind(a.created_at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    pub async fn list_agents(&self, build_id: &str) -> Result<Vec<Agent>, sqlx::Error> {
        let sql = format!(
            "SELECT {AGENT_COLUMNS} FROM workspace_agents WHERE build_id = $1 ORDER BY name"
        );
        let rows = sqlx::query(&sql)
            .bind(build_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(agent_from_row).collect()
    }

    /// The agents of these builds, by build, each list ordered by name.
    pub async fn agents_of_builds(
        &self,
        build_ids: &[String],
    ) -> Result<std::collections::HashMap<String, Vec<Agent>>, sqlx::Error> {
        let mut out: std::collections::HashMap<String, Vec<Agent>> = Default::default();
        if build_ids.is_empty() {
            return Ok(out);
        }
        let sql = format!(
            "SELECT {AGENT_COLUMNS} FROM workspace_agents WHERE build_id IN ({}) ORDER BY name",
            super::workspaces::placeholders(1, build_ids.len())
        );
        let mut query = sqlx::query(&sql);
        for id in build_ids {
            query = query.bind(id.as_str());
        }
        for row in query.fetch_all(self.pool()).await? {
            let a = agent_from_row(&row)?;
            out.entry(a.build_id.clone()).or_default().push(a);
        }
        Ok(out)
    }
}

/// An agent with what decides whether its token still works and who may see it.
#[derive(Debug, Clone)]
pub struct AgentWithWorkspace {
    pub agent: Agent,
    /// Compared in constant time by the caller after the lookup by hash.
    pub token_hash: String,
    pub workspace_id: String,
    pub workspace_name: String,
    pub workspace_deleted: bool,
    pub owner_id: String,
    pub owner_name: String,
    pub build_number: i64,
    pub build_transition: Transition,
    /// The highest build number of the workspace: the agent is current only if its build
    /// is that one.
    pub latest_build_number: i64,
    /// The transition of the workspace's latest build.
    pub latest_build_transition: Transition,
    /// A user claimed this prebuilt workspace and its claim build is not over: the
    /// prebuild's agents stay connected through it.
    pub claim_pending: bool,
}

/// One stored line of an agent's script output.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct AgentLog {
    pub id: i64,
    pub at: i64,
    pub source: String,
    pub level: String,
    pub text: String,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct AgentMetadataRow {
    pub key: String,
    pub value: String,
    pub error: String,
    pub collected_at: i64,
}

fn with_workspace_from_row(row: &sqlx::any::AnyRow) -> Result<AgentWithWorkspace, sqlx::Error> {
    Ok(AgentWithWorkspace {
        agent: agent_from_row(row)?,
        token_hash: row.try_get("token_hash")?,
        workspace_id: row.try_get("ws_id")?,
        workspace_name: row.try_get("ws_name")?,
        workspace_deleted: flag(row.try_get("ws_deleted")?),
        owner_id: row.try_get("owner_id")?,
        owner_name: row.try_get("owner_name")?,
        build_number: row.try_get("build_number")?,
        build_transition: super::parse_text(
            "workspace_builds.transition",
            &row.try_get::<String, _>("build_transition")?,
        )?,
        latest_build_number: row.try_get("latest_build_number")?,
        latest_build_transition: super::parse_text(
            "workspace_builds.transition",
            &row.try_get::<String, _>("latest_build_transition")?,
        )?,
        claim_pending: flag(row.try_get("claim_pending")?),
    })
}

fn with_workspace_sql(filter: &str) -> String {
    let cols = AGENT_COLUMNS
        .split(", ")
        .map(|c| format!("a.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {cols}, a.token_hash, w.id AS ws_id, w.name AS ws_name, w.deleted AS ws_deleted, \
         w.owner_id, u.username AS owner_name, b.number AS build_number, b.transition AS build_transition, \
         (SELECT MAX(b2.number) FROM workspace_builds b2 WHERE b2.workspace_id = w.id) AS latest_build_number, \
         (SELECT b3.transition FROM workspace_builds b3 WHERE b3.workspace_id = w.id ORDER BY b3.number DESC LIMIT 1) AS latest_build_transition, \
         CAST(CASE WHEN EXISTS (SELECT 1 FROM prebuild_claims pc WHERE pc.workspace_id = w.id) THEN 1 ELSE 0 END AS BIGINT) AS claim_pending \
         FROM workspace_agents a \
         JOIN workspace_builds b ON b.id = a.build_id \
         JOIN workspaces w ON w.id = b.workspace_id \
         JOIN users u ON u.id = w.owner_id \
         WHERE {filter}"
    )
}

impl Database {
    /// The agent whose token hashes to `token_hash`, with its workspace and build.
    pub async fn find_agent_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<AgentWithWorkspace>, sqlx::Error> {
        // A claimed prebuild's agent briefly shares its token with the claim build's row
        // (until it gets its own): the latest build's row is the one that counts.
        let sql = with_workspace_sql("a.token_hash = $1") + " ORDER BY b.number DESC LIMIT 1";
        let row = sqlx::query(&sql)
            .bind(token_hash)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(with_workspace_from_row).transpose()
    }

    pub async fn get_agent_with_workspace(
        &self,
        id: &str,
    ) -> Result<Option<AgentWithWorkspace>, sqlx::Error> {
        let row = sqlx::query(&with_workspace_sql("a.id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(with_workspace_from_row).transpose()
    }

    /// A new connection: the first one also sets `first_connected_at`.
    pub async fn agent_connected(&self, id: &str, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE workspace_agents SET first_connected_at = COALESCE(first_connected_at, $1), last_connected_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Last contact (a heartbeat).
    pub async fn agent_seen(&self, id: &str, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE workspace_agents SET last_connected_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn agent_disconnected(&self, id: &str, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE workspace_agents SET disconnected_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// What the agent reported about itself when it connected.
    pub async fn set_agent_hello(
        &self,
        id: &str,
        version: &str,
        os: &str,
        arch: &str,
        hostname: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE workspace_agents SET version = $1, os = $2, arch = $3, hostname = $4 WHERE id = $5")
            .bind(version)
            .bind(os)
            .bind(arch)
            .bind(hostname)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn set_agent_usage(
        &self,
        id: &str,
        usage: &crate::wire::agent::Usage,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE workspace_agents SET last_usage = $1 WHERE id = $2")
            .bind(super::to_json(usage)?)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn set_agent_ports(&self, id: &str, ports: &[u16]) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE workspace_agents SET listening_ports = $1 WHERE id = $2")
            .bind(super::to_json(&ports)?)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn set_agent_app_health(
        &self,
        id: &str,
        health: &std::collections::BTreeMap<String, crate::model::agent::AppHealth>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE workspace_agents SET app_health = $1 WHERE id = $2")
            .bind(super::to_json(health)?)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn set_agent_lifecycle(&self, id: &str, lifecycle: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE workspace_agents SET lifecycle = $1 WHERE id = $2")
            .bind(lifecycle)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Stores an agent's log lines until the agent has `cap` bytes of log text; the line
    /// that crosses the cap is replaced by one saying so, and later lines are dropped.
    /// Returns how many lines were stored.
    pub async fn insert_agent_logs(
        &self,
        agent_id: &str,
        logs: &[crate::wire::agent::LogLine],
        cap: i64,
    ) -> Result<usize, sqlx::Error> {
        if logs.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool().begin().await?;
        let stored: i64 = sqlx::query("SELECT log_bytes FROM workspace_agents WHERE id = $1")
            .bind(agent_id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.get::<i64, _>(0))
            .unwrap_or(cap);
        let mut total = stored;
        let mut rows: Vec<(i64, &str, &str, std::borrow::Cow<'_, str>)> = Vec::new();
        for l in logs {
            if total >= cap {
                break;
            }
            let len = l.text.len() as i64;
            if total + len > cap {
                let notice = format!(
                    "hangar: this agent's log reached its limit of {} KiB; later lines are not stored (the agent still runs)",
                    cap / 1024
                );
                rows.push((l.at, "hangar", "warn", notice.into()));
                total = cap;
                break;
            }
            total += len;
            rows.push((l.at, &l.source, &l.level, l.text.as_str().into()));
        }
        for chunk in rows.chunks(100) {
            let sql = format!(
                "INSERT INTO agent_logs (agent_id, at, source, level, text) VALUES {}",
                super::placeholder_rows(chunk.len(), 5)
            );
            let mut q = sqlx::query(&sql);
            for (at, source, level, text) in chunk {
                q = q
                    .bind(agent_id)
                    .bind(*at)
                    .bind(*source)
                    .bind(*level)
                    .bind(text.as_ref());
            }
            q.execute(&mut *tx).await?;
        }
        sqlx::query("UPDATE workspace_agents SET log_bytes = $1 WHERE id = $2")
            .bind(total)
            .bind(agent_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(rows.len())
    }

    /// Log lines after `after_id`, oldest first, at most `limit`.
    pub async fn list_agent_logs(
        &self,
        agent_id: &str,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<AgentLog>, sqlx::Error> {
        let rows = sqlx::query("SELECT id, at, source, level, text FROM agent_logs WHERE agent_id = $1 AND id > $2 ORDER BY id LIMIT $3")
            .bind(agent_id)
            .bind(after_id)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AgentLog {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    source: r.try_get("source")?,
                    level: r.try_get("level")?,
                    text: r.try_get("text")?,
                })
            })
            .collect()
    }

    /// The last `n` log lines, oldest first (what `hangar show` prints).
    pub async fn tail_agent_logs(
        &self,
        agent_id: &str,
        n: i64,
    ) -> Result<Vec<AgentLog>, sqlx::Error> {
        let first: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(id) FROM (SELECT id FROM agent_logs WHERE agent_id = $1 ORDER BY id DESC LIMIT $2) t",
        )
        .bind(agent_id)
        .bind(n)
        .fetch_one(self.pool())
        .await?;
        match first {
            Some(first) => self.list_agent_logs(agent_id, first - 1, n).await,
            None => Ok(Vec::new()),
        }
    }

    /// Stores the latest value of each key (older values are replaced).
    pub async fn upsert_agent_metadata(
        &self,
        agent_id: &str,
        results: &[crate::wire::agent::MetadataResult],
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        for r in results {
            sqlx::query(
                "INSERT INTO agent_metadata (agent_id, key, value, error, collected_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (agent_id, key) DO UPDATE SET value = excluded.value, error = excluded.error, collected_at = excluded.collected_at",
            )
            .bind(agent_id)
            .bind(&r.key)
            .bind(&r.value)
            .bind(&r.error)
            .bind(r.collected_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    pub async fn list_agent_metadata(
        &self,
        agent_id: &str,
    ) -> Result<Vec<AgentMetadataRow>, sqlx::Error> {
        let rows = sqlx::query("SELECT key, value, error, collected_at FROM agent_metadata WHERE agent_id = $1 ORDER BY key")
            .bind(agent_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AgentMetadataRow {
                    key: r.try_get("key")?,
                    value: r.try_get("value")?,
                    error: r.try_get("error")?,
                    collected_at: r.try_get("collected_at")?,
                })
            })
            .collect()
    }
}

/// The agents whose every log line and metadata value is older than $1: their build is
/// not their workspace's latest, and a newer build was made before $1 (an agent's token
/// stops working once a newer build exists, so it wrote nothing after that).
const EXPIRED_AGENTS: &str =
    "SELECT a.id FROM workspace_agents a JOIN workspace_builds b ON b.id = a.build_id
    WHERE EXISTS (SELECT 1 FROM workspace_builds b2 WHERE b2.workspace_id = b.workspace_id
                  AND b2.number > b.number AND b2.created_at < $1)";

impl Database {
    /// Deletes the log lines and metadata of agents that no longer run (see
    /// `EXPIRED_AGENTS`); answers how many rows.
    pub async fn purge_agent_rows(
        &self,
        conn: &mut sqlx::AnyConnection,
        cutoff: i64,
    ) -> Result<u64, sqlx::Error> {
        let logs = sqlx::query(&format!(
            "DELETE FROM agent_logs WHERE agent_id IN ({EXPIRED_AGENTS})"
        ))
        .bind(cutoff)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        let metadata = sqlx::query(&format!(
            "DELETE FROM agent_metadata WHERE agent_id IN ({EXPIRED_AGENTS})"
        ))
        .bind(cutoff)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        Ok(logs + metadata)
    }
}
