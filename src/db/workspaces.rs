//! The `workspaces`, `workspace_builds` and `workspace_resources` tables.

use sqlx::Row;

use std::collections::BTreeMap;

use super::{flag, parse_json, parse_text, Database};

mod listing;
use crate::model::resource::{Kind, Lifetime};
use crate::model::{now_ms, JobKind, JobStatus, Transition, WorkspaceStatus};
pub use listing::*;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    pub owner_id: String,
    pub template_id: String,
    /// Whether the user who asked marked it (favorites are per user): filled by the
    /// queries that know the viewer, false otherwise.
    pub favorite: bool,
    pub created_at: i64,
    pub deleted: bool,
    /// When a session or app request last used it (unix ms).
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Build {
    pub id: String,
    pub workspace_id: String,
    pub number: i64,
    pub transition: Transition,
    pub template_version_id: String,
    pub job_id: String,
    pub initiator_id: String,
    /// Parameter name → value used by this build.
    pub parameters: BTreeMap<String, String>,
    pub orphan: bool,
    pub created_at: i64,
}

/// A build with the status of its job: what a workspace's status is derived from.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct BuildWithJob {
    pub build: Build,
    pub job_status: JobStatus,
}

impl BuildWithJob {
    pub fn workspace_status(&self) -> WorkspaceStatus {
        WorkspaceStatus::derive(self.build.transition, self.job_status)
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Resource {
    pub id: String,
    pub build_id: String,
    pub address: String,
    #[serde(rename = "type")]
    pub kind_type: String,
    pub name: String,
    pub kind: Kind,
    pub lifetime: Lifetime,
    pub hide: bool,
    pub icon: String,
    pub daily_cost: i64,
    /// JSON list of {key, value, sensitive}; sensitive values are stored masked.
    pub metadata: String,
}

/// Favorites are per user: queries that know no viewer answer `0 AS favorite`.
/// `last_used_at` lags the last use by this much at most.
pub const LAST_USED_RESOLUTION_MS: i64 = 60_000;

const W_COLUMNS: &str =
    "id, name, owner_id, template_id, created_at, deleted, last_used_at, 0 AS favorite";
const B_COLUMNS: &str = "b.id, b.workspace_id, b.number, b.transition, b.template_version_id, b.job_id, b.initiator_id, b.parameters, b.orphan, b.created_at, j.status AS job_status";

fn workspace_from_row(row: &sqlx::any::AnyRow) -> Result<Workspace, sqlx::Error> {
    workspace_from_prefixed(row, "")
}

/// A workspace from columns named `{prefix}id`, `{prefix}name`…: joined queries prefix
/// them so they do not clash with the other tables' columns.
fn workspace_from_prefixed(row: &sqlx::any::AnyRow, p: &str) -> Result<Workspace, sqlx::Error> {
    let col = |name: &str| format!("{p}{name}");
    Ok(Workspace {
        id: row.try_get(col("id").as_str())?,
        name: row.try_get(col("name").as_str())?,
        owner_id: row.try_get(col("owner_id").as_str())?,
        template_id: row.try_get(col("template_id").as_str())?,
        favorite: row.try_get::<i64, _>(col("favorite").as_str())? > 0,
        created_at: row.try_get(col("created_at").as_str())?,
        deleted: flag(row.try_get(col("deleted").as_str())?),
        last_used_at: row.try_get(col("last_used_at").as_str())?,
    })
}

fn build_from_row(row: &sqlx::any::AnyRow) -> Result<BuildWithJob, sqlx::Error> {
    build_from_prefixed(row, "")
}

fn build_from_prefixed(row: &sqlx::any::AnyRow, p: &str) -> Result<BuildWithJob, sqlx::Error> {
    let col = |name: &str| format!("{p}{name}");
    let id: String = row.try_get(col("id").as_str())?;
    Ok(BuildWithJob {
        build: Build {
            parameters: parse_json(
                format_args!("the parameters of build {id}"),
                &row.try_get::<String, _>(col("parameters").as_str())?,
            )?,
            id,
            workspace_id: row.try_get(col("workspace_id").as_str())?,
            number: row.try_get(col("number").as_str())?,
            transition: parse_text(
                "transition",
                &row.try_get::<String, _>(col("transition").as_str())?,
            )?,
            template_version_id: row.try_get(col("template_version_id").as_str())?,
            job_id: row.try_get(col("job_id").as_str())?,
            initiator_id: row.try_get(col("initiator_id").as_str())?,
            orphan: flag(row.try_get(col("orphan").as_str())?),
            created_at: row.try_get(col("created_at").as_str())?,
        },
        job_status: parse_text(
            "status",
            &row.try_get::<String, _>(col("job_status").as_str())?,
        )?,
    })
}

fn resource_from_row(row: &sqlx::any::AnyRow) -> Result<Resource, sqlx::Error> {
    Ok(Resource {
        id: row.try_get("id")?,
        build_id: row.try_get("build_id")?,
        address: row.try_get("address")?,
        kind_type: row.try_get("type")?,
        name: row.try_get("name")?,
        kind: parse_text(
            "workspace_resources.kind",
            &row.try_get::<String, _>("kind")?,
        )?,
        lifetime: parse_text(
            "workspace_resources.lifetime",
            &row.try_get::<String, _>("lifetime")?,
        )?,
        hide: flag(row.try_get("hide")?),
        icon: row.try_get("icon")?,
        daily_cost: row.try_get("daily_cost")?,
        metadata: row.try_get("metadata")?,
    })
}

/// A new build to queue.
#[derive(Clone, Copy)]
pub struct NewBuild<'a> {
    pub workspace_id: &'a str,
    pub transition: Transition,
    pub template_version_id: &'a str,
    pub initiator_id: &'a str,
    pub parameters: &'a str,
    pub orphan: bool,
    /// The first build after a user claimed a prebuilt workspace (the job's input says
    /// so; the runner tells the template and keeps the agents' tokens for the apply).
    pub prebuild_claim: bool,
}

/// Why a build could not be queued.
#[derive(Debug)]
pub enum QueueError {
    /// Another build of the workspace is pending or running.
    Busy,
    Db(sqlx::Error),
}

impl From<sqlx::Error> for QueueError {
    fn from(e: sqlx::Error) -> Self {
        QueueError::Db(e)
    }
}

impl Database {
    /// Creates a workspace and queues its first build, all or nothing.
    pub async fn create_workspace(
        &self,
        ws: &Workspace,
        first: &NewBuild<'_>,
    ) -> Result<Build, QueueError> {
        let mut tx = self.pool().begin().await?;
        let build = self.insert_workspace_in(&mut tx, ws, first).await?;
        tx.commit().await?;
        Ok(build)
    }

    /// Inserts a workspace and queues its first build inside `tx`.
    pub(super) async fn insert_workspace_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        ws: &Workspace,
        first: &NewBuild<'_>,
    ) -> Result<Build, QueueError> {
        sqlx::query("INSERT INTO workspaces (id, name, owner_id, template_id, created_at, deleted) VALUES ($1, $2, $3, $4, $5, 0)")
            .bind(&ws.id)
            .bind(&ws.name)
            .bind(&ws.owner_id)
            .bind(&ws.template_id)
            .bind(ws.created_at)
            .execute(&mut **tx)
            .await?;
        self.queue_build_in(tx, first).await
    }

    /// Queues a build unless one is already pending or running: the check and the insert
    /// are one statement, and (workspace, number) is unique, so two racing requests
    /// cannot both succeed on either backend.
    pub async fn queue_build(&self, new: &NewBuild<'_>) -> Result<Build, QueueError> {
        let mut tx = self.pool().begin().await?;
        let build = self.queue_build_in(&mut tx, new).await?;
        tx.commit().await?;
        Ok(build)
    }

    pub(super) async fn queue_build_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        new: &NewBuild<'_>,
    ) -> Result<Build, QueueError> {
        let id = crate::model::new_id();
        let job_id = crate::model::new_id();
        let input = if new.prebuild_claim {
            serde_json::json!({ "build_id": id, "prebuild_claim": true })
        } else {
            serde_json::json!({ "build_id": id })
        }
        .to_string();
        self.insert_job(&mut **tx, &job_id, JobKind::WorkspaceBuild, &input)
            .await?;
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO workspace_builds (id, workspace_id, number, transition, template_version_id, job_id, initiator_id, parameters, orphan, created_at)
             SELECT $1, $2, (SELECT COALESCE(MAX(number), 0) + 1 FROM workspace_builds WHERE workspace_id = $2), $3, $4, $5, $6, $7, $8, $9
             WHERE NOT EXISTS (
                SELECT 1 FROM workspace_builds b JOIN jobs j ON j.id = b.job_id
                WHERE b.workspace_id = $2 AND j.status IN ('pending', 'running', 'canceling'))",
        )
        .bind(&id)
        .bind(new.workspace_id)
        .bind(new.transition.as_str())
        .bind(new.template_version_id)
        .bind(&job_id)
        .bind(new.initiator_id)
        .bind(new.parameters)
        .bind(new.orphan as i64)
        .bind(now)
        .execute(&mut **tx)
        .await;
        match inserted {
            Ok(r) if r.rows_affected() == 1 => {}
            Ok(_) => return Err(QueueError::Busy),
            Err(e) if super::is_unique_violation(&e) => return Err(QueueError::Busy),
            Err(e) => return Err(e.into()),
        }
        sqlx::query("UPDATE workspaces SET latest_build_id = $1 WHERE id = $2")
            .bind(&id)
            .bind(new.workspace_id)
            .execute(&mut **tx)
            .await?;
        let number: i64 = sqlx::query_scalar("SELECT number FROM workspace_builds WHERE id = $1")
            .bind(&id)
            .fetch_one(&mut **tx)
            .await?;
        Ok(Build {
            id,
            workspace_id: new.workspace_id.to_string(),
            number,
            transition: new.transition,
            template_version_id: new.template_version_id.to_string(),
            job_id,
            initiator_id: new.initiator_id.to_string(),
            parameters: parse_json("a new build's parameters", new.parameters)?,
            orphan: new.orphan,
            created_at: now,
        })
    }

    /// Records a use of the workspace now; written at most once a minute (sessions touch
    /// it every few seconds, apps on every request).
    pub async fn touch_workspace(&self, id: &str, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE workspaces SET last_used_at = $1 \
             WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(now)
        .bind(id)
        .bind(now - LAST_USED_RESOLUTION_MS)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn get_workspace(&self, id: &str) -> Result<Option<Workspace>, sqlx::Error> {
        let sql = format!("SELECT {W_COLUMNS} FROM workspaces WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(workspace_from_row).transpose()
    }

    /// The live (not deleted) workspace `name` of `owner_id`.
    pub async fn get_workspace_by_name(
        &self,
        owner_id: &str,
        name: &str,
    ) -> Result<Option<Workspace>, sqlx::Error> {
        let sql = format!(
            "SELECT {W_COLUMNS} FROM workspaces WHERE owner_id = $1 AND name = $2 AND deleted = 0"
        );
        let row = sqlx::query(&sql)
            .bind(owner_id)
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(workspace_from_row).transpose()
    }

    pub async fn mark_workspace_deleted<'e, E>(&self, exec: E, id: &str) -> Result<(), sqlx::Error>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        sqlx::query("UPDATE workspaces SET deleted = 1 WHERE id = $1")
            .bind(id)
            .execute(exec)
            .await?;
        Ok(())
    }

    pub async fn latest_build(
        &self,
        workspace_id: &str,
    ) -> Result<Option<BuildWithJob>, sqlx::Error> {
        let sql = format!("SELECT {B_COLUMNS} FROM workspace_builds b JOIN jobs j ON j.id = b.job_id WHERE b.workspace_id = $1 ORDER BY b.number DESC LIMIT 1");
        let row = sqlx::query(&sql)
            .bind(workspace_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(build_from_row).transpose()
    }

    pub async fn list_builds(&self, workspace_id: &str) -> Result<Vec<BuildWithJob>, sqlx::Error> {
        let sql = format!("SELECT {B_COLUMNS} FROM workspace_builds b JOIN jobs j ON j.id = b.job_id WHERE b.workspace_id = $1 ORDER BY b.number DESC");
        let rows = sqlx::query(&sql)
            .bind(workspace_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(build_from_row).collect()
    }

    pub async fn get_build(&self, id: &str) -> Result<Option<BuildWithJob>, sqlx::Error> {
        let sql = format!("SELECT {B_COLUMNS} FROM workspace_builds b JOIN jobs j ON j.id = b.job_id WHERE b.id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(build_from_row).transpose()
    }

    pub async fn get_build_by_job(
        &self,
        job_id: &str,
    ) -> Result<Option<BuildWithJob>, sqlx::Error> {
        let sql = format!("SELECT {B_COLUMNS} FROM workspace_builds b JOIN jobs j ON j.id = b.job_id WHERE b.job_id = $1");
        let row = sqlx::query(&sql)
            .bind(job_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(build_from_row).transpose()
    }

    /// The workspace of a build, found by the build's id (or its job's with `by_job`).
    /// Reads nothing else of the row: who may see a build must not depend on whether
    /// the rest of it is readable.
    pub async fn workspace_of_build(
        &self,
        id: &str,
        by_job: bool,
    ) -> Result<Option<String>, sqlx::Error> {
        let sql = if by_job {
            "SELECT workspace_id FROM workspace_builds WHERE job_id = $1"
        } else {
            "SELECT workspace_id FROM workspace_builds WHERE id = $1"
        };
        sqlx::query_scalar(sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await
    }

    /// The state the most recent build before `number` left (a failed build's partial
    /// state included), so the next build manages everything that exists.
    pub async fn previous_state(
        &self,
        workspace_id: &str,
        number: i64,
    ) -> Result<Option<Vec<u8>>, sqlx::Error> {
        let state: Option<Option<Vec<u8>>> = sqlx::query_scalar(
            "SELECT state FROM workspace_builds WHERE workspace_id = $1 AND number < $2 AND state IS NOT NULL ORDER BY number DESC LIMIT 1",
        )
        .bind(workspace_id)
        .bind(number)
        .fetch_optional(self.pool())
        .await?;
        Ok(state.flatten())
    }

    pub async fn set_build_state<'e, E>(
        &self,
        exec: E,
        build_id: &str,
        state: &[u8],
    ) -> Result<(), sqlx::Error>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        sqlx::query("UPDATE workspace_builds SET state = $1 WHERE id = $2")
            .bind(state)
            .bind(build_id)
            .execute(exec)
            .await?;
        Ok(())
    }

    /// Replaces a build's recorded resources, all or nothing (inside the caller's
    /// transaction when `conn` is one).
    pub async fn set_build_resources<'a, A>(
        &self,
        conn: A,
        build_id: &str,
        resources: &[Resource],
    ) -> Result<(), sqlx::Error>
    where
        A: sqlx::Acquire<'a, Database = sqlx::Any>,
    {
        let mut tx = conn.begin().await?;
        sqlx::query("DELETE FROM workspace_resources WHERE build_id = $1")
            .bind(build_id)
            .execute(&mut *tx)
            .await?;
        for r in resources {
            sqlx::query("INSERT INTO workspace_resources (id, build_id, address, type, name, kind, lifetime, hide, icon, daily_cost, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
                .bind(&r.id)
                .bind(build_id)
                .bind(&r.address)
                .bind(&r.kind_type)
                .bind(&r.name)
                .bind(r.kind.as_str())
                .bind(r.lifetime.as_str())
                .bind(r.hide as i64)
                .bind(&r.icon)
                .bind(r.daily_cost)
                .bind(&r.metadata)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    /// Live workspaces made from a template.
    pub async fn count_template_workspaces(&self, template_id: &str) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM workspaces WHERE template_id = $1 AND deleted = 0")
            .bind(template_id)
            .fetch_one(self.pool())
            .await
    }

    pub async fn list_resources(&self, build_id: &str) -> Result<Vec<Resource>, sqlx::Error> {
        let rows = sqlx::query("SELECT id, build_id, address, type, name, kind, lifetime, hide, icon, daily_cost, metadata FROM workspace_resources WHERE build_id = $1 ORDER BY address")
            .bind(build_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(resource_from_row).collect()
    }
}

impl Database {
    /// The state a build left (holds sensitive values: only for the owner's eyes).
    pub async fn get_build_state(&self, build_id: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
        let state: Option<Option<Vec<u8>>> =
            sqlx::query_scalar("SELECT state FROM workspace_builds WHERE id = $1")
                .bind(build_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(state.flatten())
    }
}

impl Database {
    /// Builds whose logs and state retention may drop: finished before `cutoff`, still
    /// holding either, and none of the ones a workspace needs: its latest build, the
    /// newest build with a state (where the next build starts from) and its last
    /// successful start. Answers (build id, job id) pairs.
    pub async fn expired_builds(&self, cutoff: i64) -> Result<Vec<(String, String)>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT b.id, b.job_id FROM workspace_builds b JOIN jobs j ON j.id = b.job_id
             WHERE j.completed_at < $1 AND j.status IN ('succeeded', 'failed', 'canceled')
               AND b.number < (SELECT MAX(b2.number) FROM workspace_builds b2 WHERE b2.workspace_id = b.workspace_id)
               AND b.id <> COALESCE((SELECT b3.id FROM workspace_builds b3
                    WHERE b3.workspace_id = b.workspace_id AND b3.state IS NOT NULL
                    ORDER BY b3.number DESC LIMIT 1), '')
               AND b.id <> COALESCE((SELECT b4.id FROM workspace_builds b4 JOIN jobs j4 ON j4.id = b4.job_id
                    WHERE b4.workspace_id = b.workspace_id AND b4.transition = 'start' AND j4.status = 'succeeded'
                    ORDER BY b4.number DESC LIMIT 1), '')
               AND (b.state IS NOT NULL OR EXISTS (SELECT 1 FROM job_logs l WHERE l.job_id = b.job_id))",
        )
        .bind(cutoff)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("job_id")?)))
            .collect()
    }

    /// Forgets the terraform state of these builds.
    pub async fn clear_build_states(
        &self,
        conn: &mut sqlx::AnyConnection,
        build_ids: &[String],
    ) -> Result<u64, sqlx::Error> {
        let mut cleared = 0;
        for chunk in build_ids.chunks(100) {
            let sql = format!(
                "UPDATE workspace_builds SET state = NULL WHERE state IS NOT NULL AND id IN {}",
                super::placeholder_rows(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            cleared += q.execute(&mut *conn).await?.rows_affected();
        }
        Ok(cleared)
    }
}

/// `$from, $from+1, …` for `n` values of an `IN (…)` list.
pub(crate) fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}
