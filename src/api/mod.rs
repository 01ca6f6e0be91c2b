//! The REST API under `/api/v2`. Handlers parse, authorize, call plain functions and map
//! the result; `error.rs` turns failures into HTTP once.

pub mod agents;
pub mod audit;
pub mod auth;
pub mod authz;
pub mod convert;
pub mod error;
pub mod guard;
pub mod jobs;
pub mod login_limits;
pub mod templates;
pub mod tokens;
pub mod users;
pub mod workspaces;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{get, post, put, MethodRouter};
use axum::Router;

pub use authz::Access;

pub use error::{ApiError, ApiResult, ErrorBody, FieldError};

use crate::config::Config;
use crate::db::Database;

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
    pub login_limits: Arc<login_limits::LoginLimits>,
}

/// One API route: where, and who may call it (see `authz`).
pub struct RouteDef {
    pub method: Method,
    /// Under `/api/v2`, with axum's `:param` segments.
    pub path: &'static str,
    pub access: Access,
    handler: MethodRouter<AppState>,
}

/// Every API route, each with its access rule. The router is built from this table and
/// nothing else, so the route-walk test in `tests/authz.rs` sees every route there is.
pub fn route_table() -> Vec<RouteDef> {
    use axum::routing::delete as del;
    use Access::*;
    let r = |method: Method, path, access, handler| RouteDef {
        method,
        path,
        access,
        handler,
    };
    let (g, p, u, d) = (Method::GET, Method::POST, Method::PUT, Method::DELETE);
    vec![
        r(g.clone(), "/buildinfo", Public, get(buildinfo)),
        r(
            g.clone(),
            "/users/first",
            Public,
            get(users::first_user_status),
        ),
        r(
            p.clone(),
            "/users/first",
            Public,
            post(users::create_first_user),
        ),
        r(p.clone(), "/users/login", Public, post(users::login)),
        r(p.clone(), "/users/logout", User, post(users::logout)),
        r(g.clone(), "/users/me", User, get(users::me)),
        r(g.clone(), "/users", TemplateAdmin, get(users::list)),
        r(p.clone(), "/users", Owner, post(users::create)),
        r(
            u.clone(),
            "/users/:user/status/suspend",
            Owner,
            put(users::suspend),
        ),
        r(
            u.clone(),
            "/users/:user/status/activate",
            Owner,
            put(users::activate),
        ),
        r(g.clone(), "/users/me/keys/tokens", User, get(tokens::list)),
        r(
            p.clone(),
            "/users/me/keys/tokens",
            User,
            post(tokens::create),
        ),
        r(
            d.clone(),
            "/users/me/keys/tokens/:name",
            User,
            del(tokens::remove),
        ),
        r(g.clone(), "/audit", Owner, get(audit::list)),
        r(g.clone(), "/templates", User, get(templates::list)),
        r(g.clone(), "/templates/:name", User, get(templates::get)),
        r(
            d.clone(),
            "/templates/:name",
            TemplateAdmin,
            del(templates::delete),
        ),
        r(
            u.clone(),
            "/templates/:name/active",
            TemplateAdmin,
            put(templates::activate),
        ),
        r(
            g.clone(),
            "/templates/:name/versions",
            User,
            get(templates::versions),
        ),
        r(
            p.clone(),
            "/templates/:name/versions",
            TemplateAdmin,
            post(templates::push).layer(DefaultBodyLimit::max(templates::MAX_UPLOAD_BYTES + 1024)),
        ),
        r(
            g.clone(),
            "/templates/:name/versions/:version",
            User,
            get(templates::version),
        ),
        r(
            g.clone(),
            "/templates/:name/versions/:version/archive",
            User,
            get(templates::archive),
        ),
        r(
            p.clone(),
            "/templates/:name/versions/:version/dry-run",
            User,
            post(templates::dry_run),
        ),
        r(g.clone(), "/workspaces", User, get(workspaces::list)),
        r(p.clone(), "/workspaces", User, post(workspaces::create)),
        r(
            g.clone(),
            "/workspaces/:owner/:name",
            Workspace,
            get(workspaces::get),
        ),
        r(
            g.clone(),
            "/workspaces/:owner/:name/builds",
            Workspace,
            get(workspaces::builds),
        ),
        r(
            p.clone(),
            "/workspaces/:owner/:name/builds",
            Workspace,
            post(workspaces::build),
        ),
        r(
            u.clone(),
            "/workspaces/:owner/:name/favorite",
            Workspace,
            put(workspaces::favorite),
        ),
        r(
            g.clone(),
            "/workspaces/:owner/:name/agent-instructions",
            Workspace,
            get(workspaces::agent_instructions),
        ),
        r(
            g.clone(),
            "/workspacebuilds/:id",
            Build,
            get(workspaces::get_build),
        ),
        r(
            u.clone(),
            "/workspacebuilds/:id/cancel",
            Build,
            put(workspaces::cancel_build),
        ),
        r(g.clone(), "/jobs/:id", Job, get(jobs::get)),
        r(g.clone(), "/jobs/:id/logs", Job, get(jobs::logs)),
        r(g.clone(), "/jobs/:id/logs/stream", Job, get(jobs::stream)),
        r(
            g.clone(),
            "/workspaceagents/me",
            Agent,
            get(agents::manifest),
        ),
        r(
            g.clone(),
            "/workspaceagents/me/ws",
            Agent,
            get(agents::connect),
        ),
        r(
            g.clone(),
            "/workspaceagents/:id",
            WorkspaceAgent,
            get(agents::get),
        ),
        r(
            g.clone(),
            "/workspaceagents/:id/logs",
            WorkspaceAgent,
            get(agents::logs),
        ),
        r(
            g.clone(),
            "/workspaceagents/:id/metadata",
            WorkspaceAgent,
            get(agents::metadata),
        ),
        r(
            g.clone(),
            "/init-script/:os/:arch",
            Public,
            get(agents::init_script),
        ),
        r(g, "/bin/:file", Public, get(agents::binary)),
    ]
}

pub fn router(state: AppState) -> Router {
    let mut api = Router::new();
    for def in route_table() {
        let gate = axum::middleware::from_fn_with_state(state.clone(), move |st, req, next| {
            authz::gate(st, def.access, req, next)
        });
        api = api.route(def.path, def.handler.route_layer(gate));
    }
    let api = api.fallback(not_found);
    Router::new().nest("/api/v2", api).with_state(state)
}

async fn buildinfo() -> axum::Json<crate::wire::BuildInfo> {
    axum::Json(crate::wire::BuildInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no API route {}", uri.path()))
}
