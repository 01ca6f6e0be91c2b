//! Who is calling: the session or API token in `Authorization: Bearer`, the
//! `Hangar-Session-Token` header, or the web UI's cookie.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use subtle::ConstantTimeEq;

use super::{ApiError, ApiResult, AppState};
use crate::db::users::User;
use crate::model::{now_ms, secret::hash_token};

pub const SESSION_HEADER: &str = "Hangar-Session-Token";
/// What Coder's CLI and SDK send: their clients work against Hangar unchanged.
pub const CODER_SESSION_HEADER: &str = "Coder-Session-Token";
pub const SESSION_COOKIE: &str = "hangar_session";

/// The authenticated user of a request.
#[derive(Clone)]
pub struct Auth {
    pub user: User,
    pub token_id: String,
}

/// The bearer secret of a request, from whichever place the client put it.
pub fn bearer(parts: &Parts) -> Option<String> {
    let headers = &parts.headers;
    if let Some(v) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        // The scheme is case-insensitive (RFC 9110): Coder's clients send `bearer` too.
        if let Some((scheme, t)) = v.split_once(' ') {
            if scheme.eq_ignore_ascii_case("bearer") {
                return Some(t.trim().to_string());
            }
        }
    }
    for name in [SESSION_HEADER, CODER_SESSION_HEADER] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            return Some(v.trim().to_string());
        }
    }
    let cookies = headers
        .get(axum::http::header::COOKIE)
        .and_then(|v| v.to_str().ok())?;
    cookies.split(';').find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == SESSION_COOKIE).then(|| v.to_string())
    })
}

/// Compares two hashes without leaking where they differ.
pub fn hashes_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[axum::async_trait]
impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // The route's gate authenticated this request already.
        if let Some(auth) = parts.extensions.get::<Auth>() {
            return Ok(auth.clone());
        }
        let secret = bearer(parts).ok_or_else(|| {
            ApiError::Unauthorized(
                "not logged in: run `hangar login <url>` or set HANGAR_SESSION_TOKEN".into(),
            )
        })?;
        authenticate(state, &secret, TokenUse::Api).await
    }
}

/// What a token is presented for.
pub enum TokenUse<'a> {
    /// The API and the web UI: any token but an app token.
    Api,
    /// A subdomain app at this host: only an app token made for that host.
    App(&'a str),
}

/// The login type of tokens that open one subdomain app host (their name) and nothing else.
pub const APP_LOGIN_TYPE: &str = "app";

/// `auth` as it stands now, for work that outlives its request (a live page's stream,
/// the start that follows a restart's stop): the user re-read (role, suspension), the
/// token still there and unexpired; Unauthorized otherwise.
pub async fn recheck(state: &AppState, auth: &Auth) -> ApiResult<Auth> {
    let now = now_ms();
    match state.db.get_token(&auth.token_id).await? {
        Some(t) if t.expires_at.is_none_or(|at| at > now) => {}
        _ => {
            return Err(ApiError::Unauthorized(
                "the session's token was revoked or expired".into(),
            ))
        }
    }
    match state.db.get_user(&auth.user.id).await? {
        Some(user) if !user.suspended => Ok(Auth {
            user,
            token_id: auth.token_id.clone(),
        }),
        _ => Err(ApiError::Unauthorized("the user was suspended".into())),
    }
}

/// The user a secret belongs to, if the token exists, has not expired, fits `usage` and
/// its user is not suspended.
pub async fn authenticate(state: &AppState, secret: &str, usage: TokenUse<'_>) -> ApiResult<Auth> {
    let hash = hash_token(secret);
    let token = state.db.find_token_by_hash(&hash).await?.ok_or_else(|| {
        ApiError::Unauthorized(
            "this session token is not valid (revoked, or never issued): log in again".into(),
        )
    })?;
    let fits = match usage {
        TokenUse::Api => token.login_type != APP_LOGIN_TYPE,
        TokenUse::App(host) => token.login_type == APP_LOGIN_TYPE && token.name == host,
    };
    if !fits {
        return Err(ApiError::Unauthorized(
            "this token is not valid here: log in again".into(),
        ));
    }
    let now = now_ms();
    if token.expires_at.is_some_and(|at| at <= now) {
        return Err(ApiError::Unauthorized(format!(
            "this token ({}) expired: log in again or create a new token",
            token.name
        )));
    }
    let user =
        state.db.get_user(&token.user_id).await?.ok_or_else(|| {
            ApiError::Unauthorized("the user of this token no longer exists".into())
        })?;
    if user.suspended {
        return Err(ApiError::Unauthorized(format!(
            "user {} is suspended: ask an owner to activate it",
            user.username
        )));
    }
    // Last-used is informative; skip the write when it is fresh to spare the writer.
    if token.last_used_at.is_none_or(|t| now - t > 60_000) {
        state.db.touch_token(&token.id, now).await?;
    }
    Ok(Auth {
        user,
        token_id: token.id,
    })
}
