//! `/api/v2/users/me/keys/tokens`: named API tokens for CI and scripts.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::auth::Auth;
use super::{ApiError, ApiResult, AppState};
use crate::db::tokens::ApiToken;
use crate::model::secret::{generate_token, hash_token};
use crate::model::{new_id, now_ms, Name};
use crate::wire::tokens::{CreateTokenRequest, CreatedToken, Token, MAX_LIFETIME_SECONDS};

pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Json(req): Json<CreateTokenRequest>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let name = Name::parse(&req.name).map_err(|e| ApiError::invalid("name", e.to_string()))?;
    if let Some(secs) = req.lifetime_seconds {
        if !(1..=MAX_LIFETIME_SECONDS).contains(&secs) {
            return Err(ApiError::invalid(
                "lifetime",
                format!(
                    "must be between 1 second and {} days, e.g. 24h or 30d",
                    MAX_LIFETIME_SECONDS / 86_400
                ),
            ));
        }
    }
    let now = now_ms();
    let secret = generate_token();
    let token = ApiToken {
        id: new_id(),
        user_id: auth.user.id.clone(),
        name: name.into_string(),
        login_type: "token".into(),
        created_at: now,
        expires_at: req.lifetime_seconds.map(|s| now + s * 1000),
        last_used_at: None,
    };
    match state
        .db
        .insert_token(&token, &hash_token(secret.expose()))
        .await
    {
        Ok(()) => {}
        Err(e) if crate::db::is_unique_violation(&e) => {
            return Err(ApiError::Conflict(format!(
                "you already have a token named {:?}: remove it first or pick another name",
                token.name
            )));
        }
        Err(e) => return Err(e.into()),
    }
    state
        .db
        .audit(Some(&auth.user.id), "create_token", &token.name, "")
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            key: secret.expose().to_string(),
            token: token.into(),
        }),
    ))
}

pub async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Vec<Token>>> {
    let tokens = state.db.list_tokens(&auth.user.id).await?;
    Ok(Json(tokens.into_iter().map(Into::into).collect()))
}

pub async fn remove(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    if !state.db.delete_token(&auth.user.id, &name).await? {
        return Err(ApiError::NotFound(format!(
            "you have no token named {name:?}"
        )));
    }
    state
        .db
        .audit(Some(&auth.user.id), "remove_token", &name, "")
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
