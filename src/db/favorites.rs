//! The `workspace_favorites` table: which workspaces each user marked. Lists show a
//! user's favorites first; one user's marks never show for another.

use super::Database;

impl Database {
    /// Marks (or unmarks) a workspace as one of `user_id`'s favorites; idempotent.
    pub async fn set_favorite(
        &self,
        user_id: &str,
        workspace_id: &str,
        favorite: bool,
    ) -> Result<(), sqlx::Error> {
        if favorite {
            sqlx::query("INSERT INTO workspace_favorites (user_id, workspace_id, created_at) VALUES ($1, $2, $3) ON CONFLICT (user_id, workspace_id) DO NOTHING")
                .bind(user_id)
                .bind(workspace_id)
                .bind(crate::model::now_ms())
                .execute(self.pool())
                .await?;
        } else {
            sqlx::query("DELETE FROM workspace_favorites WHERE user_id = $1 AND workspace_id = $2")
                .bind(user_id)
                .bind(workspace_id)
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }
}
