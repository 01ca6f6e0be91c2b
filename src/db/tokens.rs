//! The `api_tokens` table: login sessions and API tokens, by the SHA-256 of their secret.

use sqlx::Row;

use super::Database;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ApiToken {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// `password` for a login session, `token` for a named API token.
    pub login_type: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

const COLUMNS: &str = "id, user_id, name, login_type, created_at, expires_at, last_used_at";

fn from_row(row: &sqlx::any::AnyRow) -> Result<ApiToken, sqlx::Error> {
    Ok(ApiToken {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        login_type: row.try_get("login_type")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

impl Database {
    pub async fn insert_token(&self, token: &ApiToken, hash: &str) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO api_tokens (id, user_id, name, login_type, hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(&token.id)
            .bind(&token.user_id)
            .bind(&token.name)
            .bind(&token.login_type)
            .bind(hash)
            .bind(token.created_at)
            .bind(token.expires_at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn find_token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE hash = $1");
        let row = sqlx::query(&sql)
            .bind(hash)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn get_token(&self, id: &str) -> Result<Option<ApiToken>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn touch_token(&self, id: &str, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn list_tokens(&self, user_id: &str) -> Result<Vec<ApiToken>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE user_id = $1 AND login_type = 'token' ORDER BY name");
        let rows = sqlx::query(&sql)
            .bind(user_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Removes a user's token by name or id; false when there was none.
    pub async fn delete_token(&self, user_id: &str, name_or_id: &str) -> Result<bool, sqlx::Error> {
        let done =
            sqlx::query("DELETE FROM api_tokens WHERE user_id = $1 AND (name = $2 OR id = $2)")
                .bind(user_id)
                .bind(name_or_id)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes a user's app tokens for one app host.
    pub async fn delete_app_tokens(&self, user_id: &str, host: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "DELETE FROM api_tokens WHERE user_id = $1 AND name = $2 AND login_type = 'app'",
        )
        .bind(user_id)
        .bind(host)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn delete_token_by_id(&self, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM api_tokens WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
