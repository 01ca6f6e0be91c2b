//! The `workspace_agents`, `agent_logs` and `agent_metadata` tables.

use sqlx::Row;

use super::{flag, Database};

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
    pub lifecycle: String,
    pub version: String,
    pub hostname: String,
    pub first_connected_at: Option<i64>,
    pub last_connected_at: Option<i64>,
    pub disconnected_at: Option<i64>,
    pub created_at: i64,
}

pub const AGENT_COLUMNS: &str = "id, build_id, name, host_address, external, os, arch, manifest, lifecycle, version, hostname, first_connected_at, last_connected_at, disconnected_at, created_at";

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
        lifecycle: row.try_get("lifecycle")?,
        version: row.try_get("version")?,
        hostname: row.try_get("hostname")?,
        first_connected_at: row.try_get("first_connected_at")?,
        last_connected_at: row.try_get("last_connected_at")?,
        disconnected_at: row.try_get("disconnected_at")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Database {
    /// Records a build's agents with the SHA-256 of their tokens.
    pub async fn insert_agents(&self, agents: &[(Agent, String)]) -> Result<(), sqlx::Error> {
        let mut tx = self.pool().begin().await?;
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
}
