//! `/api/v2/templates…`: push versions, list, pull, activate, delete.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use super::auth::Auth;
use super::{ApiError, ApiResult, AppState, FieldError};
use crate::db::templates::{Template, TemplateVersion};
use crate::model::{archive, new_id, now_ms, JobKind, Name};
use crate::provisioner::jobs::ImportInput;
use crate::wire::templates::{
    ActivateRequest, DryRunRequest, PushQuery, TemplateView, VersionView,
};
use crate::wire::Timestamp;

/// Uploads larger than this are refused before reading the archive; the archive's own
/// check (50 MiB unpacked) is the real limit.
pub const MAX_UPLOAD_BYTES: usize = 60 * 1024 * 1024;

pub async fn template_by_name(state: &AppState, name: &str) -> ApiResult<Template> {
    state.db.get_template_by_name(name).await?.ok_or_else(|| {
        ApiError::NotFound(format!(
            "no template named {name:?}: see `hangar templates list`"
        ))
    })
}

pub async fn version_by_name(
    state: &AppState,
    template: &Template,
    version: &str,
) -> ApiResult<TemplateVersion> {
    state
        .db
        .get_template_version_by_name(&template.id, version)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "template {:?} has no version {version:?}: see `hangar templates versions list {}`",
                template.name, template.name
            ))
        })
}

/// Refuses a version whose import has not succeeded, saying why and what to do.
pub async fn require_imported(state: &AppState, v: &TemplateVersion, what: &str) -> ApiResult<()> {
    let Some(job) = (match &v.job_id {
        Some(id) => state.db.get_job(id).await?,
        None => None,
    }) else {
        return Ok(());
    };
    let why = match job.status {
        crate::model::JobStatus::Succeeded => return Ok(()),
        crate::model::JobStatus::Failed => format!(
            "its import failed: {}; fix the template and push a new version",
            job.error.unwrap_or_default()
        ),
        crate::model::JobStatus::Canceled => "its import was canceled; push it again".to_string(),
        running => format!("its import is still {running}; wait for it"),
    };
    Err(ApiError::Conflict(format!(
        "version {:?} cannot be {what}: {why}",
        v.name
    )))
}

pub async fn version_view(
    state: &AppState,
    template: &Template,
    v: TemplateVersion,
) -> ApiResult<VersionView> {
    let job = match &v.job_id {
        Some(id) => state
            .db
            .get_job(id)
            .await?
            .map(super::convert::job)
            .transpose()?,
        None => None,
    };
    Ok(VersionView {
        active: template.active_version_id.as_deref() == Some(v.id.as_str()),
        template_name: template.name.clone(),
        resources: v
            .resources
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()
            .map_err(anyhow::Error::from)?,
        parameters: v.parameters,
        presets: v.facts.presets,
        tags: v.facts.tags,
        external_auth: v.facts.external_auth,
        variables: v.variables.into_keys().collect(),
        id: v.id,
        template_id: v.template_id,
        name: v.name,
        message: v.message,
        created_at: Timestamp(v.created_at),
        has_external_agent: v.has_external_agent,
        job,
    })
}

async fn template_view(state: &AppState, t: Template) -> ApiResult<TemplateView> {
    let active_version = match &t.active_version_id {
        Some(id) => state.db.get_template_version(id).await?.map(|v| v.name),
        None => None,
    };
    Ok(TemplateView {
        id: t.id,
        name: t.name,
        display_name: t.display_name,
        icon: t.icon,
        description: t.description,
        active_version,
        active_version_id: t.active_version_id,
        created_at: Timestamp(t.created_at),
        updated_at: Timestamp(t.updated_at),
    })
}

pub async fn list(
    State(state): State<AppState>,
    _auth: Auth,
) -> ApiResult<Json<Vec<TemplateView>>> {
    Ok(Json(template_views(&state).await?))
}

pub async fn template_views(state: &AppState) -> ApiResult<Vec<TemplateView>> {
    let mut out = Vec::new();
    for t in state.db.list_templates().await? {
        out.push(template_view(state, t).await?);
    }
    Ok(out)
}

pub async fn get(
    State(state): State<AppState>,
    _auth: Auth,
    Path(name): Path<String>,
) -> ApiResult<Json<TemplateView>> {
    let t = template_by_name(&state, &name).await?;
    Ok(Json(template_view(&state, t).await?))
}

/// The push's Terraform variables: a JSON object of strings, each name an HCL identifier,
/// 64 KiB in all at most.
fn parse_variables(raw: Option<&str>) -> ApiResult<std::collections::BTreeMap<String, String>> {
    const MAX_BYTES: usize = 64 * 1024;
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(Default::default());
    };
    if raw.len() > MAX_BYTES {
        return Err(ApiError::invalid(
            "variables",
            format!("the variables are {} bytes; at most {MAX_BYTES}", raw.len()),
        ));
    }
    let vars: std::collections::BTreeMap<String, String> =
        serde_json::from_str(raw).map_err(|e| {
            ApiError::invalid("variables", format!("not a JSON object of strings: {e}"))
        })?;
    for (name, value) in &vars {
        let ident = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ident {
            return Err(ApiError::invalid(
                "variables",
                format!("{name:?} is not a Terraform variable name"),
            ));
        }
        if value.contains('\0') {
            return Err(ApiError::invalid(
                "variables",
                format!("{name}: the value contains a NUL byte"),
            ));
        }
    }
    Ok(vars)
}

/// Uploads a new version (creating the template on first push) and queues its import.
pub async fn push(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
    Query(mut q): Query<PushQuery>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<VersionView>)> {
    if let Some(v) = headers.get(crate::wire::templates::VARIABLES_HEADER) {
        let text = v.to_str().map_err(|_| {
            ApiError::invalid("variables", "the variables header is not UTF-8 JSON")
        })?;
        q.variables = Some(text.to_string());
    }
    let view = push_version(&state, &auth, &name, &q, body).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// A new version of template `name` from an archive (the API's push and the web editor).
/// The caller checked that `auth` may manage templates.
pub async fn push_version(
    state: &AppState,
    auth: &Auth,
    name: &str,
    q: &PushQuery,
    body: Bytes,
) -> ApiResult<VersionView> {
    let template_name =
        Name::parse(name).map_err(|e| ApiError::invalid("template name", e.to_string()))?;
    if body.len() > MAX_UPLOAD_BYTES {
        return Err(ApiError::PayloadTooLarge(format!(
            "the upload is {} bytes; templates are limited to 50 MiB: remove build outputs, .terraform/ dirs and state files",
            body.len()
        )));
    }
    let version_name = match &q.name {
        Some(v) => {
            Some(Name::parse(v).map_err(|e| ApiError::invalid("version name", e.to_string()))?)
        }
        None => None,
    };
    let bad_archive = |e: archive::ArchiveError| match e {
        archive::ArchiveError::TooLarge { .. } | archive::ArchiveError::StreamTooLarge { .. } => {
            ApiError::PayloadTooLarge(e.to_string())
        }
        other => ApiError::BadRequest(other.to_string()),
    };
    // Checks every entry and reads the .tf files: CPU-bound work for the blocking pool,
    // not the threads that serve requests.
    let files = {
        let body = body.clone();
        tokio::task::spawn_blocking(move || archive::read_files(&body))
            .await
            .map_err(anyhow::Error::from)?
            .map_err(bad_archive)?
    };
    let mut variables = parse_variables(q.variables.as_deref())?;
    // Without variables, a new version keeps the active one's (as Coder's push does).
    if q.variables.is_none() {
        if let Some(t) = state
            .db
            .get_template_by_name(template_name.as_str())
            .await?
        {
            if let Some(active) = &t.active_version_id {
                if let Some(v) = state.db.get_template_version(active).await? {
                    variables = v.variables;
                }
            }
        }
    }
    let parameters = crate::isolate::parse_parameters(&state.config.hangar_binary, &files)
        .await
        .map_err(|e| match e {
            crate::isolate::ParseError::Spawn(_) => ApiError::Internal(e.into()),
            e => ApiError::BadRequest(format!("the template's HCL does not parse: {e}")),
        })?;

    let now = now_ms();
    let template = match state
        .db
        .get_template_by_name(template_name.as_str())
        .await?
    {
        Some(t) => t,
        None => {
            let t = Template {
                id: new_id(),
                name: template_name.to_string(),
                description: String::new(),
                active_version_id: None,
                created_by: auth.user.id.clone(),
                created_at: now,
                updated_at: now,
                display_name: String::new(),
                icon: String::new(),
            };
            match state.db.insert_template(&t).await {
                Ok(()) => t,
                // Another push created it a moment ago: use theirs.
                Err(e) if crate::db::is_unique_violation(&e) => {
                    template_by_name(state, template_name.as_str()).await?
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    // The version and its import job are written together, so no import starts before its
    // version exists. A generated name (or the push order number) taken by a concurrent
    // push is a UNIQUE violation: look again and retry.
    let mut attempts = 0;
    let (version, name) = loop {
        let name = match &version_name {
            Some(n) => n.to_string(),
            None => next_version_name(
                state
                    .db
                    .list_template_versions(&template.id)
                    .await?
                    .iter()
                    .map(|v| v.name.as_str()),
            ),
        };
        let version_id = new_id();
        let job_id = new_id();
        let input = serde_json::to_string(&ImportInput {
            template_version_id: version_id.clone(),
            activate: q.activate,
        })
        .map_err(anyhow::Error::from)?;
        let version = TemplateVersion {
            id: version_id,
            template_id: template.id.clone(),
            name: name.clone(),
            message: q.message.clone(),
            created_by: auth.user.id.clone(),
            created_at: now,
            job_id: Some(job_id.clone()),
            parameters: parameters.clone(),
            resources: Vec::new(),
            graph: None,
            has_external_agent: false,
            facts: Default::default(),
            variables: variables.clone(),
        };
        let mut tx = state.db.pool().begin().await?;
        // The job first: the version references it.
        state
            .db
            .insert_job(&mut *tx, &job_id, JobKind::TemplateVersionImport, &input)
            .await?;
        match state
            .db
            .insert_template_version(&mut *tx, &version, &body)
            .await
        {
            Ok(()) => {
                tx.commit().await?;
                break (version, name);
            }
            Err(e) if crate::db::is_unique_violation(&e) => {
                drop(tx);
                attempts += 1;
                let taken = version_name.is_some()
                    && state
                        .db
                        .get_template_version_by_name(&template.id, &name)
                        .await?
                        .is_some();
                if taken || attempts >= 20 {
                    return Err(ApiError::Conflict(format!(
                        "template {:?} already has a version named {name:?}: pick another with --name",
                        template.name
                    )));
                }
            }
            Err(e) => return Err(e.into()),
        }
    };
    state.jobs_available.notify_waiters();
    state
        .db
        .audit(
            Some(&auth.user.id),
            "push_template_version",
            &format!("{}@{name}", template.name),
            &q.message,
        )
        .await?;
    version_view(state, &template, version).await
}

/// `v1`, `v2`, … after the highest numbered version so far.
fn next_version_name<'a>(existing: impl Iterator<Item = &'a str>) -> String {
    let highest = existing
        .filter_map(|n| n.strip_prefix('v')?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    format!("v{}", highest + 1)
}

pub async fn versions(
    State(state): State<AppState>,
    _auth: Auth,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<VersionView>>> {
    let template = template_by_name(&state, &name).await?;
    let mut out = Vec::new();
    for v in state.db.list_template_versions(&template.id).await? {
        out.push(version_view(&state, &template, v).await?);
    }
    Ok(Json(out))
}

pub async fn version(
    State(state): State<AppState>,
    _auth: Auth,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<VersionView>> {
    let template = template_by_name(&state, &name).await?;
    let v = version_by_name(&state, &template, &version).await?;
    Ok(Json(version_view(&state, &template, v).await?))
}

pub async fn archive(
    State(state): State<AppState>,
    _auth: Auth,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let template = template_by_name(&state, &name).await?;
    let v = version_by_name(&state, &template, &version).await?;
    let bytes = state
        .db
        .get_template_archive(&v.id)
        .await?
        .unwrap_or_default();
    Ok(([(header::CONTENT_TYPE, "application/x-tar")], bytes))
}

/// `PATCH /templates/{name}`: display name, description and icon.
pub async fn edit(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
    Json(req): Json<crate::wire::templates::TemplateSettings>,
) -> ApiResult<Json<TemplateView>> {
    Ok(Json(edit_settings(&state, &auth, &name, req).await?))
}

/// Sets a template's display name, description and icon (the API and the template
/// page), each checked: bounded, no control characters, an icon that cannot run script.
pub async fn edit_settings(
    state: &AppState,
    auth: &Auth,
    name: &str,
    req: crate::wire::templates::TemplateSettings,
) -> ApiResult<TemplateView> {
    let t = template_by_name(state, name).await?;
    let display_name = req
        .display_name
        .unwrap_or(t.display_name)
        .trim()
        .to_string();
    let description = req.description.unwrap_or(t.description).trim().to_string();
    let icon = req.icon.unwrap_or(t.icon).trim().to_string();
    let mut problems = Vec::new();
    for (field, value, max) in [
        ("display_name", &display_name, 64),
        ("description", &description, 2048),
        ("icon", &icon, 512),
    ] {
        if value.chars().count() > max {
            problems.push(FieldError {
                field: field.into(),
                detail: format!("{field} is longer than {max} characters"),
            });
        }
        if value.chars().any(|c| c.is_control() && c != '\n') {
            problems.push(FieldError {
                field: field.into(),
                detail: format!("{field} contains control characters"),
            });
        }
    }
    let icon_ok = icon.is_empty()
        || (icon.starts_with('/') && !icon.starts_with("//"))
        || icon.starts_with("https://")
        || icon.starts_with("http://");
    if !icon_ok {
        problems.push(FieldError {
            field: "icon".into(),
            detail: "icon must be a path on this server (/icon/docker.svg) or an http(s) URL"
                .into(),
        });
    }
    if !problems.is_empty() {
        let message = problems
            .iter()
            .map(|p| p.detail.clone())
            .collect::<Vec<_>>()
            .join("; ");
        return Err(ApiError::Validation {
            message,
            validations: problems,
        });
    }
    state
        .db
        .update_template_settings(&t.id, &display_name, &description, &icon)
        .await?;
    state
        .db
        .audit(Some(&auth.user.id), "edit_template", &t.name, "")
        .await?;
    let t = template_by_name(state, name).await?;
    template_view(state, t).await
}

pub async fn activate(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
    Json(req): Json<ActivateRequest>,
) -> ApiResult<Json<TemplateView>> {
    Ok(Json(
        activate_version(&state, &auth, &name, &req.version).await?,
    ))
}

/// Makes an imported version the active one (the API and the template page's Promote).
pub async fn activate_version(
    state: &AppState,
    auth: &Auth,
    name: &str,
    version: &str,
) -> ApiResult<TemplateView> {
    let template = template_by_name(state, name).await?;
    let v = version_by_name(state, &template, version).await?;
    require_imported(state, &v, "activated").await?;
    state
        .db
        .set_active_version(state.db.pool(), &template.id, &v.id)
        .await?;
    state
        .db
        .audit(
            Some(&auth.user.id),
            "activate_template_version",
            &format!("{}@{}", template.name, v.name),
            "",
        )
        .await?;
    let t = template_by_name(state, name).await?;
    template_view(state, t).await
}

pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let template = template_by_name(&state, &name).await?;
    let in_use = state.db.delete_template_if_unused(&template.id).await?;
    if in_use > 0 {
        return Err(ApiError::Conflict(format!(
            "template {name:?} is used by {in_use} workspace(s): delete them first (`hangar list -a --search template:{name}`)"
        )));
    }
    state
        .db
        .audit(Some(&auth.user.id), "delete_template", &name, "")
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /templates/{name}/versions/{version}/dry-run`: queues a plan of what a create
/// with these parameters would make; the job's `result` holds the resources.
pub async fn dry_run(
    State(state): State<AppState>,
    auth: Auth,
    Path((name, version)): Path<(String, String)>,
    Json(req): Json<DryRunRequest>,
) -> ApiResult<(StatusCode, Json<crate::wire::jobs::Job>)> {
    let template = template_by_name(&state, &name).await?;
    let v = version_by_name(&state, &template, &version).await?;
    require_imported(&state, &v, "planned").await?;
    let values = crate::model::parameter::resolve(&v.parameters, &req.parameters, None)
        .map_err(super::workspaces::parameter_errors)?;
    let input = crate::provisioner::jobs::DryRunInput {
        template_version_id: v.id.clone(),
        user_id: auth.user.id.clone(),
        parameters: values,
        workspace_id: None,
        base_build_id: None,
    };
    Ok((
        StatusCode::CREATED,
        Json(queue_dry_run(&state, &input).await?),
    ))
}

/// Queues a dry run (a create's plan, or a workspace's update preview) and wakes a
/// provisioner for it.
pub async fn queue_dry_run(
    state: &AppState,
    input: &crate::provisioner::jobs::DryRunInput,
) -> ApiResult<crate::wire::jobs::Job> {
    let job_id = new_id();
    state
        .db
        .insert_job(
            state.db.pool(),
            &job_id,
            JobKind::TemplateVersionDryRun,
            &serde_json::to_string(input).map_err(anyhow::Error::from)?,
        )
        .await?;
    state.jobs_available.notify_waiters();
    let job = state
        .db
        .get_job(&job_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the dry run's job vanished"))?;
    Ok(super::convert::job(job)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_names_count_up() {
        assert_eq!(super::next_version_name([].into_iter()), "v1");
        assert_eq!(
            super::next_version_name(["v1", "v7", "custom"].into_iter()),
            "v8"
        );
    }
}
