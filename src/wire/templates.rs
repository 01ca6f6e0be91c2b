//! Templates and their versions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::jobs::Job;
use super::Timestamp;
use crate::model::parameter::Parameter;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TemplateView {
    pub id: String,
    pub name: String,
    /// Shown instead of `name` when not empty.
    #[serde(default)]
    pub display_name: String,
    /// A URL or `/icon/NAME` path; empty for the generic icon.
    #[serde(default)]
    pub icon: String,
    pub description: String,
    pub active_version: Option<String>,
    pub active_version_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VersionView {
    pub id: String,
    pub template_id: String,
    pub template_name: String,
    pub name: String,
    pub message: String,
    pub created_at: Timestamp,
    pub active: bool,
    pub parameters: Vec<Parameter>,
    /// What the import's plans found: each resource with its kind and lifetime.
    pub resources: Vec<serde_json::Value>,
    pub has_external_agent: bool,
    pub job: Option<Job>,
    /// Named parameter values users pick at create (`hangar_workspace_preset`).
    #[schema(value_type = Vec<Object>)]
    pub presets: Vec<crate::model::preset::Preset>,
    /// Workspace tags (`hangar_workspace_tags`): which provisioners may run builds.
    pub tags: std::collections::BTreeMap<String, String>,
    /// External auth providers builds read (`hangar_external_auth`).
    #[schema(value_type = Vec<Object>)]
    pub external_auth: Vec<crate::model::preset::ExternalAuthRequirement>,
    /// Names of the Terraform variables the push set (values may be secret).
    pub variables: Vec<String>,
}

/// The header a push's Terraform variables travel in (JSON object of strings).
pub const VARIABLES_HEADER: &str = "hangar-template-variables";

/// `POST /templates/{name}/versions?name=&message=&activate=` with a tar body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PushQuery {
    pub name: Option<String>,
    #[serde(default)]
    pub message: String,
    /// Make the version active once its import succeeds.
    #[serde(default = "yes")]
    pub activate: bool,
    /// Terraform variables for every build of the version, as a JSON object of strings
    /// (`hangar templates push --variable k=v --variables-file f.yaml`). They may be
    /// secrets, so they travel in the [`VARIABLES_HEADER`] header, never in the URL
    /// (which proxies log); absent, the template's active version's variables are kept.
    #[serde(skip)]
    #[param(ignore)]
    pub variables: Option<String>,
}

fn yes() -> bool {
    true
}

/// `PATCH /templates/{name}`: what people see of a template; absent fields stay.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct TemplateSettings {
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub icon: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ActivateRequest {
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, ToSchema)]
pub struct DryRunRequest {
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
}

/// `GET /templates/{name}/prebuilds`: one preset's prebuilt workspaces.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct PrebuildView {
    pub preset: String,
    /// How many the preset wants now (its schedule's count in a scheduled hour).
    pub desired: u32,
    pub ready: u32,
    pub building: u32,
    /// Failed prebuilds in a row; new ones wait until `next_attempt_at`.
    pub failures: i64,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<super::Timestamp>,
}
