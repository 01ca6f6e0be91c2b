//! `/api/v2/workspaces/{owner}/{name}/builds…` and `/api/v2/workspacebuilds…`: the
//! start/stop/delete/update builds of a workspace (checked, then queued), their history,
//! update previews, restart (stop then start) and cancel. Members see only their own.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;

use super::auth::Auth;
use super::workspaces::{busy, find_workspace, page_bounds, parameter_errors, usable_version};
use super::{ApiError, ApiResult, AppState};
use crate::db::users::User;
use crate::db::workspaces::{BuildDetail, NewBuild, QueueError, Workspace};
use crate::model::parameter::resolve;
use crate::model::{Transition, WorkspaceStatus};
use crate::wire::workspaces::{BuildQuery, BuildRequest, BuildView, BuildsQuery};
use crate::wire::Timestamp;

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
    if transition == Transition::Start {
        super::external_auth::require_links(state, &version, &owner_user).await?;
    }
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
        prebuild_claim: false,
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
        .build_detail(&build.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("build vanished"))?;
    Ok(build_view(full)?)
}

/// `POST /workspaces/{owner}/{name}/update-preview`: queues a plan of an update to the
/// active version against the workspace's state (a dry run; nothing is applied).
pub async fn update_preview(
    State(state): State<AppState>,
    auth: Auth,
    Path((owner, name)): Path<(String, String)>,
    Json(req): Json<crate::wire::workspaces::UpdatePreviewRequest>,
) -> ApiResult<(StatusCode, Json<crate::wire::jobs::Job>)> {
    let job = queue_update_preview(&state, &auth, &owner, &name, req.parameters).await?;
    Ok((StatusCode::CREATED, Json(job)))
}

/// Queues an update preview (see `update_preview`); the web page's Update uses it too.
pub async fn queue_update_preview(
    state: &AppState,
    auth: &Auth,
    owner: &str,
    name: &str,
    parameters: BTreeMap<String, String>,
) -> ApiResult<crate::wire::jobs::Job> {
    let start = BuildRequest {
        transition: Some(Transition::Start),
        template_version: Some("active".into()),
        parameters,
        ..Default::default()
    };
    let checked = check_build(state, auth, owner, name, &start).await?;
    let base = state
        .db
        .latest_build(&checked.workspace.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("workspace without builds"))?;
    let input = crate::provisioner::jobs::DryRunInput {
        template_version_id: checked.template_version_id,
        user_id: auth.user.id.clone(),
        parameters: checked.values,
        workspace_id: Some(checked.workspace.id.clone()),
        base_build_id: Some(base.build.id),
    };
    super::templates::queue_dry_run(state, &input).await
}

/// How long a restart waits for its stop before giving up on the start.
const RESTART_WAIT: std::time::Duration = std::time::Duration::from_secs(2 * 3600);

/// The update preview job `job_id` of workspace `workspace_id` (its input names the
/// workspace: a job id alone opens nothing).
pub async fn preview_job(
    state: &AppState,
    workspace_id: &str,
    job_id: &str,
) -> ApiResult<crate::db::jobs::Job> {
    let missing = || ApiError::NotFound(format!("no update preview {job_id:?} for this workspace"));
    let job = state.db.get_job(job_id).await?.ok_or_else(missing)?;
    if job.kind != crate::model::JobKind::TemplateVersionDryRun {
        return Err(missing());
    }
    let input: Option<crate::provisioner::jobs::DryRunInput> =
        serde_json::from_str(&job.input).ok();
    match input {
        Some(i) if i.workspace_id.as_deref() == Some(workspace_id) => Ok(job),
        _ => Err(missing()),
    }
}

/// The version an update preview planned, if it still describes the update a start
/// would make now: its version is still the template's active one and the workspace's
/// latest build is still the one it planned from. Else a Conflict saying to look again.
pub async fn preview_still_current(
    state: &AppState,
    workspace: &Workspace,
    job: &crate::db::jobs::Job,
) -> ApiResult<String> {
    let input: crate::provisioner::jobs::DryRunInput =
        serde_json::from_str(&job.input).map_err(anyhow::Error::from)?;
    let stale = || {
        ApiError::Conflict(
            "this preview is out of date (a new version was promoted, or the workspace was rebuilt since): look at the update again".into(),
        )
    };
    let template = state
        .db
        .get_template(&workspace.template_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the workspace's template is gone"))?;
    if template.active_version_id.as_deref() != Some(input.template_version_id.as_str()) {
        return Err(stale());
    }
    let latest = state
        .db
        .latest_build(&workspace.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("workspace without builds"))?;
    if input.base_build_id.as_deref() != Some(latest.build.id.as_str()) {
        return Err(stale());
    }
    let version = state
        .db
        .get_template_version(&input.template_version_id)
        .await?
        .ok_or_else(stale)?;
    Ok(version.name)
}

/// A restart, or an update to `version` (by name), as the dashboard's buttons do them:
/// the start is checked first (a bad value must never leave the workspace stopped), then
/// a running workspace is stopped, and the start is queued once that stop succeeded.
/// Returns the first build queued.
pub async fn stop_then_start(
    state: &AppState,
    auth: &Auth,
    owner: &str,
    name: &str,
    version: Option<String>,
) -> ApiResult<BuildView> {
    let start = BuildRequest {
        transition: Some(Transition::Start),
        template_version: version,
        ..Default::default()
    };
    check_build(state, auth, owner, name, &start).await?;
    let (ws, _) = find_workspace(state, auth, owner, name).await?;
    let latest = state
        .db
        .latest_build(&ws.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("workspace without builds"))?;
    if latest.workspace_status() != WorkspaceStatus::Running {
        return queue_build(state, auth, owner, name, start).await;
    }
    let stop = BuildRequest {
        transition: Some(Transition::Stop),
        ..Default::default()
    };
    let stopping = queue_build(state, auth, owner, name, stop).await?;
    let (state, auth) = (state.clone(), auth.clone());
    let (owner, name, job_id) = (owner.to_string(), name.to_string(), stopping.job.id.clone());
    let mut updates = state.job_updates.subscribe();
    let deadline = tokio::time::Instant::now() + RESTART_WAIT;
    tokio::spawn(async move {
        while tokio::time::Instant::now() < deadline {
            match state.db.get_job(&job_id).await {
                Ok(Some(job)) if job.status.is_final() => {
                    if job.status == crate::model::JobStatus::Succeeded {
                        // As the user stands now: a session revoked meanwhile starts nothing.
                        let started = match super::auth::recheck(&state, &auth).await {
                            Ok(auth) => queue_build(&state, &auth, &owner, &name, start)
                                .await
                                .map(|_| ()),
                            Err(e) => Err(e),
                        };
                        if let Err(e) = started {
                            tracing::warn!(workspace = %name, error = %e, "starting after the stop of a restart");
                            let _ = state
                                .db
                                .audit(
                                    Some(&auth.user.id),
                                    "workspace_restart_failed",
                                    &format!("{owner}/{name}"),
                                    &e.to_string(),
                                )
                                .await;
                        }
                    }
                    return;
                }
                Ok(Some(_)) => {}
                _ => return,
            }
            // Woken by any job's update (the backlog skipped); at worst a second later.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), updates.recv()).await;
            while updates.try_recv().is_ok() {}
        }
        tracing::warn!(workspace = %name, "gave up waiting for the stop of a restart");
    });
    Ok(stopping)
}

pub async fn builds(
    State(state): State<AppState>,
    auth: Auth,
    Path((owner, name)): Path<(String, String)>,
    Query(q): Query<BuildsQuery>,
) -> ApiResult<Json<Vec<BuildView>>> {
    let (ws, _) = find_workspace(&state, &auth, &owner, &name).await?;
    let (limit, offset) = page_bounds(q.limit, q.offset)?;
    Ok(Json(build_history(&state, &ws, limit, offset).await?))
}

/// A page of a workspace's builds, newest first, in one query.
pub async fn build_history(
    state: &AppState,
    ws: &Workspace,
    limit: i64,
    offset: i64,
) -> ApiResult<Vec<BuildView>> {
    let details = state.db.build_details(&ws.id, limit, offset).await?;
    Ok(details
        .into_iter()
        .map(build_view)
        .collect::<anyhow::Result<_>>()?)
}

/// The build, if the caller may see its workspace.
async fn visible_build(state: &AppState, auth: &Auth, id: &str) -> ApiResult<BuildDetail> {
    let not_found = || ApiError::NotFound(format!("no build {id:?}"));
    let b = state.db.build_detail(id).await?.ok_or_else(not_found)?;
    let ws = state
        .db
        .get_workspace(&b.build.build.workspace_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("build without workspace"))?;
    if !super::authz::may_see_workspace(&auth.user, &ws.owner_id) {
        return Err(not_found());
    }
    Ok(b)
}

pub async fn get_build(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<BuildView>> {
    let b = visible_build(&state, &auth, &id).await?;
    Ok(Json(build_view(b)?))
}

pub async fn cancel_build(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<BuildView>> {
    Ok(Json(cancel(&state, &auth, &id).await?))
}

/// Cancels the latest build of a workspace (the web page's Cancel button).
pub async fn cancel_latest(
    state: &AppState,
    auth: &Auth,
    owner: &str,
    name: &str,
) -> ApiResult<BuildView> {
    let (ws, _) = find_workspace(state, auth, owner, name).await?;
    let latest = state
        .db
        .latest_build(&ws.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("workspace without builds"))?;
    cancel(state, auth, &latest.build.id).await
}

/// Cancels a pending or running build the caller may see; a finished one is a conflict.
pub async fn cancel(state: &AppState, auth: &Auth, id: &str) -> ApiResult<BuildView> {
    let b = visible_build(state, auth, id).await?;
    if !state.db.cancel_job(&b.build.build.job_id).await? {
        return Err(ApiError::Conflict(format!(
            "build #{} already finished ({})",
            b.build.build.number, b.build.job_status
        )));
    }
    let _ = state.job_updates.send(b.build.build.job_id.clone());
    state
        .db
        .audit(Some(&auth.user.id), "cancel_build", &b.build.build.id, "")
        .await?;
    let b = visible_build(state, auth, id).await?;
    Ok(build_view(b)?)
}

pub fn build_view(d: BuildDetail) -> anyhow::Result<BuildView> {
    let workspace_status = d.build.workspace_status();
    let b = d.build.build;
    Ok(BuildView {
        parameters: b.parameters,
        template_version: d.version_name,
        id: b.id,
        number: b.number,
        transition: b.transition,
        status: d.job.status,
        workspace_status,
        template_version_id: b.template_version_id,
        initiator: d.initiator_name,
        orphan: b.orphan,
        created_at: Timestamp(b.created_at),
        job: super::convert::job(d.job)?,
    })
}
