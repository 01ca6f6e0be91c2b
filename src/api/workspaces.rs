//! `/api/v2/workspaces…` and `/api/v2/workspacebuilds…`: create, show, list, and the
//! start/stop/delete builds. Members see only their own workspaces.

use std::collections::BTreeMap;

use anyhow::Context;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;

use super::auth::Auth;
use super::convert::AgentPlace;
use super::templates::{template_by_name, version_by_name};
use super::{ApiError, ApiResult, AppState, FieldError};
use crate::db::agents::Agent;
use crate::db::templates::{Template, TemplateVersion};
use crate::db::users::User;
use crate::db::workspaces::{BuildWithJob, NewBuild, QueueError, Workspace};
use crate::model::parameter::resolve;
use crate::model::{new_id, now_ms, Name, Transition, WorkspaceStatus};
use crate::wire::agents::AgentView;
use crate::wire::workspaces::{
    AgentInstructions, BuildQuery, BuildRequest, BuildView, CreateWorkspaceRequest,
    FavoriteRequest, InstructionsQuery, ListQuery, WorkspaceView,
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
    let mut ws = state
        .db
        .get_workspace_by_name(&owner_user.id, name)
        .await?
        .ok_or_else(not_found)?;
    ws.favorite = state.db.is_favorite(&auth.user.id, &ws.id).await?;
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
async fn usable_version(
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

fn busy(state_name: &str) -> ApiError {
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

fn name_taken(name: &Name) -> ApiError {
    ApiError::Taken {
        field: "name".into(),
        message: format!(
            "you already have a workspace named {name:?}: pick another name or delete it first"
        ),
    }
}

/// Creates a workspace of the caller's and queues its first start build (the API and the
/// web's create form both use it). Bad values come back as field-level validations.
pub async fn create_workspace(
    state: &AppState,
    auth: &Auth,
    req: &CreateWorkspaceRequest,
) -> ApiResult<WorkspaceView> {
    let name = Name::parse(&req.name).map_err(|e| ApiError::invalid("name", e.to_string()))?;
    let template = template_by_name(state, &req.template).await?;
    let version = usable_version(state, &template, req.template_version.as_deref()).await?;
    if req.require_external && !version.has_external_agent {
        return Err(ApiError::BadRequest(format!(
            "template {:?} (version {}) has no hangar_external_agent, so it cannot make an external workspace: use `hangar create` instead, or add a hangar_external_agent to the template",
            template.name, version.name
        )));
    }
    let values = resolve(&version.parameters, &req.parameters, None).map_err(parameter_errors)?;
    if state
        .db
        .get_workspace_by_name(&auth.user.id, name.as_str())
        .await?
        .is_some()
    {
        return Err(name_taken(&name));
    }
    let ws = Workspace {
        id: new_id(),
        name: name.to_string(),
        owner_id: auth.user.id.clone(),
        template_id: template.id.clone(),
        favorite: false,
        created_at: now_ms(),
        deleted: false,
    };
    let params_json = serde_json::to_string(&values).map_err(anyhow::Error::from)?;
    let first = NewBuild {
        workspace_id: &ws.id,
        transition: Transition::Start,
        template_version_id: &version.id,
        initiator_id: &auth.user.id,
        parameters: &params_json,
        orphan: false,
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
            &ws.name,
            &template.name,
        )
        .await?;
    workspace_view(state, ws, &auth.user).await
}

pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<WorkspaceView>>> {
    Ok(Json(list_views(&state, &auth, &q).await?))
}

/// The caller's workspaces (everyone's with `all`, for roles that see them), favorites first.
pub async fn list_views(
    state: &AppState,
    auth: &Auth,
    q: &ListQuery,
) -> ApiResult<Vec<WorkspaceView>> {
    let owner = if q.all && auth.user.role.sees_all_workspaces() {
        None
    } else {
        Some(auth.user.id.as_str())
    };
    let mut out = Vec::new();
    for ws in state.db.list_workspaces(owner, &auth.user.id).await? {
        let owner_user = state
            .db
            .get_user(&ws.owner_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("workspace without owner"))?;
        let view = workspace_view(state, ws, &owner_user).await?;
        if matches_search(&view, &q.search) {
            out.push(view);
        }
    }
    Ok(out)
}

/// `name`, `owner:alice`, `template:local`, `status:running`, combined with spaces.
fn matches_search(view: &WorkspaceView, search: &str) -> bool {
    search
        .split_whitespace()
        .all(|term| match term.split_once(':') {
            Some(("owner", v)) => view.owner == v,
            Some(("template", v)) => view.template == v,
            Some(("status", v)) => view.status.as_str() == v,
            Some(("name", v)) => view.name.contains(v),
            _ => view.name.contains(term),
        })
}

pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path((owner, name)): Path<(String, String)>,
) -> ApiResult<Json<WorkspaceView>> {
    let (ws, owner_user) = find_workspace(&state, &auth, &owner, &name).await?;
    Ok(Json(workspace_view(&state, ws, &owner_user).await?))
}

pub async fn build(
    State(state): State<AppState>,
    auth: Auth,
    Path((owner, name)): Path<(String, String)>,
    Query(q): Query<BuildQuery>,
    Json(req): Json<BuildRequest>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    if q.validate_only {
        check_build(&state, &auth, &owner, &name, &req).await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let build = queue_build(&state, &auth, &owner, &name, req).await?;
    Ok((StatusCode::CREATED, Json(build)).into_response())
}

/// A build request that passed every check, ready to queue.
pub struct CheckedBuild {
    pub workspace: Workspace,
    pub owner: User,
    pub transition: Transition,
    pub template_version_id: String,
    pub values: BTreeMap<String, String>,
    pub orphan: bool,
}

/// Everything `queue_build` checks before it queues: the workspace is visible and idle,
/// the version usable, the parameter values valid for it.
pub async fn check_build(
    state: &AppState,
    auth: &Auth,
    owner: &str,
    name: &str,
    req: &BuildRequest,
) -> ApiResult<CheckedBuild> {
    let (ws, owner_user) = find_workspace(state, auth, owner, name).await?;
    let transition = req.transition.unwrap_or(Transition::Start);
    let latest = state
        .db
        .latest_build(&ws.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("workspace without builds"))?;
    if latest.workspace_status().is_busy() {
        return Err(busy(&ws.name));
    }
    let template = state
        .db
        .get_template(&ws.template_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("workspace template missing"))?;
    let current = state
        .db
        .get_template_version(&latest.build.template_version_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("build version missing"))?;
    if current.has_external_agent && transition != Transition::Delete && !req.orphan {
        return Err(ApiError::BadRequest(format!(
            "{} is an external workspace: Hangar does not run its machine, so it cannot {transition} it. Start or stop the agent on your machine instead (`hangar external-workspaces agent-instructions {}`)",
            ws.name, ws.name
        )));
    }
    let version = match req.template_version.as_deref() {
        None => current.clone(),
        Some(v) => usable_version(state, &template, Some(v)).await?,
    };
    let previous = &latest.build.parameters;
    let values = if transition == Transition::Start || !req.parameters.is_empty() {
        resolve(&version.parameters, &req.parameters, Some(previous)).map_err(parameter_errors)?
    } else {
        // Stop and delete keep the values: a template changed since must not block them.
        previous.clone()
    };
    Ok(CheckedBuild {
        workspace: ws,
        owner: owner_user,
        transition,
        template_version_id: version.id,
        values,
        orphan: req.orphan && transition == Transition::Delete,
    })
}

/// Queues a start/stop/delete build of a workspace the caller may see (the API and the
/// web page's buttons both use it).
pub async fn queue_build(
    state: &AppState,
    auth: &Auth,
    owner: &str,
    name: &str,
    req: BuildRequest,
) -> ApiResult<BuildView> {
    let CheckedBuild {
        workspace: ws,
        owner: owner_user,
        transition,
        template_version_id,
        values,
        orphan,
    } = check_build(state, auth, owner, name, &req).await?;
    let params_json = serde_json::to_string(&values).map_err(anyhow::Error::from)?;
    let new = NewBuild {
        workspace_id: &ws.id,
        transition,
        template_version_id: &template_version_id,
        initiator_id: &auth.user.id,
        parameters: &params_json,
        orphan,
    };
    let build = match state.db.queue_build(&new).await {
        Ok(b) => b,
        Err(QueueError::Busy) => return Err(busy(&ws.name)),
        Err(QueueError::Db(e)) => return Err(e.into()),
    };
    state.jobs_available.notify_waiters();
    state
        .db
        .audit(
            Some(&auth.user.id),
            &format!("workspace_{transition}"),
            &format!("{}/{}", owner_user.username, ws.name),
            "",
        )
        .await?;
    let full = state
        .db
        .get_build(&build.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("build vanished"))?;
    build_view(state, full).await
}

pub async fn builds(
    State(state): State<AppState>,
    auth: Auth,
    Path((owner, name)): Path<(String, String)>,
) -> ApiResult<Json<Vec<BuildView>>> {
    let (ws, _) = find_workspace(&state, &auth, &owner, &name).await?;
    Ok(Json(build_history(&state, &ws).await?))
}

/// Every build of a workspace, newest first.
pub async fn build_history(state: &AppState, ws: &Workspace) -> ApiResult<Vec<BuildView>> {
    let mut out = Vec::new();
    for b in state.db.list_builds(&ws.id).await? {
        out.push(build_view(state, b).await?);
    }
    Ok(out)
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

/// The build and the workspace it belongs to, if the caller may see it.
async fn visible_build(state: &AppState, auth: &Auth, id: &str) -> ApiResult<BuildWithJob> {
    let b = state
        .db
        .get_build(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no build {id:?}")))?;
    let ws = state
        .db
        .get_workspace(&b.build.workspace_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("build without workspace"))?;
    if !super::authz::may_see_workspace(&auth.user, &ws.owner_id) {
        return Err(ApiError::NotFound(format!("no build {id:?}")));
    }
    Ok(b)
}

pub async fn get_build(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<BuildView>> {
    let b = visible_build(&state, &auth, &id).await?;
    Ok(Json(build_view(&state, b).await?))
}

pub async fn cancel_build(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<BuildView>> {
    let b = visible_build(&state, &auth, &id).await?;
    if !state.db.cancel_job(&b.build.job_id).await? {
        return Err(ApiError::Conflict(format!(
            "build #{} already finished ({})",
            b.build.number, b.job_status
        )));
    }
    let _ = state.job_updates.send(b.build.job_id.clone());
    state
        .db
        .audit(Some(&auth.user.id), "cancel_build", &b.build.id, "")
        .await?;
    let b = visible_build(&state, &auth, &id).await?;
    Ok(Json(build_view(&state, b).await?))
}

pub async fn build_view(state: &AppState, b: BuildWithJob) -> ApiResult<BuildView> {
    let job = state
        .db
        .get_job(&b.build.job_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("build without job"))?;
    let version = state
        .db
        .get_template_version(&b.build.template_version_id)
        .await?;
    let initiator = state
        .db
        .get_user(&b.build.initiator_id)
        .await?
        .map(|u| u.username)
        .unwrap_or_default();
    let workspace_status = b.workspace_status();
    let b = b.build;
    Ok(BuildView {
        parameters: b.parameters,
        template_version: version.map(|v| v.name).unwrap_or_default(),
        id: b.id,
        number: b.number,
        transition: b.transition,
        status: job.status,
        workspace_status,
        template_version_id: b.template_version_id,
        initiator,
        orphan: b.orphan,
        created_at: Timestamp(b.created_at),
        job: super::convert::job(job)?,
    })
}

pub async fn workspace_view(
    state: &AppState,
    ws: Workspace,
    owner: &User,
) -> ApiResult<WorkspaceView> {
    let latest = state
        .db
        .latest_build(&ws.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("workspace without builds"))?;
    let template = state
        .db
        .get_template(&ws.template_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("workspace template missing"))?;
    let version = state
        .db
        .get_template_version(&latest.build.template_version_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("build version missing"))?;
    let active_version = match &template.active_version_id {
        Some(id) => state.db.get_template_version(id).await?.map(|v| v.name),
        None => None,
    };
    let status = latest.workspace_status();
    let resources = state.db.list_resources(&latest.build.id).await?;
    let mut agents = state.db.list_agents(&latest.build.id).await?;
    let place = AgentPlace {
        workspace_id: &ws.id,
        workspace_name: &ws.name,
        owner_name: &owner.username,
    };
    let now = now_ms();
    let view = |a: &Agent| super::convert::agent(a, &place, now);
    let mut views = Vec::new();
    let mut daily_cost = 0;
    for r in resources {
        let mine = agents
            .iter()
            .filter(|a| a.host_address.as_deref() == Some(r.address.as_str()))
            .map(view)
            .collect::<anyhow::Result<Vec<AgentView>>>()?;
        agents.retain(|a| a.host_address.as_deref() != Some(r.address.as_str()));
        daily_cost += r.daily_cost;
        views.push(super::convert::resource(r, mine)?);
    }
    let external_agents = agents
        .iter()
        .map(view)
        .collect::<anyhow::Result<Vec<AgentView>>>()?;
    let all_agents: Vec<&AgentView> = views
        .iter()
        .flat_map(|r| r.agents.iter())
        .chain(external_agents.iter())
        .collect();
    let healthy = status == WorkspaceStatus::Running && all_agents.iter().all(|a| a.healthy);
    Ok(WorkspaceView {
        id: ws.id,
        name: ws.name,
        owner: owner.username.clone(),
        owner_id: owner.id.clone(),
        template: template.name,
        template_id: template.id,
        outdated: template
            .active_version_id
            .as_deref()
            .is_some_and(|a| a != version.id),
        template_version: version.name,
        active_version,
        status,
        healthy,
        favorite: ws.favorite,
        external: version.has_external_agent,
        created_at: Timestamp(ws.created_at),
        latest_build: build_view(state, latest).await?,
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
