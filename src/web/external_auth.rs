//! The browser side of external auth: the accounts page and the OAuth2
//! authorization-code flow that links one (`/external-auth/{id}/login` sends the browser
//! to the provider; the provider sends it back to `/external-auth/{id}/callback`).

use axum::extract::{Path, Query, State};
use axum::http::header::SET_COOKIE;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::views::ExternalAuthPage;
use super::{page, see_other, PageResult, Viewer};
use crate::api::external_auth::{provider, views};
use crate::api::AppState;

/// Carries `<provider id>.<state>` from the login redirect to the callback.
const STATE_COOKIE: &str = "hangar_oauth_state";

#[derive(Debug, Default, Deserialize)]
pub struct Notice {
    #[serde(default)]
    linked: Option<String>,
}

async fn accounts(
    state: &AppState,
    viewer: &Viewer,
    focus: &str,
    notice: Option<String>,
    error: Option<String>,
) -> PageResult {
    let providers = views(state, &viewer.0.user).await?;
    page(
        "external_auth.html",
        &ExternalAuthPage {
            providers,
            focus: focus.to_string(),
            notice,
            error,
        },
        viewer,
    )
}

/// `/external-auth`: every provider and whether the viewer linked it.
pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(n): Query<Notice>,
) -> PageResult {
    let notice = match n.linked {
        Some(id) => match provider(&state, &id) {
            Ok(p) => Some(format!("Your {} account is linked.", p.name())),
            Err(_) => None,
        },
        None => None,
    };
    accounts(&state, &viewer, "", notice, None).await
}

/// `/external-auth/{id}`: the same page, that provider highlighted (errors link here).
pub async fn one(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    provider(&state, &id)?;
    accounts(&state, &viewer, &id, None, None).await
}

fn callback_url(state: &AppState, id: &str) -> String {
    format!(
        "{}/external-auth/{id}/callback",
        state.config.access_url.trim_end_matches('/')
    )
}

fn state_cookie(state: &AppState, value: &str, max_age: u32) -> String {
    let secure = if state.config.access_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!("{STATE_COOKIE}={value}; Path=/external-auth; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

/// `/external-auth/{id}/login`: to the provider, with a fresh `state` the callback checks
/// (recorded for this user, and in a cookie of this browser).
pub async fn login(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let p = provider(&state, &id)?;
    let nonce = crate::model::secret::generate_token();
    state
        .db
        .save_oauth_state(
            &crate::model::secret::hash_token(nonce.expose()),
            &viewer.0.user.id,
            &id,
            crate::model::now_ms() + 600_000,
        )
        .await
        .map_err(crate::api::ApiError::from)?;
    let to = p.authorize_url(&callback_url(&state, &id), nonce.expose());
    let mut response = Redirect::to(&to).into_response();
    let cookie = state_cookie(&state, &format!("{id}.{}", nonce.expose()), 600);
    if let Ok(v) = cookie.parse() {
        response.headers_mut().insert(SET_COOKIE, v);
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// The `state` this browser was sent off with, from its cookie.
fn sent_state(headers: &axum::http::HeaderMap, id: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(&format!("{STATE_COOKIE}=")))
        .filter_map(|v| v.split_once('.'))
        .find(|(cookie_id, _)| *cookie_id == id)
        .map(|(_, s)| s.to_string())
}

/// `/external-auth/{id}/callback`: the provider sends the browser back with a code (or an
/// error); a matching `state` proves this browser started the flow, then the code is
/// traded for tokens, which are stored as the viewer's link.
pub async fn callback(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    Query(q): Query<Callback>,
) -> PageResult {
    use subtle::ConstantTimeEq;
    let p = provider(&state, &id)?;
    let fail = |why: String| async {
        let mut r: Response = accounts(&state, &viewer, &id, None, Some(why)).await?;
        *r.status_mut() = axum::http::StatusCode::BAD_REQUEST;
        Ok::<_, super::WebError>(r)
    };
    // The state must be one this user started, from this browser: a callback carrying
    // someone else's code (their account) is refused before anything else is read.
    let expected = sent_state(&headers, &id);
    let from_this_browser = match (&expected, &q.state) {
        (Some(a), Some(b)) => bool::from(a.as_bytes().ct_eq(b.as_bytes())),
        _ => false,
    };
    let started_by_user = match &q.state {
        Some(s) if from_this_browser => state
            .db
            .take_oauth_state(&crate::model::secret::hash_token(s), &viewer.0.user.id, &id)
            .await
            .map_err(crate::api::ApiError::from)?,
        _ => false,
    };
    if !started_by_user {
        return fail(format!(
            "this link attempt cannot be verified (it expired, or did not start in this browser): choose Link {} again",
            p.name()
        ))
        .await;
    }
    if q.error.is_some() {
        // The provider's own words are not shown: anyone can put words in this URL.
        return fail(format!(
            "{} did not link the account (it was declined or failed there): choose Link {} to try again",
            p.name(),
            p.name()
        ))
        .await;
    }
    let Some(code) = q.code.filter(|c| !c.is_empty() && c.len() <= 4096) else {
        return fail(format!("{} sent no authorization code", p.name())).await;
    };
    let now = crate::model::now_ms();
    let tokens = match p
        .exchange_code(&state.http, &code, &callback_url(&state, &id), now)
        .await
    {
        Ok(t) => t,
        Err(e) => return fail(format!("linking failed: {e}")).await,
    };
    state
        .db
        .save_external_auth_link(&viewer.0.user.id, &id, &tokens)
        .await
        .map_err(crate::api::ApiError::from)?;
    state
        .db
        .audit(Some(&viewer.0.user.id), "external_auth_link", &id, "")
        .await
        .map_err(crate::api::ApiError::from)?;
    let mut response = see_other(&format!("/external-auth?linked={id}"));
    if let Ok(v) = state_cookie(&state, "", 0).parse() {
        response.headers_mut().insert(SET_COOKIE, v);
    }
    Ok(response)
}

/// `POST /external-auth/{id}/unlink`.
pub async fn unlink(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    provider(&state, &id)?;
    state
        .db
        .delete_external_auth_link(&viewer.0.user.id, &id)
        .await
        .map_err(crate::api::ApiError::from)?;
    Ok(see_other("/external-auth"))
}
