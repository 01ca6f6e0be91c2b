//! `/api/v2/workspaces…`: create, show, list, favorites and how to connect an external
//! agent. Builds are `builds.rs`. Members see only their own workspaces.

use anyhow::Context;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;

use super::auth::Auth;
use super::builds::build_view;
use super::convert::AgentPlace;
use super::templates::{template_by_name, version_by_name};
use super::{ApiError, ApiResult, AppState, FieldError};
use crate::db::agents::Agent;
use crate::db::templates::{Template, TemplateVersion};
use crate::db::users::User;
use crate::db::workspaces::{Listing, NewBuild, QueueError, Workspace, WorkspaceQuery};
use crate::model::parameter::resolve;
use crate::model::search::WorkspaceSearch;
use crate::model::{new_id, now_ms, Name, Transition, WorkspaceStatus};
use crate::wire::agents::AgentView;
use crate::wire::workspaces::{
    AgentInstructions, CreateWorkspaceRequest, FavoriteRequest, InstructionsQuery, ListQuery,
    WorkspaceView, WorkspacesPage,
};
use crate::wire::Timestamp;

/// Resolves `owner` ("me" or a username) and the workspace, enforcing who may see it.
pub async fn find_workspace(
    state: &AppState,
    auth: &Auth,
    owner: &str,
    name: &str,
) -> ApiResult<(Workspace, User)> {
    let not_found = || {
        ApiError::NotFound(format!(
            "no workspace {name:?}{}: see `hangar list`",
            if owner == "me" {
                String::new()
            } else {
                format!(" of {owner}")
            }
        ))
    };
    let owner_user = if owner == "me" || owner == auth.user.username {
        auth.user.clone()
    } else {
        state
            .db
            .get_user_by_name(owner)
            .await?
            .filter(|u| super::authz::may_see_workspace(&auth.user, &u.id))
            .ok_or_else(not_found)?
    };
    // `favorite` is left unset here: the views read it per viewer in their own query.
    let ws = state
        .db
        .get_workspace_by_name(&owner_user.id, name)
        .await?
        .ok_or_else(not_found)?;
    Ok((ws, owner_user))
}

pub fn parameter_errors(problems: Vec<crate::model::parameter::ParamProblem>) -> ApiError {
    let message = problems
        .iter()
        .map(|p| p.detail.clone())
        .collect::<Vec<_>>()
        .join("; ");
    ApiError::Validation {
        message,
        validations: problems
            .into_iter()
            .map(|p| FieldError {
                field: format!("parameter.{}", p.name),
                detail: p.detail,
            })
            .collect(),
    }
}

/// A version that can run builds: its import must have succeeded.
pub(super) async fn usable_version(
    state: &AppState,
    template: &Template,
    version: Option<&str>,
) -> ApiResult<TemplateVersion> {
    let v = match version {
        Some(name) if name != "active" => version_by_name(state, template, name).await?,
        _ => {
            let id = template.active_version_id.as_deref().ok_or_else(|| {
                ApiError::Conflict(format!("template {:?} has no active version yet (its import may still be running or may have failed): see `hangar templates versions list {}`", template.name, template.name))
            })?;
            state
                .db
                .get_template_version(id)
                .await?
                .ok_or_else(|| ApiError::NotFound("the active version is gone".into()))?
        }
    };
    super::templates::require_imported(state, &v, "used").await?;
    Ok(v)
}

pub(super) fn busy(state_name: &str) -> ApiError {
    ApiError::Conflict(format!("workspace {state_name:?} already has a build pending or running: wait for it (`hangar logs {state_name} --follow`) or cancel it"))
}

pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Json(req): Json<CreateWorkspaceRequest>,
) -> ApiResult<(StatusCode, Json<WorkspaceView>)> {
    let ws = create_workspace(&state, &auth, &req).await?;
    Ok((StatusCode::CREATED, Json(ws)))
}

pub(super) fn name_taken(name: &Name) -> ApiError {
    ApiError::Taken {
        field: "name".into(),
        message: format!(
            "you already have a workspace named {name:?}: pick another name or delete it first"
        ),
    }
}

/// Whose workspace a create makes: the caller's, or (owners only) the named user's.
async fn create_owner(state: &AppState, auth: &Auth, owner: Option<&str>) -> ApiResult<User> {
    Ok(match owner {
        None | Some("me") => auth.user.clone(),
        Some(o) if o == auth.user.username => auth.user.clone(),
        Some(o) => {
            if auth.user.role != crate::model::Role::Owner {
                return Err(ApiError::Forbidden(format!(
                    "creating a workspace for {o} needs the owner role; you are {} ({})",
                    auth.user.username, auth.user.role
                )));
            }
            state
                .db
                .get_user_by_name(o)
                .await?
                .filter(|u| !u.suspended)
                .ok_or_else(|| ApiError::invalid("owner", format!("no active user {o:?}")))?
        }
    })
}

/// Creates a workspace of the caller's and queues its first start build (the API and the
/// web's create form both use it). Bad values come back as field-level validations.
pub async fn create_workspace(
    state: &AppState,
    auth: &Auth,
    req: &CreateWorkspaceRequest,
) -> ApiResult<WorkspaceView> {
    // The name and the parameters are both checked before either error is returned: a
    // form shows every problem at once.
    let name = Name::parse(&req.name).map_err(|e| ApiError::invalid("name", e.to_string()));
    let template = template_by_name(state, &req.template).await?;
    let version = usable_version(state, &template, req.template_version.as_deref()).await?;
    if req.require_external && !version.has_external_agent {
        return Err(ApiError::BadRequest(format!(
            "template {:?} (version {}) has no hangar_external_agent, so it cannot make an external workspace: use `hangar create` instead, or add a hangar_external_agent to the template",
            template.name, version.name
        )));
    }
    let given = super::prebuilds::with_preset(&version, req.preset.as_deref(), &req.parameters)?;
    let owner = create_owner(state, auth, req.owner.as_deref()).await?;
    super::external_auth::require_links(state, &version, &owner).await?;
    let values = resolve(&version.parameters, &given, None).map_err(parameter_errors);
    let (name, values) = match (name, values) {
        (Ok(name), Ok(values)) => (name, values),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => return Err(e),
        (Err(named), Err(params)) => return Err(named.and(params)),
    };
    if state
        .db
        .get_workspace_by_name(&owner.id, name.as_str())
        .await?
        .is_some()
    {
        return Err(name_taken(&name));
    }
    if let Some(preset) = req.preset.as_deref() {
        if let Some(view) = super::prebuilds::claim(
            state, auth, &template, &version, preset, &owner, &name, &values,
        )
        .await?
        {
            return Ok(view);
        }
    }
    let ws = Workspace {
        id: new_id(),
        name: name.to_string(),
        owner_id: owner.id.clone(),
        template_id: template.id.clone(),
        favorite: false,
        created_at: now_ms(),
        deleted: false,
        last_used_at: None,
    };
    let params_json = serde_json::to_string(&values).map_err(anyhow::Error::from)?;
    let first = NewBuild {
        workspace_id: &ws.id,
        transition: Transition::Start,
        template_version_id: &version.id,
        initiator_id: &auth.user.id,
        parameters: &params_json,
        orphan: false,
        prebuild_claim: false,
    };
    match state.db.create_workspace(&ws, &first).await {
        Ok(_) => {}
        Err(QueueError::Db(e)) if crate::db::is_unique_violation(&e) => {
            return Err(name_taken(&name));
        }
        Err(QueueError::Db(e)) => return Err(e.into()),
        Err(QueueError::Busy) => return Err(busy(&ws.name)),
    }
    state.jobs_available.notify_waiters();
    state
        .db
        .audit(
            Some(&auth.user.id),
            "create_workspace",
            &format!("{}/{}", owner.username, ws.name),
            &template.name,
        )
        .await?;
    view_of(state, &auth.user, &ws).await
}

pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<WorkspacesPage>> {
    Ok(Json(list_page(&state, &auth, &q).await?))
}

/// Page size when the caller names none, and the largest it may name.
pub const DEFAULT_PAGE: i64 = 25;
pub const MAX_PAGE: i64 = 100;

/// `limit` and `offset` as given, checked.
pub fn page_bounds(limit: Option<i64>, offset: Option<i64>) -> ApiResult<(i64, i64)> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_PAGE}, not {limit}: page with offset"
        )));
    }
    let offset = offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::BadRequest(format!(
            "offset must be 0 or more, not {offset}"
        )));
    }
    Ok((limit, offset))
}

/// A page of the caller's workspaces (everyone's with `all`, for roles that see them),
/// favorites first, filtered by the search in SQL.
pub async fn list_page(state: &AppState, auth: &Auth, q: &ListQuery) -> ApiResult<WorkspacesPage> {
    let search = WorkspaceSearch::parse(&q.search).map_err(ApiError::BadRequest)?;
    let (limit, offset) = page_bounds(q.limit, q.offset)?;
    let owner_id = if q.all && auth.user.role.sees_all_workspaces() {
        None
    } else {
        Some(auth.user.id.as_str())
    };
    let query = WorkspaceQuery {
        viewer_id: &auth.user.id,
        owner_id,
        search: &search,
        limit,
        offset,
    };
    let (mut listings, count) = state.db.list_workspace_page(&query).await?;
    for l in &mut listings {
        state.usage.freshen(&mut l.agents);
    }
    let now = now_ms();
    let workspaces = listings
        .into_iter()
        .map(|l| workspace_view(l, now))
        .collect::<anyhow::Result<_>>()?;
    Ok(WorkspacesPage { workspaces, count })
}

pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path((owner, name)): Path<(String, String)>,
) -> ApiResult<Json<WorkspaceView>> {
    let (ws, _) = find_workspace(&state, &auth, &owner, &name).await?;
    Ok(Json(view_of(&state, &auth.user, &ws).await?))
}

pub async fn favorite(
    State(state): State<AppState>,
    auth: Auth,
    Path((owner, name)): Path<(String, String)>,
    Json(req): Json<FavoriteRequest>,
) -> ApiResult<StatusCode> {
    set_favorite(&state, &auth, &owner, &name, req.favorite).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Marks (or unmarks) a workspace the caller may see as one of the caller's favorites:
/// the caller's lists show it first; nobody else's change.
pub async fn set_favorite(
    state: &AppState,
    auth: &Auth,
    owner: &str,
    name: &str,
    favorite: bool,
) -> ApiResult<()> {
    let (ws, _) = find_workspace(state, auth, owner, name).await?;
    state
        .db
        .set_favorite(&auth.user.id, &ws.id, favorite)
        .await?;
    Ok(())
}

/// The view of one workspace, as `viewer` sees it (their favorite mark).
pub async fn view_of(state: &AppState, viewer: &User, ws: &Workspace) -> ApiResult<WorkspaceView> {
    let mut listing = state
        .db
        .workspace_listings(&viewer.id, std::slice::from_ref(&ws.id))
        .await?
        .pop()
        .ok_or_else(|| anyhow::anyhow!("workspace {} has no build", ws.id))?;
    state.usage.freshen(&mut listing.agents);
    Ok(workspace_view(listing, now_ms())?)
}

/// A workspace's view from its listing at `now`: resources with their agents, health, cost.
pub fn workspace_view(l: Listing, now: i64) -> anyhow::Result<WorkspaceView> {
    let ws = l.workspace;
    let status = l.latest.build.workspace_status();
    let place = AgentPlace {
        workspace_id: &ws.id,
        workspace_name: &ws.name,
        owner_name: &l.owner_name,
    };
    let mut agents = l.agents;
    let view = |a: &Agent| super::convert::agent(a, &place, now);
    let mut views = Vec::new();
    let mut daily_cost = 0;
    for r in l.resources {
        let mine = agents
            .iter()
            .filter(|a| a.host_address.as_deref() == Some(r.address.as_str()))
            .map(view)
            .collect::<anyhow::Result<Vec<AgentView>>>()?;
        agents.retain(|a| a.host_address.as_deref() != Some(r.address.as_str()));
        daily_cost += r.daily_cost;
        views.push(super::convert::resource(r, mine)?);
    }
    // Agents left without a host are external ones, or (in a stopped workspace) agents
    // whose machine is gone: those are not shown as if they could still connect.
    let external_agents = agents
        .iter()
        .filter(|a| a.external || status == WorkspaceStatus::Running)
        .map(view)
        .collect::<anyhow::Result<Vec<AgentView>>>()?;
    let healthy = status == WorkspaceStatus::Running
        && views
            .iter()
            .flat_map(|r| r.agents.iter())
            .chain(external_agents.iter())
            .all(|a| a.healthy);
    let version_id = l.latest.build.build.template_version_id.clone();
    Ok(WorkspaceView {
        id: ws.id,
        name: ws.name,
        owner: l.owner_name,
        owner_id: ws.owner_id,
        template: l.template_name,
        template_icon: l.template_icon,
        template_id: ws.template_id,
        outdated: l
            .active_version_id
            .as_deref()
            .is_some_and(|a| a != version_id),
        template_version: l.latest.version_name.clone(),
        active_version: l.active_version_name,
        status,
        healthy,
        favorite: ws.favorite,
        external: l.has_external_agent,
        created_at: Timestamp(ws.created_at),
        last_used_at: ws.last_used_at.map(Timestamp),
        latest_build: build_view(l.latest)?,
        resources: views,
        external_agents,
        daily_cost,
    })
}

/// `GET /workspaces/{owner}/{name}/agent-instructions[?agent=NAME]`. Tokens are stored
/// hashed; the plain one is read back from the latest build's terraform state, which the
/// server keeps anyway (and which only this owner-checked route ever reveals).
pub async fn agent_instructions(
    State(state): State<AppState>,
    auth: Auth,
    Path((owner, name)): Path<(String, String)>,
    Query(q): Query<InstructionsQuery>,
) -> ApiResult<Json<AgentInstructions>> {
    let (ws, _) = find_workspace(&state, &auth, &owner, &name).await?;
    let latest = state
        .db
        .latest_build(&ws.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("workspace without builds"))?;
    if latest.workspace_status() != WorkspaceStatus::Running {
        return Err(ApiError::Conflict(format!(
            "workspace {:?} is {}: its agent has no valid token until a start build succeeds",
            ws.name,
            latest.workspace_status()
        )));
    }
    let agents: Vec<Agent> = state
        .db
        .list_agents(&latest.build.id)
        .await?
        .into_iter()
        .filter(|a| a.external)
        .collect();
    let agent = match &q.agent {
        Some(n) => agents.iter().find(|a| &a.name == n),
        None if agents.len() == 1 => agents.first(),
        None => None,
    }
    .ok_or_else(|| {
        let names: Vec<&str> = agents.iter().map(|a| a.name.as_str()).collect();
        ApiError::NotFound(format!("workspace {:?} has no external agent{}: its external agents are [{}]; name one as NAME.AGENT", ws.name, q.agent.as_ref().map(|a| format!(" {a:?}")).unwrap_or_default(), names.join(", ")))
    })?;
    let bytes = state
        .db
        .get_build_state(&latest.build.id)
        .await?
        .unwrap_or_default();
    let resources =
        crate::provisioner::classify::parse_state(&bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let manifest: serde_json::Value = serde_json::from_str(&agent.manifest).with_context(|| {
        format!(
            "the manifest of agent {} is not valid stored JSON",
            agent.id
        )
    })?;
    let agent_id = manifest["agent_id"].as_str().unwrap_or_default();
    let token = resources
        .iter()
        .filter(|r| r.type_.ends_with("_agent") && !r.type_.ends_with("external_agent"))
        .find(|r| r.attr_str("id").as_deref() == Some(agent_id))
        .and_then(|r| r.attr_str("token"))
        .ok_or_else(|| anyhow::anyhow!("the agent's token is not in the build's state"))?;
    let init_script =
        crate::provisioner::init_script::render(&state.config.access_url, &agent.os, &agent.arch)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let command = format!(
        "curl -fsSL \"{}/api/v2/init-script/{}/{}\" | HANGAR_AGENT_TOKEN=\"{token}\" sh",
        state.config.access_url.trim_end_matches('/'),
        agent.os,
        agent.arch
    );
    state
        .db
        .audit(
            Some(&auth.user.id),
            "read_agent_token",
            &format!("{}/{}", ws.name, agent.name),
            "",
        )
        .await?;
    Ok(Json(AgentInstructions {
        workspace_name: ws.name,
        agent_name: agent.name.clone(),
        auth_type: "token".into(),
        auth_token: token,
        init_script,
        command,
    }))
}
