//! The REST API's request and response types, like Coder's `codersdk`: the server
//! serializes them, the client, the CLI, the agent and the tests deserialize them, so both
//! sides agree by construction. Nothing here touches the database or HTTP; the only
//! dependency is `model`, for the enums and value types both sides share.
//!
//! Times are RFC 3339 strings on the wire ([`Timestamp`]); stored JSON (job input, timings,
//! resource metadata) is sent as real JSON, never as JSON inside a string.

pub mod agent;
pub mod agents;
pub mod audit;
pub mod external_auth;
pub mod jobs;
pub mod templates;
mod time;
pub mod tokens;
pub mod users;
pub mod workspaces;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub use self::time::Timestamp;

/// One field's problem in a [`ErrorBody`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub detail: String,
}

/// The JSON body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, ToSchema)]
pub struct ErrorBody {
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validations: Vec<FieldError>,
}

/// `GET /buildinfo`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BuildInfo {
    pub version: String,
}

/// One page of a list: the items asked for and how many match in all (Coder's `count`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub count: i64,
}

/// `?limit=&offset=` of every paged list. `limit` 0 means the server's default.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    #[serde(default)]
    pub limit: i64,
    #[serde(default)]
    pub offset: i64,
}

impl Paging {
    /// Pages hold at most this many items.
    pub const MAX_LIMIT: i64 = 500;
    pub const DEFAULT_LIMIT: i64 = 100;

    /// The limit and offset to query with: within bounds, whatever the caller sent.
    pub fn clamped(self) -> (i64, i64) {
        let limit = match self.limit {
            l if l <= 0 => Self::DEFAULT_LIMIT,
            l => l.min(Self::MAX_LIMIT),
        };
        (limit, self.offset.max(0))
    }
}
