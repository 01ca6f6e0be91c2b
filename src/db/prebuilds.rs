//! The `prebuilds`, `prebuild_status` and `agent_token_rotations` tables: prebuilt
//! workspaces waiting for a user, how each preset's prebuilds fare, and the agents of
//! claimed workspaces that still hold the prebuild's token.

use sqlx::Row;

use super::users::User;
use super::workspaces::{NewBuild, QueueError, Workspace};
use super::{parse_text, Database};
use crate::model::{JobStatus, Transition};

/// The system user that owns prebuilt workspaces until they are claimed.
pub const PREBUILDS_USER_ID: &str = "prebuilds";

/// The ready prebuilds of a template version's preset ($1, $2, $3): started, and their
/// latest build succeeded.
const READY: &str = "FROM prebuilds p
    JOIN workspaces w ON w.id = p.workspace_id
    JOIN workspace_builds b ON b.id = w.latest_build_id
    JOIN jobs j ON j.id = b.job_id
    WHERE p.template_id = $1 AND p.template_version_id = $2 AND p.preset = $3
      AND w.deleted = 0 AND b.transition = 'start' AND j.status = 'succeeded'";

/// One prebuilt workspace with its latest build's state.
#[derive(Debug, Clone)]
pub struct Prebuild {
    pub workspace_id: String,
    pub workspace_name: String,
    pub template_version_id: String,
    pub preset: String,
    pub created_at: i64,
    pub transition: Transition,
    pub status: JobStatus,
    pub error: Option<String>,
}

/// How one preset's prebuilds fare.
#[derive(Debug, Clone, Default)]
pub struct PrebuildStatus {
    pub preset: String,
    /// Failed builds in a row (0 once one succeeds).
    pub failures: i64,
    pub last_error: String,
    /// No new prebuild before this (unix ms): failures back off.
    pub next_attempt_at: i64,
}

impl Database {
    /// The `prebuilds` system user, created on first use. Its password hash is no hash,
    /// so nobody logs in as it.
    pub async fn prebuilds_user(&self) -> anyhow::Result<User> {
        sqlx::query("INSERT INTO users (id, username, email, full_name, password_hash, role, suspended, created_at) VALUES ($1, 'prebuilds', 'prebuilds@hangar.invalid', 'Prebuilt workspaces', '!', 'member', 0, $2) ON CONFLICT DO NOTHING")
            .bind(PREBUILDS_USER_ID)
            .bind(crate::model::now_ms())
            .execute(self.pool())
            .await?;
        self.get_user(PREBUILDS_USER_ID).await?.ok_or_else(|| {
            anyhow::anyhow!("the username \"prebuilds\" is taken by a person: prebuilt workspaces need it for their system user; rename that user")
        })
    }

    /// Creates a prebuilt workspace of `preset` and queues its first build, in one
    /// transaction.
    pub async fn create_prebuild(
        &self,
        ws: &Workspace,
        first: &NewBuild<'_>,
        preset: &str,
    ) -> Result<(), QueueError> {
        let mut tx = self.pool().begin().await?;
        self.insert_workspace_in(&mut tx, ws, first).await?;
        sqlx::query("INSERT INTO prebuilds (workspace_id, template_id, template_version_id, preset, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&ws.id)
            .bind(&ws.template_id)
            .bind(first.template_version_id)
            .bind(preset)
            .bind(ws.created_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every prebuilt workspace of a template, oldest first.
    pub async fn prebuilds_of(&self, template_id: &str) -> Result<Vec<Prebuild>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT p.workspace_id, w.name, p.template_version_id, p.preset, p.created_at, b.transition, j.status, j.error
             FROM prebuilds p
             JOIN workspaces w ON w.id = p.workspace_id
             JOIN workspace_builds b ON b.id = w.latest_build_id
             JOIN jobs j ON j.id = b.job_id
             WHERE p.template_id = $1 AND w.deleted = 0
             ORDER BY p.created_at, p.workspace_id",
        )
        .bind(template_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Prebuild {
                    workspace_id: r.try_get(0)?,
                    workspace_name: r.try_get(1)?,
                    template_version_id: r.try_get(2)?,
                    preset: r.try_get(3)?,
                    created_at: r.try_get(4)?,
                    transition: parse_text(
                        "workspace_builds.transition",
                        &r.try_get::<String, _>(5)?,
                    )?,
                    status: parse_text("jobs.status", &r.try_get::<String, _>(6)?)?,
                    error: r.try_get(7)?,
                })
            })
            .collect()
    }

    /// Takes the oldest ready prebuild of `preset` (of `version_id`) for `owner_id`,
    /// renamed `name`: atomically, so two claims never get one workspace. `None` when
    /// none is ready. A name the owner already uses fails the claim (nothing changes).
    pub async fn claim_prebuild(
        &self,
        template_id: &str,
        preset: &str,
        owner_id: &str,
        name: &str,
        build: &NewBuild<'_>,
    ) -> Result<Option<(String, super::workspaces::Build)>, QueueError> {
        let version_id = build.template_version_id;
        // A claim that lost a race to the same row finds it gone: try the next.
        for _ in 0..5 {
            let mut tx = self.pool().begin().await?;
            // One statement that writes first: SQLite takes its write lock at once (a read
            // then a write would deadlock two claims), PostgreSQL re-checks the row a
            // racing claim deleted and finds nothing.
            let sql = format!(
                "DELETE FROM prebuilds WHERE workspace_id = (SELECT p.workspace_id {READY} ORDER BY p.created_at, p.workspace_id LIMIT 1) RETURNING workspace_id"
            );
            let taken: Option<String> = sqlx::query_scalar(&sql)
                .bind(template_id)
                .bind(version_id)
                .bind(preset)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(ws) = taken else {
                drop(tx);
                // None ready, or a racing claim took the one this saw: look again.
                let any_ready = self
                    .ready_prebuild_exists(template_id, version_id, preset)
                    .await?;
                if any_ready {
                    continue;
                }
                return Ok(None);
            };
            sqlx::query("UPDATE workspaces SET owner_id = $1, name = $2 WHERE id = $3")
                .bind(owner_id)
                .bind(name)
                .bind(&ws)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO prebuild_claims (workspace_id, claimed_at) VALUES ($1, $2)")
                .bind(&ws)
                .bind(crate::model::now_ms())
                .execute(&mut *tx)
                .await?;
            // The claim build goes with the claim: never a claimed workspace without it.
            let claim = NewBuild {
                workspace_id: &ws,
                ..*build
            };
            let queued = self.queue_build_in(&mut tx, &claim).await?;
            tx.commit().await?;
            return Ok(Some((ws, queued)));
        }
        Ok(None)
    }

    async fn ready_prebuild_exists(
        &self,
        template_id: &str,
        version_id: &str,
        preset: &str,
    ) -> Result<bool, sqlx::Error> {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) {READY}"))
            .bind(template_id)
            .bind(version_id)
            .bind(preset)
            .fetch_one(self.pool())
            .await?;
        Ok(n > 0)
    }

    /// Forgets that a workspace is a prebuild (it is about to be deleted): no claim takes
    /// it from now on. False when a claim took it first (it is a user's now).
    pub async fn forget_prebuild(&self, workspace_id: &str) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM prebuilds WHERE workspace_id = $1")
            .bind(workspace_id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn prebuild_status(
        &self,
        template_id: &str,
    ) -> Result<Vec<PrebuildStatus>, sqlx::Error> {
        let rows = sqlx::query("SELECT preset, failures, last_error, next_attempt_at FROM prebuild_status WHERE template_id = $1 ORDER BY preset")
            .bind(template_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(PrebuildStatus {
                    preset: r.try_get(0)?,
                    failures: r.try_get(1)?,
                    last_error: r.try_get(2)?,
                    next_attempt_at: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Records a failed prebuild of a preset: one more failure in a row, its error, and
    /// when to try again.
    pub async fn prebuild_failed(
        &self,
        template_id: &str,
        preset: &str,
        error: &str,
        next_attempt_at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO prebuild_status (template_id, preset, failures, last_error, next_attempt_at) VALUES ($1, $2, 1, $3, $4) ON CONFLICT (template_id, preset) DO UPDATE SET failures = prebuild_status.failures + 1, last_error = excluded.last_error, next_attempt_at = excluded.next_attempt_at")
            .bind(template_id)
            .bind(preset)
            .bind(error)
            .bind(next_attempt_at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// A prebuild of the preset succeeded: its failures are forgotten.
    pub async fn prebuild_succeeded(
        &self,
        template_id: &str,
        preset: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE prebuild_status SET failures = 0, next_attempt_at = 0 WHERE template_id = $1 AND preset = $2 AND failures > 0")
            .bind(template_id)
            .bind(preset)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The end of a claim build (whatever its outcome): the prebuild's agents no longer
    /// get the claim's grace.
    pub async fn end_claim(
        &self,
        conn: &mut sqlx::AnyConnection,
        workspace_id: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM prebuild_claims WHERE workspace_id = $1")
            .bind(workspace_id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Before a claim build's agents are stored with the tokens the prebuild's agents run
    /// with: the old rows give those hashes up (tokens are unique), so the running agents
    /// now count as the claim build's.
    pub async fn hand_over_token_hashes(
        &self,
        conn: &mut sqlx::AnyConnection,
        hashes: &[String],
    ) -> Result<(), sqlx::Error> {
        for hash in hashes {
            sqlx::query("UPDATE workspace_agents SET token_hash = 'handed-over:' || id WHERE token_hash = $1")
                .bind(hash)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// The claim build's agent that took over from the prebuild's agent `old_agent_id`,
    /// when it is still due a token of its own.
    pub async fn successor_due_token(
        &self,
        old_agent_id: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT n.id FROM workspace_agents o
             JOIN workspace_builds ob ON ob.id = o.build_id
             JOIN workspaces w ON w.id = ob.workspace_id
             JOIN workspace_agents n ON n.build_id = w.latest_build_id AND n.name = o.name
             JOIN agent_token_rotations r ON r.agent_id = n.id
             WHERE o.id = $1",
        )
        .bind(old_agent_id)
        .fetch_optional(self.pool())
        .await
    }

    /// Marks agents whose token must be replaced when they next connect.
    pub async fn rotate_tokens_later(
        &self,
        conn: &mut sqlx::AnyConnection,
        agent_ids: &[String],
    ) -> Result<(), sqlx::Error> {
        for id in agent_ids {
            sqlx::query(
                "INSERT INTO agent_token_rotations (agent_id) VALUES ($1) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// Gives the agent a new token hash if it was due one; true when it was (the caller
    /// hands the agent its new token). Atomic: a racing connect rotates at most once.
    pub async fn rotate_token_if_due(
        &self,
        agent_id: &str,
        new_hash: &str,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        let due = sqlx::query("DELETE FROM agent_token_rotations WHERE agent_id = $1")
            .bind(agent_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if due {
            sqlx::query("UPDATE workspace_agents SET token_hash = $1 WHERE id = $2")
                .bind(new_hash)
                .bind(agent_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(due)
    }
}
