//! The `users` table.

use sqlx::Row;

use super::{flag, parse_text, Database};
use crate::model::Role;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: String,
    pub full_name: String,
    pub role: Role,
    pub suspended: bool,
    pub created_at: i64,
}

/// A user row plus the password hash, which never leaves the server.
pub struct UserWithHash {
    pub user: User,
    pub password_hash: String,
}

const COLUMNS: &str = "id, username, email, full_name, password_hash, role, suspended, created_at";

fn from_row(row: &sqlx::any::AnyRow) -> Result<UserWithHash, sqlx::Error> {
    Ok(UserWithHash {
        user: User {
            id: row.try_get("id")?,
            username: row.try_get("username")?,
            email: row.try_get("email")?,
            full_name: row.try_get("full_name")?,
            role: parse_text("role", &row.try_get::<String, _>("role")?)?,
            suspended: flag(row.try_get("suspended")?),
            created_at: row.try_get("created_at")?,
        },
        password_hash: row.try_get("password_hash")?,
    })
}

impl Database {
    pub async fn count_users(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(self.pool())
            .await
    }

    pub async fn insert_user(&self, user: &User, password_hash: &str) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO users (id, username, email, full_name, password_hash, role, suspended, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(&user.id)
            .bind(&user.username)
            .bind(&user.email)
            .bind(&user.full_name)
            .bind(password_hash)
            .bind(user.role.as_str())
            .bind(user.suspended as i64)
            .bind(user.created_at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Inserts the first user only while there is none, in one statement, so two racing
    /// first-user requests cannot both become owner.
    pub async fn insert_first_user(
        &self,
        user: &User,
        password_hash: &str,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("INSERT INTO users (id, username, email, full_name, password_hash, role, suspended, created_at) SELECT $1, $2, $3, $4, $5, $6, 0, $7 WHERE NOT EXISTS (SELECT 1 FROM users)")
            .bind(&user.id)
            .bind(&user.username)
            .bind(&user.email)
            .bind(&user.full_name)
            .bind(password_hash)
            .bind(user.role.as_str())
            .bind(user.created_at)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// By username or email.
    pub async fn find_user_for_login(
        &self,
        login: &str,
    ) -> Result<Option<UserWithHash>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE username = $1 OR email = $1");
        let row = sqlx::query(&sql)
            .bind(login)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn get_user(&self, id: &str) -> Result<Option<User>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?.map(|u| u.user))
    }

    pub async fn get_user_by_name(&self, username: &str) -> Result<Option<User>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE username = $1");
        let row = sqlx::query(&sql)
            .bind(username)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?.map(|u| u.user))
    }

    pub async fn list_users(&self) -> Result<Vec<User>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM users ORDER BY username");
        let rows = sqlx::query(&sql).fetch_all(self.pool()).await?;
        rows.iter().map(|r| from_row(r).map(|u| u.user)).collect()
    }

    pub async fn set_user_suspended(&self, id: &str, suspended: bool) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE users SET suspended = $1 WHERE id = $2")
            .bind(suspended as i64)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
