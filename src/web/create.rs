//! The create form (`/templates/NAME/create`): a template's parameters by their
//! controls, its presets (choosing one reloads the form with its values read-only) and the
//! external accounts it uses; a post creates through the API's own function.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::Form;

use super::views::*;
use super::{page, see_other, workspace_href, PageResult, Viewer, WebError};
use crate::api::{templates, workspaces, ApiError, AppState, FieldError};
use crate::model::parameter::Parameter;
use crate::model::preset::Preset;
use crate::wire::workspaces::CreateWorkspaceRequest;

/// What a create form of a template's active version shows (nothing without one).
#[derive(Default)]
pub(super) struct ActiveForm {
    pub(super) params: Vec<Parameter>,
    presets: Vec<Preset>,
    needs: Vec<crate::model::preset::ExternalAuthRequirement>,
}

pub(super) async fn active_form(
    state: &AppState,
    active_version_id: Option<&str>,
) -> Result<ActiveForm, WebError> {
    Ok(match active_version_id {
        Some(id) => match state.db.get_template_version(id).await? {
            Some(v) => ActiveForm {
                params: v.parameters,
                presets: v.facts.presets,
                needs: v.facts.external_auth,
            },
            None => Default::default(),
        },
        None => Default::default(),
    })
}

/// The accounts a create needs, each with whether the viewer linked it.
async fn account_needs(
    state: &AppState,
    viewer: &Viewer,
    needs: &[crate::model::preset::ExternalAuthRequirement],
) -> Result<Vec<AccountNeed>, WebError> {
    let linked = crate::api::external_auth::views(state, &viewer.0.user).await?;
    Ok(needs
        .iter()
        .map(|n| {
            let known = linked.iter().find(|v| v.id == n.id);
            AccountNeed {
                id: n.id.clone(),
                display_name: known.map_or(n.id.clone(), |v| v.display_name.clone()),
                linked: known.is_some_and(|v| v.linked),
                optional: n.optional,
                available: known.is_some(),
                link_url: format!("/external-auth/{}", n.id),
            }
        })
        .collect())
}

/// The preset a form chose: the `preset` field when present (empty: none), else the
/// version's default.
fn chosen_preset<'a>(presets: &'a [Preset], fields: &'a [(String, String)]) -> Option<&'a str> {
    match fields.iter().rev().find(|(k, _)| k == "preset") {
        Some((_, v)) if v.is_empty() => None,
        Some((_, v)) => Some(v.as_str()),
        None => presets.iter().find(|p| p.default).map(|p| p.name.as_str()),
    }
}

/// The create form; choosing a preset reloads it (a GET with what was typed so far), so
/// the preset's values show in their fields.
pub(super) async fn create_form(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(template): Path<String>,
    Query(fields): Query<Vec<(String, String)>>,
) -> PageResult {
    let t = templates::template_by_name(&state, &template).await?;
    let ActiveForm {
        params,
        presets,
        needs,
    } = active_form(&state, t.active_version_id.as_deref()).await?;
    let preset = chosen_preset(&presets, &fields).map(str::to_string);
    let name = fields
        .iter()
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let entered = form_values(&params, &fields);
    let mut ctx = CreatePage::new(
        &t.name,
        params,
        (presets, preset.as_deref()),
        &name,
        &entered,
        Vec::new(),
    );
    ctx.accounts = account_needs(&state, &viewer, &needs).await?;
    page("create.html", &ctx, &viewer)
}

/// The parameter values a create form posted, by the control each parameter uses: a
/// multi-select's checked boxes and a tag-select's lines become a JSON list; for the
/// rest the last value wins (a checked box's `true` follows its hidden `false`), with
/// line breaks as LF.
fn form_values(
    params: &[Parameter],
    fields: &[(String, String)],
) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for p in params {
        let key = format!("{PARAM_PREFIX}{}", p.name);
        let values: Vec<&str> = fields
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
            .collect();
        let Some(last) = values.last() else { continue };
        let value = match p.control() {
            // The hidden empty value says the list was on the form, even with none checked.
            "multi-select" => json_list(values.iter().copied().filter(|v| !v.is_empty())),
            "tag-select" => json_list(last.lines().map(str::trim).filter(|l| !l.is_empty())),
            // Browsers send a text area's line breaks as CRLF; templates expect LF.
            _ => last.replace("\r\n", "\n"),
        };
        out.insert(p.name.clone(), value);
    }
    // Values for names the template lacks still reach the API, which names them.
    for (k, v) in fields {
        if let Some(name) = k.strip_prefix(PARAM_PREFIX) {
            out.entry(name.to_string()).or_insert_with(|| v.clone());
        }
    }
    out
}

fn json_list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    serde_json::to_string(&items.collect::<Vec<_>>()).unwrap_or_else(|_| "[]".into())
}

/// Creates through the API's own function; what it refuses comes back as the form again,
/// with what was typed and each message beside its field.
pub(super) async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(template): Path<String>,
    // Pairs, not a struct: the parameters' fields are named by the template.
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let t = templates::template_by_name(&state, &template).await?;
    let ActiveForm {
        params,
        presets,
        needs,
    } = active_form(&state, t.active_version_id.as_deref()).await?;
    let preset = chosen_preset(&presets, &fields).map(str::to_string);
    let mut req = CreateWorkspaceRequest {
        template: t.name.clone(),
        preset: preset.clone(),
        ..Default::default()
    };
    req.name = fields
        .iter()
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    req.parameters = form_values(&params, &fields);
    // The preset decides its parameters (their fields are read-only and not sent).
    if let Some(p) = presets.iter().find(|p| Some(&p.name) == preset.as_ref()) {
        req.parameters.retain(|k, _| !p.parameters.contains_key(k));
    }
    let entered = req.parameters.clone();
    // An empty box of a required parameter means "not given", so the API names it as
    // missing rather than judging an empty value.
    req.parameters
        .retain(|k, v| !v.is_empty() || !params.iter().any(|p| &p.name == k && p.required()));
    let errors = match workspaces::create_workspace(&state, &viewer.0, &req).await {
        Ok(ws) => return Ok(see_other(&workspace_href(&ws.owner, &ws.name))),
        Err(ApiError::Validation { validations, .. }) => validations,
        Err(ApiError::Taken { field, message }) => vec![FieldError {
            field,
            detail: message,
        }],
        Err(e) => return Err(e.into()),
    };
    let mut ctx = CreatePage::new(
        &t.name,
        params,
        (presets, preset.as_deref()),
        &req.name,
        &entered,
        errors,
    );
    ctx.accounts = account_needs(&state, &viewer, &needs).await?;
    let html = render("create.html", &ctx, Some(&viewer.0.user.username))?;
    // 400 for every refused form, a taken name too: what the user sent needs changing.
    Ok((StatusCode::BAD_REQUEST, Html(html)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_follow_each_control() {
        let params: Vec<Parameter> = serde_json::from_value(serde_json::json!([
            {"name": "gpu", "type": "bool"},
            {"name": "tags", "type": "list(string)"},
            {"name": "ides", "type": "list(string)", "form_type": "multi-select",
             "options": [{"name": "Vim", "value": "vim"}, {"name": "Emacs", "value": "emacs"}]},
            {"name": "none", "type": "list(string)", "form_type": "multi-select",
             "options": [{"name": "A", "value": "a"}]}
        ]))
        .unwrap();
        let fields: Vec<(String, String)> = [
            ("name", "dev"),
            ("param.gpu", "false"),
            ("param.gpu", "true"),
            ("param.tags", " x \r\n\ny"),
            ("param.ides", ""),
            ("param.ides", "vim"),
            ("param.ides", "emacs"),
            ("param.none", ""),
            ("param.extra", "1"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
        let values = form_values(&params, &fields);
        assert_eq!(values["gpu"], "true");
        assert_eq!(values["tags"], r#"["x","y"]"#);
        assert_eq!(values["ides"], r#"["vim","emacs"]"#);
        assert_eq!(values["none"], "[]");
        assert_eq!(
            values["extra"], "1",
            "unknown names reach the API, which names them"
        );
        assert!(!values.contains_key("name"));
    }
}
