//! `/api/v2/users…`: the first user, login, logout, and user management.

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::auth::Auth;
use super::{ApiError, ApiResult, AppState};
use crate::db::tokens::ApiToken;
use crate::db::users::User;
use crate::model::secret::{generate_token, hash_password, hash_token, verify_password};
use crate::model::{new_id, now_ms, Name, Role};
use crate::wire::users::{
    self as wire, CreateUserRequest, FirstUserStatus, LoginRequest, LoginResponse,
};

/// argon2 is built to cost ~50 ms of CPU: on the async threads, a burst of logins would
/// stall every other request, so it runs on the blocking pool.
async fn blocking_argon2<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> ApiResult<T> {
    Ok(tokio::task::spawn_blocking(f)
        .await
        .map_err(anyhow::Error::from)?)
}

/// Session lifetime: long enough for a working week; API tokens choose their own.
pub const SESSION_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

pub async fn first_user_status(State(state): State<AppState>) -> ApiResult<Json<FirstUserStatus>> {
    Ok(Json(FirstUserStatus {
        exists: state.db.count_users().await? > 0,
    }))
}

fn validated_user(req: &CreateUserRequest, role: Role) -> ApiResult<User> {
    let username =
        Name::parse(&req.username).map_err(|e| ApiError::invalid("username", e.to_string()))?;
    let email = req.email.trim();
    if !email.contains('@') || email.starts_with('@') || email.ends_with('@') || email.contains(' ')
    {
        return Err(ApiError::invalid(
            "email",
            format!("{email:?} is not an email address"),
        ));
    }
    if req.password.chars().count() < 8 {
        return Err(ApiError::invalid(
            "password",
            "must be at least 8 characters",
        ));
    }
    Ok(User {
        id: new_id(),
        username: username.into_string(),
        email: email.to_string(),
        full_name: req.full_name.trim().to_string(),
        role,
        suspended: false,
        created_at: now_ms(),
    })
}

/// Creates the first user, an owner, and logs them in. Refused once any user exists.
pub async fn create_first_user(
    State(state): State<AppState>,
    Json(req): Json<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<LoginResponse>)> {
    let user = validated_user(&req, Role::Owner)?;
    let hash = blocking_argon2({
        let password = req.password.clone();
        move || hash_password(&password)
    })
    .await??;
    if !state.db.insert_first_user(&user, &hash).await? {
        return Err(ApiError::Conflict(
            "the first user already exists: log in with `hangar login <url>`".into(),
        ));
    }
    state
        .db
        .audit(Some(&user.id), "create_first_user", &user.username, "")
        .await?;
    let session_token = issue_session(&state, &user).await?;
    Ok((
        StatusCode::CREATED,
        Json(LoginResponse {
            session_token,
            user: user.into(),
        }),
    ))
}

async fn issue_session(state: &AppState, user: &User) -> ApiResult<String> {
    let secret = generate_token();
    let now = now_ms();
    let token = ApiToken {
        id: new_id(),
        user_id: user.id.clone(),
        name: format!("session-{now}"),
        login_type: "password".into(),
        created_at: now,
        expires_at: Some(now + SESSION_TTL_MS),
        last_used_at: None,
    };
    state
        .db
        .insert_token(&token, &hash_token(secret.expose()))
        .await?;
    Ok(secret.expose().to_string())
}

pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(from): ConnectInfo<std::net::SocketAddr>,
    Json(req): Json<LoginRequest>,
) -> ApiResult<(StatusCode, Json<LoginResponse>)> {
    Ok((
        StatusCode::CREATED,
        Json(login_user(&state, &req, from.ip()).await?),
    ))
}

/// Checks the password and issues a session token (the API and the web login both use it).
pub async fn login_user(
    state: &AppState,
    req: &LoginRequest,
    from: std::net::IpAddr,
) -> ApiResult<LoginResponse> {
    state.login_limits.attempt(&req.login, from)?;
    let wrong = || ApiError::Unauthorized("incorrect login or password".into());
    let found = state.db.find_user_for_login(req.login.trim()).await?;
    // Without a user, spend the same time as a real check so timing does not reveal
    // which users exist.
    let hash = found.as_ref().map(|f| f.password_hash.clone()).unwrap_or_else(|| {
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$ZmFrZWhhc2hmYWtlaGFzaGZha2VoYXNoZmFrZWg".into()
    });
    let matches = blocking_argon2({
        let password = req.password.clone();
        move || verify_password(&password, &hash)
    })
    .await?;
    let Some(found) = found.filter(|_| matches) else {
        return Err(wrong());
    };
    if found.user.suspended {
        return Err(ApiError::Unauthorized(format!(
            "user {} is suspended: ask an owner to activate it",
            found.user.username
        )));
    }
    let session_token = issue_session(state, &found.user).await?;
    Ok(LoginResponse {
        session_token,
        user: found.user.into(),
    })
}

pub async fn logout(State(state): State<AppState>, auth: Auth) -> ApiResult<StatusCode> {
    end_session(&state, &auth).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes the token the caller authenticated with.
pub async fn end_session(state: &AppState, auth: &Auth) -> ApiResult<()> {
    state.db.delete_token_by_id(&auth.token_id).await?;
    Ok(())
}

pub async fn me(auth: Auth) -> Json<wire::User> {
    Json(auth.user.into())
}

pub async fn list(State(state): State<AppState>, _auth: Auth) -> ApiResult<Json<Vec<wire::User>>> {
    let users = state.db.list_users().await?;
    Ok(Json(users.into_iter().map(Into::into).collect()))
}

pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Json(req): Json<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<wire::User>)> {
    let user = validated_user(&req, req.role.unwrap_or(Role::Member))?;
    let hash = blocking_argon2({
        let password = req.password.clone();
        move || hash_password(&password)
    })
    .await??;
    match state.db.insert_user(&user, &hash).await {
        Ok(()) => {}
        Err(e) if crate::db::is_unique_violation(&e) => {
            return Err(ApiError::Conflict(format!(
                "a user with username {:?} or email {:?} already exists",
                user.username, user.email
            )));
        }
        Err(e) => return Err(e.into()),
    }
    state
        .db
        .audit(
            Some(&auth.user.id),
            "create_user",
            &user.username,
            user.role.as_str(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

async fn set_suspended(
    state: &AppState,
    auth: &Auth,
    username: &str,
    suspended: bool,
) -> ApiResult<Json<wire::User>> {
    let mut user = state
        .db
        .get_user_by_name(username)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user named {username:?}")))?;
    if user.id == auth.user.id && suspended {
        return Err(ApiError::BadRequest("you cannot suspend yourself".into()));
    }
    state.db.set_user_suspended(&user.id, suspended).await?;
    let action = if suspended {
        "suspend_user"
    } else {
        "activate_user"
    };
    state
        .db
        .audit(Some(&auth.user.id), action, &user.username, "")
        .await?;
    user.suspended = suspended;
    Ok(Json(user.into()))
}

pub async fn suspend(
    State(state): State<AppState>,
    auth: Auth,
    Path(username): Path<String>,
) -> ApiResult<Json<wire::User>> {
    set_suspended(&state, &auth, &username, true).await
}

pub async fn activate(
    State(state): State<AppState>,
    auth: Auth,
    Path(username): Path<String>,
) -> ApiResult<Json<wire::User>> {
    set_suspended(&state, &auth, &username, false).await
}
