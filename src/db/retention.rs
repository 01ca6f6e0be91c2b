//! Retention (`hangar server --retention 30d`): old builds' logs and terraform states,
//! and the log and metadata rows of agents that no longer run, are dropped. What a
//! workspace still needs is kept: its latest build, the build the next one starts from,
//! and its last successful start. The SQL lives with each table.

use super::Database;

/// What one purge removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub build_states: u64,
    pub job_log_lines: u64,
    pub agent_rows: u64,
}

impl Purged {
    pub fn is_empty(&self) -> bool {
        *self == Purged::default()
    }
}

impl Database {
    /// Purges what is older than `cutoff` (Unix milliseconds), in one transaction.
    pub async fn purge_before(&self, cutoff: i64) -> Result<Purged, sqlx::Error> {
        let expired = self.expired_builds(cutoff).await?;
        let (builds, jobs): (Vec<String>, Vec<String>) = expired.into_iter().unzip();
        let mut tx = self.pool().begin().await?;
        let purged = Purged {
            build_states: self.clear_build_states(&mut tx, &builds).await?,
            job_log_lines: self.delete_job_logs(&mut tx, &jobs).await?,
            agent_rows: self.purge_agent_rows(&mut tx, cutoff).await?,
        };
        tx.commit().await?;
        Ok(purged)
    }
}
