//! `/external-auth`: the OAuth2 providers the server is configured with and the caller's
//! links to them; `/workspaceagents/me/external-auth`: a workspace asks for its owner's
//! token. The browser side of linking (the authorization-code flow) is in `web`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;

use super::agents::AgentAuth;
use super::auth::Auth;
use super::{ApiError, ApiResult, AppState};
use crate::db::templates::TemplateVersion;
use crate::db::users::User;
use crate::external_auth::{self as oauth, Link, Provider};
use crate::wire::external_auth::{AgentExternalAuthQuery, ExternalAuthToken, ExternalAuthView};

/// The configured provider `id`, or a 404 naming the ones there are.
pub fn provider<'a>(state: &'a AppState, id: &str) -> ApiResult<&'a Provider> {
    let providers = &state.config.external_auth;
    providers.iter().find(|p| p.id == id).ok_or_else(|| {
        let known: Vec<&str> = providers.iter().map(|p| p.id.as_str()).collect();
        ApiError::NotFound(if known.is_empty() {
            format!("no external auth provider {id:?}: this server has none configured (--external-auth-config)")
        } else {
            format!("no external auth provider {id:?}; this server has {}", known.join(", "))
        })
    })
}

pub async fn views(state: &AppState, user: &User) -> ApiResult<Vec<ExternalAuthView>> {
    let linked = state.db.linked_external_auth(&user.id).await?;
    Ok(state
        .config
        .external_auth
        .iter()
        .map(|p| ExternalAuthView {
            id: p.id.clone(),
            display_name: p.name().to_string(),
            display_icon: p.display_icon.clone(),
            linked: linked.contains(&p.id),
            link_url: oauth::link_url(&state.config.access_url, &p.id),
        })
        .collect())
}

/// `GET /external-auth`: every provider, and whether the caller linked it.
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Vec<ExternalAuthView>>> {
    Ok(Json(views(&state, &auth.user).await?))
}

/// The current token of `user` for provider `id`, or why there is none (with where to
/// link).
async fn token_of(state: &AppState, user_id: &str, id: &str) -> ApiResult<ExternalAuthToken> {
    let p = provider(state, id)?;
    let url = oauth::link_url(&state.config.access_url, id);
    match oauth::current(&state.db, &state.http, p, user_id).await? {
        Link::Valid(token) => Ok(ExternalAuthToken {
            access_token: token.expose().to_string(),
        }),
        Link::Missing => Err(ApiError::Conflict(format!(
            "no {} account is linked: link one at {url}",
            p.name()
        ))),
        Link::Expired(why) => Err(ApiError::Conflict(format!(
            "the {} link no longer works ({why}): link it again at {url}",
            p.name()
        ))),
    }
}

/// `GET /external-auth/{id}/token`: the caller's own current access token.
pub async fn token(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ExternalAuthToken>> {
    Ok(Json(token_of(&state, &auth.user.id, &id).await?))
}

/// `DELETE /external-auth/{id}`: forgets the caller's link.
pub async fn unlink(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    provider(&state, &id)?;
    state
        .db
        .delete_external_auth_link(&auth.user.id, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /workspaceagents/me/external-auth?id=`: the workspace owner's token, for
/// `hangar external-auth access-token` inside the workspace. An agent whose
/// `api_key_scope` is `no_user_data` may not.
pub async fn agent_token(
    State(state): State<AppState>,
    AgentAuth(a): AgentAuth,
    Query(q): Query<AgentExternalAuthQuery>,
) -> ApiResult<Json<ExternalAuthToken>> {
    if a.agent.spec()?.api_key_scope == "no_user_data" {
        return Err(ApiError::Forbidden(format!(
            "agent {}'s api_key_scope is no_user_data: it may not read its owner's external auth tokens",
            a.agent.name
        )));
    }
    Ok(Json(token_of(&state, &a.owner_id, &q.id).await?))
}

/// Refuses a build of `version` for `owner` while a provider the version needs (not
/// `optional`) is unlinked, saying where to link it: the build would fail otherwise.
pub async fn require_links(
    state: &AppState,
    version: &TemplateVersion,
    owner: &User,
) -> ApiResult<()> {
    let mut missing = Vec::new();
    for need in version.facts.external_auth.iter().filter(|n| !n.optional) {
        let Ok(p) = provider(state, &need.id) else {
            return Err(ApiError::BadRequest(format!(
                "template version {} needs external auth {:?}, which this server does not have: ask an operator to add it to --external-auth-config",
                version.name, need.id
            )));
        };
        let link = oauth::current(&state.db, &state.http, p, &owner.id).await?;
        if !matches!(link, Link::Valid(_)) {
            missing.push(format!(
                "{} (link it at {})",
                p.name(),
                oauth::link_url(&state.config.access_url, &p.id)
            ));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(
        "external_auth",
        format!(
            "this template uses accounts {} has not linked: {}",
            owner.username,
            missing.join("; ")
        ),
    ))
}
