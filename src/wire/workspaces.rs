//! Workspaces, their builds and resources.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::agents::AgentView;
use super::jobs::Job;
use super::Timestamp;
use crate::model::resource::{Kind, Lifetime};
use crate::model::{JobStatus, Transition, WorkspaceStatus};

#[derive(Debug, Clone, Serialize, Deserialize, Default, ToSchema)]
pub struct CreateWorkspaceRequest {
    pub name: String,
    pub template: String,
    #[serde(default)]
    pub template_version: Option<String>,
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// Refuse templates without an external agent (`external-workspaces create`).
    #[serde(default)]
    pub require_external: bool,
    /// Whose workspace it is (a username; the caller's when absent). Creating one for
    /// someone else needs the owner role, as in Coder.
    #[serde(default)]
    pub owner: Option<String>,
    /// A preset of the version (by name): its parameter values apply, and a value given
    /// for one of them must agree. `hangar create` picks the default preset when none
    /// is named.
    #[serde(default)]
    pub preset: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, ToSchema)]
pub struct BuildRequest {
    pub transition: Option<Transition>,
    /// Move to this template version ("active" for the template's active one).
    #[serde(default)]
    pub template_version: Option<String>,
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// Delete without destroying: forget the resources.
    #[serde(default)]
    pub orphan: bool,
}

/// `POST /workspaces/{owner}/{name}/update-preview`: new values for the update's start
/// (the rest are the workspace's current ones).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct UpdatePreviewRequest {
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
}

/// What an update preview job's `result` holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct UpdatePreview {
    pub changes: Vec<crate::model::resource::PlannedChange>,
    /// Some persistent resource would be replaced or destroyed.
    pub data_loss: bool,
}

/// `POST /workspaces/{owner}/{name}/builds?validate_only=true`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BuildQuery {
    /// Check the request as if to queue it (parameters, version, state) and queue
    /// nothing: 204 when it would be accepted. `restart` and `update` ask this before
    /// they stop a workspace, so a bad value never leaves it stopped.
    #[serde(default)]
    pub validate_only: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BuildView {
    pub id: String,
    pub number: i64,
    pub transition: Transition,
    pub status: JobStatus,
    pub workspace_status: WorkspaceStatus,
    pub template_version: String,
    pub template_version_id: String,
    pub initiator: String,
    pub parameters: BTreeMap<String, String>,
    pub orphan: bool,
    pub created_at: Timestamp,
    pub job: Job,
}

/// One `item` of a `hangar_metadata` on a resource.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ResourceMetadata {
    pub key: String,
    /// `***` for sensitive items; none for explicit nulls.
    pub value: Option<String>,
    pub sensitive: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResourceView {
    pub id: String,
    pub address: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub name: String,
    pub kind: Kind,
    pub lifetime: Lifetime,
    pub hide: bool,
    pub icon: String,
    pub daily_cost: i64,
    pub metadata: Vec<ResourceMetadata>,
    pub agents: Vec<AgentView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WorkspaceView {
    pub id: String,
    pub name: String,
    pub owner: String,
    pub owner_id: String,
    pub template: String,
    /// The template's icon (empty: the generic one).
    #[serde(default)]
    pub template_icon: String,
    pub template_id: String,
    pub template_version: String,
    pub active_version: Option<String>,
    pub outdated: bool,
    pub status: WorkspaceStatus,
    pub healthy: bool,
    /// Whether the caller marked it a favorite.
    pub favorite: bool,
    pub external: bool,
    pub created_at: Timestamp,
    /// When a session or an app request last used it (at most a minute behind).
    #[serde(default)]
    pub last_used_at: Option<Timestamp>,
    pub latest_build: BuildView,
    pub resources: Vec<ResourceView>,
    /// Agents without a host resource (external agents).
    pub external_agents: Vec<AgentView>,
    pub daily_cost: i64,
}

impl WorkspaceView {
    /// Every agent of the latest build, hosted ones first.
    pub fn agents(&self) -> impl Iterator<Item = &AgentView> {
        self.resources
            .iter()
            .flat_map(|r| r.agents.iter())
            .chain(self.external_agents.iter())
    }
}

/// `GET /workspaces?all=&search=&limit=&offset=`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[serde(default)]
    pub all: bool,
    /// `name`, `owner:alice`, `template:local`, `status:running`, `name:dev`, with spaces.
    #[serde(default)]
    pub search: String,
    /// Page size: 1 to 100, 25 when absent.
    pub limit: Option<i64>,
    /// How many matching workspaces to skip.
    pub offset: Option<i64>,
}

/// `GET /workspaces/{owner}/{name}/builds?limit=&offset=`: newest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BuildsQuery {
    /// Page size: 1 to 100, 25 when absent.
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// One page of the workspace list, and how many workspaces match in all (Coder's shape).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WorkspacesPage {
    pub workspaces: Vec<WorkspaceView>,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FavoriteRequest {
    pub favorite: bool,
}

/// What a user needs to attach an external machine to a workspace's agent.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentInstructions {
    pub workspace_name: String,
    pub agent_name: String,
    pub auth_type: String,
    /// The agent's token: shown only to the workspace's owner (whoever holds it can stand
    /// in for the agent, and sessions would reach them).
    pub auth_token: String,
    pub init_script: String,
    /// The one line to paste on the machine.
    pub command: String,
}

impl std::fmt::Debug for AgentInstructions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentInstructions")
            .field("workspace_name", &self.workspace_name)
            .field("agent_name", &self.agent_name)
            .field("auth_type", &self.auth_type)
            .field("auth_token", &"***")
            .finish_non_exhaustive()
    }
}

/// `GET /workspaces/{owner}/{name}/agent-instructions[?agent=NAME]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InstructionsQuery {
    #[serde(default)]
    pub agent: Option<String>,
}
