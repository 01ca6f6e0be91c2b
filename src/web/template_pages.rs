//! Template pages: a template's versions and usage, Promote and Settings, and the file
//! editor that publishes a new version (template admins only).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::Form;
use serde::Deserialize;

use super::views::{self, render, EditPage, TemplatePage};
use super::{page, see_other, PageResult, Viewer, WebError};
use crate::api::templates;
use crate::api::{ApiError, AppState};

/// Template admins only (owners and template-admins), as the API's push and activate.
fn require_template_admin(viewer: &Viewer) -> Result<(), WebError> {
    if viewer.0.user.role.can_manage_templates() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "changing templates needs the template-admin or owner role; you are {}",
            viewer.0.user.role
        ))
        .into())
    }
}

pub(super) async fn template_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> PageResult {
    let t = templates::template_by_name(&state, &name).await?;
    let workspaces = state.db.count_template_workspaces(&t.id).await?;
    let mut versions = Vec::new();
    for v in state.db.list_template_versions(&t.id).await? {
        versions.push(templates::version_view(&state, &t, v).await?);
    }
    versions.reverse();
    let can_manage = viewer.0.user.role.can_manage_templates();
    let prebuilds = if can_manage {
        crate::api::prebuilds::views(&state, &t).await?
    } else {
        Vec::new()
    };
    let ctx = TemplatePage {
        template: templates::template_views(&state)
            .await?
            .into_iter()
            .find(|v| v.id == t.id)
            .ok_or_else(|| ApiError::NotFound(format!("no template {name:?}")))?,
        versions,
        workspaces,
        can_manage,
        prebuilds,
    };
    page("template.html", &ctx, &viewer)
}

#[derive(Deserialize)]
pub(super) struct PromoteForm {
    version: String,
}

pub(super) async fn promote(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Form(form): Form<PromoteForm>,
) -> PageResult {
    require_template_admin(&viewer)?;
    templates::activate_version(&state, &viewer.0, &name, &form.version).await?;
    Ok(see_other(&format!(
        "/templates/{}",
        views::urlencode(&name)
    )))
}

/// The template page's Settings form; refusals come back as the error page naming them.
pub(super) async fn template_settings(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Form(form): Form<crate::wire::templates::TemplateSettings>,
) -> PageResult {
    require_template_admin(&viewer)?;
    templates::edit_settings(&state, &viewer.0, &name, form).await?;
    Ok(see_other(&format!(
        "/templates/{}",
        views::urlencode(&name)
    )))
}

#[derive(Deserialize, Default)]
pub(super) struct FileQuery {
    #[serde(default)]
    file: String,
}

/// The text files of a template version's archive (`.tf`, `.tf.tera`), by path.
async fn version_files(
    state: &AppState,
    version_id: &str,
) -> Result<(Vec<u8>, Vec<(String, String)>), WebError> {
    let archive = state
        .db
        .get_template_archive(version_id)
        .await?
        .unwrap_or_default();
    let bytes = archive.clone();
    let files = tokio::task::spawn_blocking(move || crate::model::archive::read_files(&bytes))
        .await
        .map_err(anyhow::Error::from)?
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok((archive, files))
}

/// The active version of a template and its files, for the editor.
async fn active_files(
    state: &AppState,
    name: &str,
) -> Result<(String, Vec<u8>, Vec<(String, String)>), WebError> {
    let t = templates::template_by_name(state, name).await?;
    let id = t.active_version_id.clone().ok_or_else(|| {
        ApiError::Conflict(format!("template {name:?} has no active version to edit"))
    })?;
    let v = state
        .db
        .get_template_version(&id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the active version vanished"))?;
    let (archive, files) = version_files(state, &v.id).await?;
    Ok((v.name, archive, files))
}

pub(super) async fn edit_form(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(q): Query<FileQuery>,
) -> PageResult {
    require_template_admin(&viewer)?;
    let (version, _, files) = active_files(&state, &name).await?;
    let file = if q.file.is_empty() {
        files
            .iter()
            .map(|(p, _)| p.clone())
            .find(|p| p == "main.tf")
            .or_else(|| files.first().map(|(p, _)| p.clone()))
            .unwrap_or_else(|| "main.tf".into())
    } else {
        q.file.clone()
    };
    let content = files
        .iter()
        .find(|(p, _)| *p == file)
        .map(|(_, text)| text.clone())
        .unwrap_or_default();
    let ctx = EditPage {
        template: name,
        version,
        files: files.into_iter().map(|(p, _)| p).collect(),
        file,
        content,
        error: None,
        new_name: String::new(),
        message: String::new(),
    };
    page("edit.html", &ctx, &viewer)
}

#[derive(Deserialize)]
pub(super) struct EditForm {
    #[serde(default)]
    name: String,
    file: String,
    content: String,
    #[serde(default)]
    message: String,
}

/// A file path an editor may write: relative, plain components, a template's code.
fn editable_path(file: &str) -> Result<&str, ApiError> {
    let ok = !file.is_empty()
        && file.len() <= 256
        // Only what the editor can show: writing a file it did not load would blank it.
        && (file.ends_with(".tf") || file.ends_with(".tf.tera"))
        && file.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.chars().all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
        });
    if ok {
        Ok(file)
    } else {
        Err(ApiError::invalid(
            "file",
            format!("{file:?} is not a file the editor writes: a relative path of letters, digits, dots, dashes and underscores ending in .tf or .tf.tera (other files are kept as pushed)"),
        ))
    }
}

/// Writes `content` to `file` in the archive `base` (empty: a new template) and pushes
/// the result as a new version of `name`.
async fn publish(
    state: &AppState,
    viewer: &Viewer,
    name: &str,
    base: Vec<u8>,
    form: &EditForm,
) -> Result<(), ApiError> {
    let file = editable_path(form.file.trim())?.to_string();
    // Browsers send a text area's line breaks as CRLF; terraform and shells want LF.
    let content = form.content.replace("\r\n", "\n");
    let packed = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<u8>> {
        let dir = tempfile::tempdir()?;
        if !base.is_empty() {
            crate::model::archive::extract(&base, dir.path())?;
        }
        let path = dir.path().join(&file);
        // Writing through a link would edit the file it points to, not this one.
        if std::fs::symlink_metadata(&path).is_ok_and(|m| !m.is_file()) {
            anyhow::bail!(
                "{file} is not a plain file in this template; edit the file it points to"
            );
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, content)?;
        Ok(crate::model::archive::pack_dir(dir.path())?)
    })
    .await
    .map_err(anyhow::Error::from)??;
    // No variables: the new version keeps the active one's.
    let q = crate::wire::templates::PushQuery {
        name: None,
        message: form.message.clone(),
        activate: true,
        variables: None,
    };
    templates::push_version(state, &viewer.0, name, &q, packed.into()).await?;
    Ok(())
}

pub(super) async fn edit(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Form(form): Form<EditForm>,
) -> PageResult {
    require_template_admin(&viewer)?;
    let (version, archive, files) = active_files(&state, &name).await?;
    match publish(&state, &viewer, &name, archive, &form).await {
        Ok(()) => Ok(see_other(&format!(
            "/templates/{}",
            views::urlencode(&name)
        ))),
        Err(
            e @ (ApiError::Validation { .. } | ApiError::BadRequest(_) | ApiError::Conflict(_)),
        ) => {
            let files = files.into_iter().map(|(p, _)| p).collect();
            refill(&viewer, name, version, files, form, e)
        }
        Err(e) => Err(e.into()),
    }
}

/// A minimal template for the editor's new-template form.
const NEW_TEMPLATE: &str = r#"terraform {
  required_providers {
    hangar = { source = "hangar/hangar" }
  }
}

data "hangar_workspace" "me" {}

resource "hangar_agent" "main" {
  os   = "linux"
  arch = "amd64"
}

# Replace with your machine: a container, a VM... `count = start_count` makes it run
# only while the workspace is started.
resource "terraform_data" "machine" {
  count = data.hangar_workspace.me.start_count
  input = hangar_agent.main.id
}
"#;

pub(super) async fn new_template_form(viewer: Viewer) -> PageResult {
    require_template_admin(&viewer)?;
    let ctx = EditPage {
        template: String::new(),
        version: String::new(),
        files: Vec::new(),
        file: "main.tf".into(),
        content: NEW_TEMPLATE.into(),
        error: None,
        new_name: String::new(),
        message: String::new(),
    };
    page("edit.html", &ctx, &viewer)
}

pub(super) async fn new_template(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<EditForm>,
) -> PageResult {
    require_template_admin(&viewer)?;
    let name = form.name.trim().to_string();
    let exists = state.db.get_template_by_name(&name).await?.is_some();
    let result = if exists {
        Err(ApiError::invalid(
            "name",
            format!("a template named {name:?} exists: edit it from its page"),
        ))
    } else {
        publish(&state, &viewer, &name, Vec::new(), &form).await
    };
    match result {
        Ok(()) => Ok(see_other(&format!(
            "/templates/{}",
            views::urlencode(&name)
        ))),
        Err(
            e @ (ApiError::Validation { .. } | ApiError::BadRequest(_) | ApiError::Conflict(_)),
        ) => refill(&viewer, String::new(), String::new(), Vec::new(), form, e),
        Err(e) => Err(e.into()),
    }
}

/// The editor again with what was typed and why it was refused: nothing typed is lost.
fn refill(
    viewer: &Viewer,
    template: String,
    version: String,
    files: Vec<String>,
    form: EditForm,
    error: ApiError,
) -> PageResult {
    let ctx = EditPage {
        template,
        version,
        files,
        file: form.file,
        content: form.content,
        error: Some(error.to_string()),
        new_name: form.name,
        message: form.message,
    };
    let html = render("edit.html", &ctx, Some(&viewer.0.user.username))?;
    Ok((StatusCode::BAD_REQUEST, Html(html)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_editor_writes_only_plain_template_files() {
        for fine in ["main.tf", "modules/disk.tf", "x.tf.tera"] {
            assert!(editable_path(fine).is_ok(), "{fine}");
        }
        for bad in [
            "../x.tf",
            "/etc/x.tf",
            "a//b.tf",
            "run.sh",
            "a b.tf",
            "./x.tf",
            "",
        ] {
            assert!(editable_path(bad).is_err(), "{bad}");
        }
    }
}
