//! The REST API under `/api/v2`. Handlers parse, authorize, call plain functions and map
//! the result; `error.rs` turns failures into HTTP once.

pub mod agents;
pub mod audit;
pub mod auth;
pub mod authz;
pub mod builds;
pub mod convert;
pub mod error;
pub mod external_auth;
pub mod guard;
pub mod jobs;
pub mod login_limits;
pub mod metrics;
pub mod openapi;
pub mod prebuilds;
pub mod sessions;
pub mod templates;
pub mod tokens;
pub mod usage;
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
    /// The recent resource usage agents reported.
    pub usage: Arc<usage::UsageHistory>,
    /// What `/metrics` serves.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// For calls to other servers (OAuth2 token endpoints).
    pub http: reqwest::Client,
}

/// One API route: where, who may call it (see `authz`), and what it takes and returns
/// (see `openapi`).
pub struct RouteDef {
    pub method: Method,
    /// Under `/api/v2`, with axum's `:param` segments.
    pub path: &'static str,
    pub access: Access,
    pub doc: openapi::RouteDoc,
    handler: MethodRouter<AppState>,
}

/// Every API route, each with its access rule and documentation. The router and the
/// OpenAPI document are built from this table and nothing else, so the route-walk test in
/// `tests/authz.rs` and the document see every route there is.
pub fn route_table() -> Vec<RouteDef> {
    use crate::wire::{
        agent, agents as ag, audit as au, jobs as jb, templates as tp, tokens as tk,
    };
    use crate::wire::{users as us, workspaces as ws, BuildInfo};
    use axum::routing::delete as del;
    use Access::*;
    let r = |method: &Method, path, access, handler| RouteDef {
        method: method.clone(),
        path,
        access,
        doc: openapi::RouteDoc::default(),
        handler,
    };
    let (g, p, u, d) = (&Method::GET, &Method::POST, &Method::PUT, &Method::DELETE);
    let upload_limit = DefaultBodyLimit::max(templates::MAX_UPLOAD_BYTES + 1024);
    vec![
        r(g, "/buildinfo", Public, get(buildinfo))
            .doc("The server's version")
            .ok::<BuildInfo>(),
        r(g, "/openapi.json", Public, get(openapi::serve))
            .doc("This document")
            .raw("application/json", "the OpenAPI 3 document"),
        r(g, "/users/first", Public, get(users::first_user_status))
            .doc("Whether the first user exists")
            .ok::<us::FirstUserStatus>(),
        r(p, "/users/first", Public, post(users::create_first_user))
            .doc("Create the first user, an owner, and log in")
            .body::<us::CreateUserRequest>()
            .created::<us::LoginResponse>(),
        r(p, "/users/login", Public, post(users::login))
            .doc("Log in with a username or email and a password")
            .body::<us::LoginRequest>()
            .created::<us::LoginResponse>(),
        r(p, "/users/logout", User, post(users::logout))
            .doc("Revoke the token this request used")
            .no_content(),
        r(g, "/users/me", User, get(users::me))
            .doc("The caller")
            .ok::<us::User>(),
        r(g, "/users", TemplateAdmin, get(users::list))
            .doc("Every user")
            .list::<us::User>(),
        r(p, "/users", Owner, post(users::create))
            .doc("Create a user")
            .body::<us::CreateUserRequest>()
            .created::<us::User>(),
        r(u, "/users/:user/status/suspend", Owner, put(users::suspend))
            .doc("Suspend a user: their tokens stop working")
            .ok::<us::User>(),
        r(
            u,
            "/users/:user/status/activate",
            Owner,
            put(users::activate),
        )
        .doc("Reactivate a suspended user")
        .ok::<us::User>(),
        r(g, "/users/me/keys/tokens", User, get(tokens::list))
            .doc("The caller's tokens (never their secrets)")
            .list::<tk::Token>(),
        r(p, "/users/me/keys/tokens", User, post(tokens::create))
            .doc("Create an API token; its secret is in this answer only")
            .body::<tk::CreateTokenRequest>()
            .created::<tk::CreatedToken>(),
        r(d, "/users/me/keys/tokens/:name", User, del(tokens::remove))
            .doc("Remove one of the caller's tokens")
            .no_content(),
        r(g, "/audit", Owner, get(audit::list))
            .doc("The audit log, newest first")
            .query::<au::AuditQuery>()
            .list::<au::AuditEntry>(),
        r(g, "/templates", User, get(templates::list))
            .doc("Every template")
            .list::<tp::TemplateView>(),
        r(g, "/templates/:name", User, get(templates::get))
            .doc("One template")
            .ok::<tp::TemplateView>(),
        r(d, "/templates/:name", TemplateAdmin, del(templates::delete))
            .doc("Delete a template no workspace uses")
            .no_content(),
        r(
            &Method::PATCH,
            "/templates/:name",
            TemplateAdmin,
            axum::routing::patch(templates::edit),
        )
        .doc("Set a template's display name, description and icon")
        .body::<tp::TemplateSettings>()
        .ok::<tp::TemplateView>(),
        r(
            u,
            "/templates/:name/active",
            TemplateAdmin,
            put(templates::activate),
        )
        .doc("Make a version the active one")
        .body::<tp::ActivateRequest>()
        .ok::<tp::TemplateView>(),
        r(
            g,
            "/templates/:name/versions",
            User,
            get(templates::versions),
        )
        .doc("A template's versions, newest first")
        .list::<tp::VersionView>(),
        r(
            p,
            "/templates/:name/versions",
            TemplateAdmin,
            post(templates::push).layer(upload_limit),
        )
        .doc("Push a new version (a tar of the module) and queue its import")
        .query::<tp::PushQuery>()
        .tar_body()
        .created::<tp::VersionView>(),
        r(
            g,
            "/templates/:name/versions/:version",
            User,
            get(templates::version),
        )
        .doc("One version, with its parameters and import job")
        .ok::<tp::VersionView>(),
        r(
            g,
            "/templates/:name/versions/:version/archive",
            User,
            get(templates::archive),
        )
        .doc("A version's files as a tar")
        .raw("application/x-tar", "the version's archive"),
        r(
            p,
            "/templates/:name/versions/:version/dry-run",
            User,
            post(templates::dry_run),
        )
        .doc("Queue a plan of what a create with these parameters would make")
        .body::<tp::DryRunRequest>()
        .created::<jb::Job>(),
        r(g, "/workspaces", User, get(workspaces::list))
            .doc("A page of the caller's workspaces (everyone's with `all`), favorites first, filtered by `search`, with the count of all that match")
            .query::<ws::ListQuery>()
            .ok::<ws::WorkspacesPage>(),
        r(p, "/workspaces", User, post(workspaces::create))
            .doc("Create a workspace and queue its first start")
            .body::<ws::CreateWorkspaceRequest>()
            .created::<ws::WorkspaceView>(),
        r(
            g,
            "/workspaces/:owner/:name",
            Workspace,
            get(workspaces::get),
        )
        .doc("One workspace (`me` as owner for the caller's)")
        .ok::<ws::WorkspaceView>(),
        r(
            g,
            "/workspaces/:owner/:name/builds",
            Workspace,
            get(builds::builds),
        )
        .doc("A page of a workspace's builds, newest first")
        .query::<ws::BuildsQuery>()
        .list::<ws::BuildView>(),
        r(
            p,
            "/workspaces/:owner/:name/builds",
            Workspace,
            post(builds::build),
        )
        .doc("Queue a start, stop or delete build (or only check it, with `validate_only`)")
        .query::<ws::BuildQuery>()
        .body::<ws::BuildRequest>()
        .created::<ws::BuildView>()
        .or_no_content("with `validate_only`: the build would be accepted"),
        r(
            p,
            "/workspaces/:owner/:name/update-preview",
            Workspace,
            post(builds::update_preview),
        )
        .doc("Plan an update to the template's active version against the workspace's state; the job's result lists each change and whether it loses data")
        .body::<ws::UpdatePreviewRequest>()
        .created::<jb::Job>(),
        r(
            u,
            "/workspaces/:owner/:name/favorite",
            Workspace,
            put(workspaces::favorite),
        )
        .doc("Mark or unmark a workspace as one of the caller's favorites")
        .body::<ws::FavoriteRequest>()
        .no_content(),
        r(
            g,
            "/workspaces/:owner/:name/agent-instructions",
            WorkspaceOwner,
            get(workspaces::agent_instructions),
        )
        .doc("How to attach a machine to an external workspace's agent")
        .query::<ws::InstructionsQuery>()
        .ok::<ws::AgentInstructions>(),
        r(g, "/workspacebuilds/:id", Build, get(builds::get_build))
            .doc("One build")
            .ok::<ws::BuildView>(),
        r(
            u,
            "/workspacebuilds/:id/cancel",
            Build,
            put(builds::cancel_build),
        )
        .doc("Cancel a pending or running build")
        .ok::<ws::BuildView>(),
        r(g, "/jobs/:id", Job, get(jobs::get))
            .doc("One job")
            .ok::<jb::Job>(),
        r(g, "/jobs/:id/logs", Job, get(jobs::logs))
            .doc("A job's log lines after `after`; `wait` holds the request for new ones")
            .query::<jb::LogsQuery>()
            .ok::<jb::LogsPage>(),
        r(g, "/jobs/:id/logs/stream", Job, get(jobs::stream))
            .doc("A job's log lines as Server-Sent Events, then its end")
            .query::<jb::StreamQuery>()
            .raw("text/event-stream", "`log` events, then one `end` event"),
        r(
            g,
            "/templates/:name/prebuilds",
            TemplateAdmin,
            get(prebuilds::list),
        )
        .doc("Each preset's prebuilt workspaces of the active version, and their failures")
        .list::<tp::PrebuildView>(),
        r(g, "/external-auth", User, get(external_auth::list))
            .doc("The external auth providers (OAuth2) and whether the caller linked each")
            .list::<crate::wire::external_auth::ExternalAuthView>(),
        r(
            g,
            "/external-auth/:id/token",
            User,
            get(external_auth::token),
        )
        .doc("The caller's current access token for a provider (409 with where to link when there is none)")
        .ok::<crate::wire::external_auth::ExternalAuthToken>(),
        r(d, "/external-auth/:id", User, del(external_auth::unlink))
            .doc("Forget the caller's link to a provider")
            .no_content(),
        r(
            g,
            "/workspaceagents/me/external-auth",
            Agent,
            get(external_auth::agent_token),
        )
        .doc("The workspace owner's access token for a provider (agent token; not for agents with api_key_scope no_user_data)")
        .query::<crate::wire::external_auth::AgentExternalAuthQuery>()
        .ok::<crate::wire::external_auth::ExternalAuthToken>(),
        r(g, "/workspaceagents/me", Agent, get(agents::manifest))
            .doc("The calling agent's manifest (agent token)")
            .ok::<agent::Manifest>(),
        r(g, "/workspaceagents/me/ws", Agent, get(agents::connect))
            .doc("The calling agent's connection (agent token)")
            .websocket(),
        r(g, "/workspaceagents/:id", WorkspaceAgent, get(agents::get))
            .doc("One agent with its status")
            .ok::<ag::AgentView>(),
        r(
            g,
            "/workspaceagents/:id/logs",
            WorkspaceAgent,
            get(agents::logs),
        )
        .doc("An agent's script output")
        .query::<ag::AgentLogsQuery>()
        .list::<ag::AgentLog>(),
        r(
            g,
            "/workspaceagents/:id/metadata",
            WorkspaceAgent,
            get(agents::metadata),
        )
        .doc("An agent's metadata items with their latest values")
        .list::<ag::MetadataView>(),
        r(
            g,
            "/workspaceagents/:id/usage",
            WorkspaceAgent,
            get(agents::usage),
        )
        .doc("An agent's resource usage over the last hour, oldest first")
        .list::<agent::Usage>(),
        r(
            g,
            "/workspaceagents/:id/tcp",
            AgentSession,
            get(sessions::tcp),
        )
        .doc("A TCP connection to a port on the agent's loopback, as a WebSocket of binary frames (the workspace's owner only)")
        .query::<ag::TcpQuery>()
        .websocket(),
        r(
            g,
            "/workspaceagents/:id/ssh",
            AgentSession,
            get(sessions::ssh),
        )
        .doc("An SSH connection to the agent's embedded SSH server, as a WebSocket of binary frames (the workspace's owner only)")
        .websocket(),
        r(
            g,
            "/workspaceagents/:id/echo",
            AgentSession,
            get(sessions::echo),
        )
        .doc("A WebSocket the agent echoes, for ping and speed tests (the workspace's owner only)")
        .websocket(),
        r(
            g,
            "/workspaceagents/:id/pty",
            AgentSession,
            get(sessions::pty),
        )
        .doc("The web terminal: a reconnecting shell on a PTY, JSON input in text frames, output in binary frames (the workspace's owner only)")
        .query::<ag::PtyQuery>()
        .websocket(),
        r(
            g,
            "/init-script/:os/:arch",
            Public,
            get(agents::init_script),
        )
        .doc("The script that downloads and starts the agent")
        .raw("text/x-shellscript", "a POSIX sh script"),
        r(
            p,
            "/workspaceagents/google-instance-identity",
            Public,
            post(agents::instance_identity),
        )
        .doc("Instance-identity agent auth (Google): not supported here; answers 400 with what to do")
        .no_content(),
        r(
            p,
            "/workspaceagents/aws-instance-identity",
            Public,
            post(agents::instance_identity),
        )
        .doc("Instance-identity agent auth (AWS): not supported here; answers 400 with what to do")
        .no_content(),
        r(
            p,
            "/workspaceagents/azure-instance-identity",
            Public,
            post(agents::instance_identity),
        )
        .doc("Instance-identity agent auth (Azure): not supported here; answers 400 with what to do")
        .no_content(),
        r(g, "/bin/:file", Public, get(agents::binary))
            .doc("The agent binary (`hangar-<os>-<arch>`)")
            .raw("application/octet-stream", "the hangar binary"),
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
