//! The `audit_log` table: who changed what, for every state-changing request.

use sqlx::Row;

use super::Database;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    pub at: i64,
    pub user_id: Option<String>,
    pub action: String,
    pub target: String,
    pub detail: String,
}

impl Database {
    pub async fn audit(
        &self,
        user_id: Option<&str>,
        action: &str,
        target: &str,
        detail: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO audit_log (at, user_id, action, target, detail) VALUES ($1, $2, $3, $4, $5)")
            .bind(crate::model::now_ms())
            .bind(user_id)
            .bind(action)
            .bind(target)
            .bind(detail)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn list_audit(&self, limit: i64) -> Result<Vec<AuditEntry>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT at, user_id, action, target, detail FROM audit_log ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    at: r.try_get("at")?,
                    user_id: r.try_get("user_id")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }
}
