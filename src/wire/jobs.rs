//! Jobs (imports, builds, dry runs) and their log lines.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Timestamp;
use crate::model::{JobKind, JobStatus};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Job {
    pub id: String,
    pub kind: JobKind,
    pub status: JobStatus,
    /// What the job works on (template version id, build id…).
    pub input: serde_json::Value,
    /// The provisioner that ran (or runs) it.
    pub worker_id: Option<String>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    pub canceled_at: Option<Timestamp>,
    pub error: Option<String>,
    pub error_code: Option<String>,
    /// Stage → milliseconds.
    pub timings: BTreeMap<String, i64>,
    /// What the job produced for its caller (a dry run's planned resources); null if nothing.
    pub result: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct JobLog {
    pub id: i64,
    pub at: Timestamp,
    pub stage: String,
    pub level: String,
    pub text: String,
}

/// `GET /jobs/{id}/logs?after=N[&wait=true]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    #[serde(default)]
    pub after: i64,
    /// Wait (up to 15 s) for new lines or the job's end instead of answering empty.
    #[serde(default)]
    pub wait: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogsPage {
    pub logs: Vec<JobLog>,
    pub job: Job,
}

/// `GET /jobs/{id}/logs/stream[?after=N]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// The last line the client already has (a page rendered with the lines so far).
    #[serde(default)]
    pub after: i64,
}
