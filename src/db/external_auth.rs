//! The `external_auth_links` table (each user's linked external auth accounts) and
//! `external_auth_states` (link attempts in flight).

use sqlx::Row;

use super::Database;
use crate::model::secret::OAuthTokens as Tokens;

impl Database {
    /// Stores (or replaces) `user_id`'s tokens for `provider_id`.
    pub async fn save_external_auth_link(
        &self,
        user_id: &str,
        provider_id: &str,
        tokens: &Tokens,
    ) -> Result<(), sqlx::Error> {
        let now = crate::model::now_ms();
        sqlx::query("INSERT INTO external_auth_links (user_id, provider_id, access_token, refresh_token, expires_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (user_id, provider_id) DO UPDATE SET access_token = excluded.access_token, refresh_token = excluded.refresh_token, expires_at = excluded.expires_at, updated_at = excluded.updated_at")
            .bind(user_id)
            .bind(provider_id)
            .bind(&tokens.access_token)
            .bind(&tokens.refresh_token)
            .bind(tokens.expires_at)
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn get_external_auth_link(
        &self,
        user_id: &str,
        provider_id: &str,
    ) -> Result<Option<Tokens>, sqlx::Error> {
        let row = sqlx::query("SELECT access_token, refresh_token, expires_at FROM external_auth_links WHERE user_id = $1 AND provider_id = $2")
            .bind(user_id)
            .bind(provider_id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| {
            Ok(Tokens {
                access_token: r.try_get("access_token")?,
                refresh_token: r.try_get("refresh_token")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// The providers `user_id` has linked.
    pub async fn linked_external_auth(&self, user_id: &str) -> Result<Vec<String>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT provider_id FROM external_auth_links WHERE user_id = $1 ORDER BY provider_id",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| r.try_get("provider_id")).collect()
    }

    pub async fn delete_external_auth_link(
        &self,
        user_id: &str,
        provider_id: &str,
    ) -> Result<bool, sqlx::Error> {
        let done =
            sqlx::query("DELETE FROM external_auth_links WHERE user_id = $1 AND provider_id = $2")
                .bind(user_id)
                .bind(provider_id)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records a link attempt's `state` (its hash) for `user_id` and `provider_id`.
    pub async fn save_oauth_state(
        &self,
        state_hash: &str,
        user_id: &str,
        provider_id: &str,
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM external_auth_states WHERE expires_at < $1")
            .bind(crate::model::now_ms())
            .execute(self.pool())
            .await?;
        sqlx::query("INSERT INTO external_auth_states (state_hash, user_id, provider_id, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(state_hash)
            .bind(user_id)
            .bind(provider_id)
            .bind(expires_at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Uses up a link attempt: true only for a live state this user started for this
    /// provider.
    pub async fn take_oauth_state(
        &self,
        state_hash: &str,
        user_id: &str,
        provider_id: &str,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM external_auth_states WHERE state_hash = $1 AND user_id = $2 AND provider_id = $3 AND expires_at > $4")
            .bind(state_hash)
            .bind(user_id)
            .bind(provider_id)
            .bind(crate::model::now_ms())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
