//! `/api/v2/audit`: who changed what, newest first. Owners only.

use axum::extract::{Query, State};
use axum::Json;

use super::auth::Auth;
use super::{ApiResult, AppState};
use crate::wire::audit::{AuditEntry, AuditQuery};

pub async fn list(
    State(state): State<AppState>,
    _auth: Auth,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    let entries = state.db.list_audit(q.limit.clamp(1, 1000)).await?;
    Ok(Json(entries.into_iter().map(Into::into).collect()))
}
