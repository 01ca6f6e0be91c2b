//! The `jobs` and `job_logs` tables, and the job claim: the one query that differs per
//! backend, because PostgreSQL has many writers and SQLite has one.

use sqlx::Row;

use super::{parse_text, Backend, Database};
use crate::model::{now_ms, JobKind, JobStatus};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Job {
    pub id: String,
    pub kind: JobKind,
    pub status: JobStatus,
    /// JSON: what the job works on (template version id, build id…).
    pub input: String,
    pub worker_id: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub updated_at: i64,
    pub completed_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub error: Option<String>,
    pub error_code: Option<String>,
    /// JSON object: stage → milliseconds.
    pub timings: String,
    /// JSON: what the job produced for its caller (a dry run's planned resources).
    pub result: String,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct JobLog {
    pub id: i64,
    pub at: i64,
    pub stage: String,
    pub level: String,
    pub text: String,
}

pub(super) const COLUMNS: &str = "id, kind, status, input, worker_id, created_at, started_at, updated_at, completed_at, canceled_at, error, error_code, timings, result";

pub(super) fn from_row(row: &sqlx::any::AnyRow) -> Result<Job, sqlx::Error> {
    Ok(Job {
        id: row.try_get("id")?,
        kind: parse_text("kind", &row.try_get::<String, _>("kind")?)?,
        status: parse_text("status", &row.try_get::<String, _>("status")?)?,
        input: row.try_get("input")?,
        worker_id: row.try_get("worker_id")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        updated_at: row.try_get("updated_at")?,
        completed_at: row.try_get("completed_at")?,
        canceled_at: row.try_get("canceled_at")?,
        error: row.try_get("error")?,
        error_code: row.try_get("error_code")?,
        timings: row.try_get("timings")?,
        result: row.try_get("result")?,
    })
}

/// How a job ended.
pub struct Completion<'a> {
    pub status: JobStatus,
    pub error: Option<&'a str>,
    pub error_code: Option<&'a str>,
    pub timings: &'a str,
    pub result: &'a str,
}

impl Database {
    pub async fn insert_job<'e, E>(
        &self,
        exec: E,
        id: &str,
        kind: JobKind,
        input: &str,
    ) -> Result<(), sqlx::Error>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        let now = now_ms();
        sqlx::query("INSERT INTO jobs (id, kind, status, input, created_at, updated_at) VALUES ($1, $2, 'pending', $3, $4, $4)")
            .bind(id)
            .bind(kind.as_str())
            .bind(input)
            .bind(now)
            .execute(exec)
            .await?;
        Ok(())
    }

    pub async fn get_job(&self, id: &str) -> Result<Option<Job>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Jobs waiting for a provisioner.
    pub async fn count_pending_jobs(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = 'pending'")
            .fetch_one(self.pool())
            .await
    }

    /// Takes the oldest pending job for `worker_id`, atomically: whatever the number of
    /// workers, each job is claimed exactly once.
    pub async fn claim_job(&self, worker_id: &str) -> Result<Option<Job>, sqlx::Error> {
        let pick = match self.backend() {
            Backend::Postgres => "SELECT id FROM jobs WHERE status = 'pending' ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED",
            // SQLite has one writer: the UPDATE below is already atomic.
            Backend::Sqlite => "SELECT id FROM jobs WHERE status = 'pending' ORDER BY created_at, id LIMIT 1",
        };
        let sql = format!(
            "UPDATE jobs SET status = 'running', worker_id = $1, started_at = $2, updated_at = $2 WHERE id = ({pick}) AND status = 'pending' RETURNING {COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(worker_id)
            .bind(now_ms())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Records that the worker is alive; answers the job's status so the worker notices a
    /// cancel request (None when the job is no longer this worker's).
    pub async fn heartbeat_job(
        &self,
        id: &str,
        worker_id: &str,
    ) -> Result<Option<JobStatus>, sqlx::Error> {
        let status: Option<String> = sqlx::query_scalar(
            "UPDATE jobs SET updated_at = $1 WHERE id = $2 AND worker_id = $3 AND status IN ('running', 'canceling') RETURNING status",
        )
        .bind(now_ms())
        .bind(id)
        .bind(worker_id)
        .fetch_optional(self.pool())
        .await?;
        status.map(|s| parse_text("status", &s)).transpose()
    }

    /// Ends a job this worker holds; false when it no longer does (reaped as lost). Runs on
    /// `exec`, so the caller commits it together with what the job recorded.
    pub async fn complete_job<'e, E>(
        &self,
        exec: E,
        id: &str,
        worker_id: &str,
        done: &Completion<'_>,
    ) -> Result<bool, sqlx::Error>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        let result = sqlx::query(
            "UPDATE jobs SET status = $1, error = $2, error_code = $3, timings = $4, completed_at = $5, updated_at = $5, result = $8 WHERE id = $6 AND worker_id = $7 AND status IN ('running', 'canceling')",
        )
        .bind(done.status.as_str())
        .bind(done.error)
        .bind(done.error_code)
        .bind(done.timings)
        .bind(now_ms())
        .bind(id)
        .bind(worker_id)
        .bind(done.result)
        .execute(exec)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// A pending job is canceled at once; a running one is asked to stop (`canceling`).
    /// False when the job had already finished.
    pub async fn cancel_job(&self, id: &str) -> Result<bool, sqlx::Error> {
        let now = now_ms();
        let result = sqlx::query(
            "UPDATE jobs SET status = CASE WHEN status = 'pending' THEN 'canceled' ELSE 'canceling' END, canceled_at = $1, completed_at = CASE WHEN status = 'pending' THEN $1 ELSE NULL END WHERE id = $2 AND status IN ('pending', 'running')",
        )
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Fails every running job whose heartbeat is older than `stale_before`: its worker
    /// died. Returns the jobs it failed, so their leftovers can be recovered.
    pub async fn reap_stale_jobs(&self, stale_before: i64) -> Result<Vec<Job>, sqlx::Error> {
        let sql = format!(
            "UPDATE jobs SET status = 'failed', error_code = 'lost', error = 'the provisioner running this job stopped responding (it crashed or was killed); any state terraform wrote was recovered into the build', completed_at = $1, updated_at = $1 WHERE status IN ('running', 'canceling') AND updated_at < $2 RETURNING {COLUMNS}"
        );
        let rows = sqlx::query(&sql)
            .bind(now_ms())
            .bind(stale_before)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn insert_job_logs(&self, job_id: &str, logs: &[JobLog]) -> Result<(), sqlx::Error> {
        if logs.is_empty() {
            return Ok(());
        }
        // Many rows per statement: a chatty build stores thousands of lines.
        let mut tx = self.pool().begin().await?;
        for chunk in logs.chunks(100) {
            let sql = format!(
                "INSERT INTO job_logs (job_id, at, stage, level, text) VALUES {}",
                super::placeholder_rows(chunk.len(), 5)
            );
            let mut q = sqlx::query(&sql);
            for log in chunk {
                q = q
                    .bind(job_id)
                    .bind(log.at)
                    .bind(&log.stage)
                    .bind(&log.level)
                    .bind(&log.text);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await
    }

    /// The last `n` lines of a job's log, oldest first.
    pub async fn tail_job_logs(&self, job_id: &str, n: i64) -> Result<Vec<JobLog>, sqlx::Error> {
        let rows = sqlx::query("SELECT id, at, stage, level, text FROM job_logs WHERE job_id = $1 ORDER BY id DESC LIMIT $2")
            .bind(job_id)
            .bind(n)
            .fetch_all(self.pool())
            .await?;
        let mut lines = rows
            .iter()
            .map(|r| {
                Ok(JobLog {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    stage: r.try_get("stage")?,
                    level: r.try_get("level")?,
                    text: r.try_get("text")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        lines.reverse();
        Ok(lines)
    }

    pub async fn list_job_logs(
        &self,
        job_id: &str,
        after_id: i64,
    ) -> Result<Vec<JobLog>, sqlx::Error> {
        let rows = sqlx::query("SELECT id, at, stage, level, text FROM job_logs WHERE job_id = $1 AND id > $2 ORDER BY id")
            .bind(job_id)
            .bind(after_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(JobLog {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    stage: r.try_get("stage")?,
                    level: r.try_get("level")?,
                    text: r.try_get("text")?,
                })
            })
            .collect()
    }
}

impl Database {
    /// Fails a job whatever worker held it: its process is known to be dead.
    pub async fn fail_lost_job<'e, E>(
        &self,
        exec: E,
        id: &str,
        error: &str,
    ) -> Result<bool, sqlx::Error>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        let now = now_ms();
        let result = sqlx::query(
            "UPDATE jobs SET status = 'failed', error_code = 'lost', error = $1, completed_at = $2, updated_at = $2 WHERE id = $3 AND status IN ('running', 'canceling')",
        )
        .bind(error)
        .bind(now)
        .bind(id)
        .execute(exec)
        .await?;
        Ok(result.rows_affected() == 1)
    }
}

impl Database {
    /// Deletes the log lines of these jobs; answers how many.
    pub async fn delete_job_logs(
        &self,
        conn: &mut sqlx::AnyConnection,
        job_ids: &[String],
    ) -> Result<u64, sqlx::Error> {
        let mut deleted = 0;
        for chunk in job_ids.chunks(100) {
            let sql = format!(
                "DELETE FROM job_logs WHERE job_id IN {}",
                super::placeholder_rows(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            deleted += q.execute(&mut *conn).await?.rows_affected();
        }
        Ok(deleted)
    }
}
