//! `/api/v2/audit`: who changed what, newest first. Owners only.

use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;

use super::auth::Auth;
use super::{ApiResult, AppState};
use crate::db::audit::AuditEntry;

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    #[serde(default = "default_limit")]
    pub limit: i64,
}

fn default_limit() -> i64 {
    100
}

pub async fn list(
    State(state): State<AppState>,
    _auth: Auth,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    Ok(Json(state.db.list_audit(q.limit.clamp(1, 1000)).await?))
}
