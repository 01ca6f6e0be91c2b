//! Named API tokens (and login sessions, which are tokens too).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Timestamp;

/// A token as listed: never its secret, which only [`CreatedToken`] carries, once.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Token {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// `password` for a login session, `token` for a named API token.
    pub login_type: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateTokenRequest {
    pub name: String,
    /// Lifetime in seconds; none means it never expires.
    #[serde(default)]
    pub lifetime_seconds: Option<i64>,
}

/// Ten years: long enough for any CI token, short enough that `now + lifetime` in
/// milliseconds never overflows (it did, and the token arrived expired).
pub const MAX_LIFETIME_SECONDS: i64 = 10 * 365 * 86_400;

#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// Shown once: only its hash is stored.
    pub key: String,
    pub token: Token,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("key", &"***")
            .field("token", &self.token)
            .finish()
    }
}
