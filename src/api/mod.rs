//! The REST API under `/api/v2`. Handlers parse, authorize, call plain functions and map
//! the result; `error.rs` turns failures into HTTP once.

pub mod agents;
pub mod audit;
pub mod auth;
pub mod error;
pub mod jobs;
pub mod templates;
pub mod tokens;
pub mod users;
pub mod workspaces;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;

pub use error::{ApiError, ApiResult, ErrorBody, FieldError};

use crate::db::Database;
use crate::server::Config;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub config: Arc<Config>,
    /// Wakes idle in-process provisioners when a job is queued.
    pub jobs_available: Arc<tokio::sync::Notify>,
    /// Carries a job id whenever that job logged or changed status (live log followers).
    pub job_updates: tokio::sync::broadcast::Sender<String>,
    /// Open agent WebSockets, closed on shutdown.
    pub agent_conns: agents::AgentConnections,
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/buildinfo", get(buildinfo))
        .route("/audit", get(audit::list))
        .route(
            "/users/first",
            get(users::first_user_status).post(users::create_first_user),
        )
        .route("/users/login", post(users::login))
        .route("/users/logout", post(users::logout))
        .route("/users/me", get(users::me))
        .route("/users", get(users::list).post(users::create))
        .route("/users/:user/status/suspend", put(users::suspend))
        .route("/users/:user/status/activate", put(users::activate))
        .route(
            "/users/me/keys/tokens",
            get(tokens::list).post(tokens::create),
        )
        .route(
            "/users/me/keys/tokens/:name",
            axum::routing::delete(tokens::remove),
        )
        .route("/templates", get(templates::list))
        .route(
            "/templates/:name",
            get(templates::get).delete(templates::delete),
        )
        .route("/templates/:name/active", put(templates::activate))
        .route(
            "/templates/:name/versions",
            get(templates::versions)
                .post(templates::push)
                .layer(DefaultBodyLimit::max(templates::MAX_UPLOAD_BYTES + 1024)),
        )
        .route(
            "/templates/:name/versions/:version",
            get(templates::version),
        )
        .route(
            "/templates/:name/versions/:version/archive",
            get(templates::archive),
        )
        .route(
            "/templates/:name/versions/:version/dry-run",
            post(templates::dry_run),
        )
        .route(
            "/workspaces",
            get(workspaces::list).post(workspaces::create),
        )
        .route("/workspaces/:owner/:name", get(workspaces::get))
        .route(
            "/workspaces/:owner/:name/builds",
            get(workspaces::builds).post(workspaces::build),
        )
        .route(
            "/workspaces/:owner/:name/favorite",
            put(workspaces::favorite),
        )
        .route(
            "/workspaces/:owner/:name/agent-instructions",
            get(workspaces::agent_instructions),
        )
        .route("/workspacebuilds/:id", get(workspaces::get_build))
        .route("/workspacebuilds/:id/cancel", put(workspaces::cancel_build))
        .route("/jobs/:id", get(jobs::get))
        .route("/workspaceagents/me", get(agents::manifest))
        .route("/workspaceagents/me/ws", get(agents::connect))
        .route("/workspaceagents/:id", get(agents::get))
        .route("/workspaceagents/:id/logs", get(agents::logs))
        .route("/workspaceagents/:id/metadata", get(agents::metadata))
        .route("/init-script/:os/:arch", get(agents::init_script))
        .route("/bin/:file", get(agents::binary))
        .route("/jobs/:id/logs", get(jobs::logs))
        .route("/jobs/:id/logs/stream", get(jobs::stream))
        .fallback(not_found);
    Router::new().nest("/api/v2", api).with_state(state)
}

#[derive(serde::Serialize, serde::Deserialize, Debug)]
pub struct BuildInfo {
    pub version: String,
}

async fn buildinfo() -> axum::Json<BuildInfo> {
    axum::Json(BuildInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no API route {}", uri.path()))
}
