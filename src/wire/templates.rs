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
}

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
