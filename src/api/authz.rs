//! Who may call what. Every API route is declared once, with its [`Access`], in
//! `api::route_table`; the router is built from that table and [`gate`] enforces the
//! access before the handler runs, so a route cannot exist without a decision and a
//! handler cannot forget to make one. The decision itself is [`may_see_workspace`] and
//! the role rules in `model::Role`: one place to change when shares arrive.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::agents::AgentAuth;
use super::auth::Auth;
use super::{ApiError, AppState};
use crate::db::users::User;
use crate::model::{JobKind, Role};

/// What a route demands of its caller. Resource kinds name the path parameter they read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: login, the first user, build info, the init script and agent binary.
    Public,
    /// A workspace agent, by its token.
    Agent,
    /// Any logged-in user; the handler scopes what it returns to them (their tokens,
    /// their workspaces, templates they may use).
    User,
    /// Owners and template-admins.
    TemplateAdmin,
    /// Owners only.
    Owner,
    /// The workspace `:owner/:name`: its owner, owners and template-admins.
    Workspace,
    /// The workspace `:owner/:name`, for what only its owner may have (its agents'
    /// tokens): whoever holds one can stand in for the agent.
    WorkspaceOwner,
    /// The build `:id`, as its workspace.
    Build,
    /// The job `:id`: a build's as its workspace; an import's for template-admins; a dry
    /// run's for the user who asked for it and template-admins.
    Job,
    /// The agent `:id`, as its workspace.
    WorkspaceAgent,
    /// A session into the agent `:id` (a shell, a forwarded port): its workspace's owner
    /// only, never another user whatever their role.
    AgentSession,
}

/// Whether `user` may see and act on a workspace owned by `owner_id`.
pub fn may_see_workspace(user: &User, owner_id: &str) -> bool {
    user.id == owner_id || user.role.sees_all_workspaces()
}

/// Whether `user` may open sessions (shells, forwards) into a workspace of `owner_id`:
/// its owner only. Shares will widen this, here.
pub fn may_connect(user: &User, owner_id: &str) -> bool {
    user.id == owner_id
}

fn role_error(user: &User, needs: &str) -> ApiError {
    ApiError::Forbidden(format!(
        "this needs the {needs} role; you are {} ({})",
        user.username, user.role
    ))
}

/// Runs before every handler: authenticates the caller as the route's access demands,
/// checks it against the resource the path names, and leaves the `Auth` in the request
/// for the handler's extractor. Someone else's resource answers 404, like a missing one,
/// so ids and names do not leak.
pub async fn gate(
    State(state): State<AppState>,
    access: Access,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    match check(&state, access, &mut parts).await {
        Ok(()) => next.run(Request::from_parts(parts, body)).await,
        Err(e) => e.into_response(),
    }
}

async fn check(
    state: &AppState,
    access: Access,
    parts: &mut axum::http::request::Parts,
) -> Result<(), ApiError> {
    match access {
        Access::Public => return Ok(()),
        Access::Agent => {
            let agent = AgentAuth::from_request_parts(parts, state).await?;
            parts.extensions.insert(agent);
            return Ok(());
        }
        _ => {}
    }
    let auth = Auth::from_request_parts(parts, state).await?;
    let params: HashMap<String, String> = match Path::from_request_parts(parts, state).await {
        Ok(Path(p)) => p,
        Err(_) => HashMap::new(),
    };
    let param = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();
    let user = &auth.user;
    match access {
        Access::Public | Access::Agent | Access::User => {}
        Access::TemplateAdmin => {
            if !user.role.can_manage_templates() {
                return Err(role_error(user, "owner or template-admin"));
            }
        }
        Access::Owner => {
            if user.role != Role::Owner {
                return Err(role_error(user, "owner"));
            }
        }
        Access::Workspace | Access::WorkspaceOwner => {
            let (owner, name) = (param("owner"), param("name"));
            let owner_id = if owner == "me" || owner == user.username {
                Some(user.id.clone())
            } else {
                state.db.get_user_by_name(owner).await?.map(|u| u.id)
            };
            let allowed = |id: &str| match access {
                Access::WorkspaceOwner => may_connect(user, id),
                _ => may_see_workspace(user, id),
            };
            let visible = match owner_id {
                Some(id) if allowed(&id) => {
                    state.db.get_workspace_by_name(&id, name).await?.is_some()
                }
                _ => false,
            };
            if !visible {
                return Err(ApiError::NotFound(format!(
                    "no workspace {name}{}: see `hangar list`",
                    if owner == "me" {
                        String::new()
                    } else {
                        format!(" of {owner}")
                    }
                )));
            }
        }
        Access::Build => {
            let id = param("id");
            let owner = match state.db.workspace_of_build(id, false).await? {
                Some(ws) => workspace_owner(state, &ws).await?,
                None => None,
            };
            if !owner.is_some_and(|o| may_see_workspace(user, &o)) {
                return Err(ApiError::NotFound(format!("no build {id}")));
            }
        }
        Access::Job => {
            let id = param("id");
            if !may_see_job(state, user, id).await? {
                return Err(ApiError::NotFound(format!("no job {id}")));
            }
        }
        Access::WorkspaceAgent => {
            let id = param("id");
            let visible = state
                .db
                .get_agent_with_workspace(id)
                .await?
                .is_some_and(|a| may_see_workspace(user, &a.owner_id));
            if !visible {
                return Err(ApiError::NotFound(format!("no workspace agent {id}")));
            }
        }
        Access::AgentSession => {
            // A WebSocket handshake carries the cookie cross-site like any GET: a page
            // elsewhere must not open a shell with it.
            super::guard::check_source(&state.config.access_url, &parts.headers)?;
            let id = param("id");
            let theirs = state
                .db
                .get_agent_with_workspace(id)
                .await?
                .is_some_and(|a| may_connect(user, &a.owner_id));
            if !theirs {
                return Err(ApiError::NotFound(format!("no workspace agent {id}")));
            }
        }
    }
    parts.extensions.insert(auth);
    Ok(())
}

async fn workspace_owner(state: &AppState, workspace_id: &str) -> Result<Option<String>, ApiError> {
    Ok(state
        .db
        .get_workspace(workspace_id)
        .await?
        .map(|w| w.owner_id))
}

/// A build's job is its workspace's; an import's is the template-admins'; a dry run's is
/// its initiator's (it carries their parameter values) and the template-admins'.
async fn may_see_job(state: &AppState, user: &User, id: &str) -> Result<bool, ApiError> {
    let Some(job) = state.db.get_job(id).await? else {
        return Ok(false);
    };
    Ok(match job.kind {
        JobKind::WorkspaceBuild => match state.db.workspace_of_build(id, true).await? {
            Some(ws) => workspace_owner(state, &ws)
                .await?
                .is_some_and(|o| may_see_workspace(user, &o)),
            None => false,
        },
        JobKind::TemplateVersionImport => user.role.can_manage_templates(),
        JobKind::TemplateVersionDryRun => {
            let input: crate::provisioner::jobs::DryRunInput = serde_json::from_str(&job.input)
                .map_err(|e| anyhow::anyhow!("job {id} has an unreadable input: {e}"))?;
            input.user_id == user.id || user.role.can_manage_templates()
        }
    })
}
