//! The typed HTTP client of Hangar's REST API. The CLI, the agent, provisioner daemons
//! and the tests all talk to the server through it.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::wire::agent::Manifest;
use crate::wire::agents::{AgentLog, AgentView, MetadataView};
use crate::wire::audit::AuditEntry;
use crate::wire::external_auth::{ExternalAuthToken, ExternalAuthView};
use crate::wire::jobs::{Job, JobLog, LogsPage};
use crate::wire::templates::{
    ActivateRequest, DryRunRequest, PushQuery, TemplateView, VersionView,
};
use crate::wire::tokens::{CreateTokenRequest, CreatedToken, Token};
use crate::wire::users::{CreateUserRequest, FirstUserStatus, LoginRequest, LoginResponse, User};
use crate::wire::workspaces::{
    AgentInstructions, BuildRequest, BuildView, BuildsQuery, CreateWorkspaceRequest,
    FavoriteRequest, ListQuery, WorkspaceView, WorkspacesPage,
};

/// Page size the client asks for when it walks a whole list.
const PAGE: i64 = 100;
use crate::wire::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error: its message is for the user.
    #[error("{}", render_error(.body))]
    Api { status: StatusCode, body: ErrorBody },
    #[error(
        "cannot reach the Hangar server at {url}: {source}. Is `hangar server` running there?"
    )]
    Connect {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
    /// A session's WebSocket could not be opened.
    #[error("cannot open a session through {url}: {reason}")]
    Session { url: String, reason: String },
}

/// A session's WebSocket to the server (its binary frames are the session's bytes).
pub type SessionSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn render_error(body: &ErrorBody) -> String {
    let mut out = body.message.clone();
    if !body.detail.is_empty() {
        out.push_str(&format!("\n{}", body.detail));
    }
    for v in &body.validations {
        if !body.message.contains(&v.detail) {
            out.push_str(&format!("\n  {}: {}", v.field, v.detail));
        }
    }
    out
}

impl ClientError {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub type ClientResult<T> = Result<T, ClientError>;

#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client({}, token: ***)", self.base)
    }
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Client {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("building the HTTP client");
        Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            http,
        }
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    pub fn with_token(&self, token: &str) -> Client {
        Client {
            token: Some(token.to_string()),
            ..self.clone()
        }
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .request(method, format!("{}/api/v2{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        req
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> ClientResult<reqwest::Response> {
        let resp = req.send().await.map_err(|source| ClientError::Connect {
            url: self.base.clone(),
            source,
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str::<ErrorBody>(&text).unwrap_or_else(|_| ErrorBody {
            message: format!("the server answered {status}"),
            detail: text,
            ..Default::default()
        });
        Err(ClientError::Api { status, body })
    }

    async fn json<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> ClientResult<T> {
        let resp = self.send(req).await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Decode(format!("{e}: {}", String::from_utf8_lossy(&bytes))))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> ClientResult<T> {
        self.json(self.request(Method::GET, path)).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> ClientResult<T> {
        self.json(self.request(Method::POST, path).json(body)).await
    }

    pub async fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> ClientResult<T> {
        self.json(self.request(Method::PUT, path).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> ClientResult<()> {
        self.send(self.request(Method::DELETE, path))
            .await
            .map(|_| ())
    }

    /// A raw GET, for non-JSON answers (archives, scripts, binaries).
    pub async fn get_bytes(&self, path: &str) -> ClientResult<Vec<u8>> {
        let resp = self.send(self.request(Method::GET, path)).await?;
        resp.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| ClientError::Decode(e.to_string()))
    }

    // Users and sessions.

    pub async fn first_user_exists(&self) -> ClientResult<bool> {
        Ok(self.get::<FirstUserStatus>("/users/first").await?.exists)
    }

    pub async fn create_first_user(&self, req: &CreateUserRequest) -> ClientResult<LoginResponse> {
        self.post("/users/first", req).await
    }

    pub async fn login(&self, login: &str, password: &str) -> ClientResult<LoginResponse> {
        self.post(
            "/users/login",
            &LoginRequest {
                login: login.into(),
                password: password.into(),
            },
        )
        .await
    }

    pub async fn logout(&self) -> ClientResult<()> {
        self.send(self.request(Method::POST, "/users/logout"))
            .await
            .map(|_| ())
    }

    pub async fn me(&self) -> ClientResult<User> {
        self.get("/users/me").await
    }

    pub async fn users(&self) -> ClientResult<Vec<User>> {
        self.get("/users").await
    }

    pub async fn create_user(&self, req: &CreateUserRequest) -> ClientResult<User> {
        self.post("/users", req).await
    }

    pub async fn set_user_suspended(&self, username: &str, suspended: bool) -> ClientResult<User> {
        let verb = if suspended { "suspend" } else { "activate" };
        self.put(
            &format!("/users/{username}/status/{verb}"),
            &serde_json::json!({}),
        )
        .await
    }

    // API tokens.

    pub async fn create_token(
        &self,
        name: &str,
        lifetime_seconds: Option<i64>,
    ) -> ClientResult<CreatedToken> {
        self.post(
            "/users/me/keys/tokens",
            &CreateTokenRequest {
                name: name.into(),
                lifetime_seconds,
            },
        )
        .await
    }

    pub async fn tokens(&self) -> ClientResult<Vec<Token>> {
        self.get("/users/me/keys/tokens").await
    }

    pub async fn remove_token(&self, name: &str) -> ClientResult<()> {
        self.delete(&format!("/users/me/keys/tokens/{name}")).await
    }

    // Templates.

    pub async fn templates(&self) -> ClientResult<Vec<TemplateView>> {
        self.get("/templates").await
    }

    pub async fn template(&self, name: &str) -> ClientResult<TemplateView> {
        self.get(&format!("/templates/{name}")).await
    }

    pub async fn push_template(
        &self,
        name: &str,
        archive: Vec<u8>,
        version: Option<&str>,
        message: &str,
        activate: bool,
    ) -> ClientResult<VersionView> {
        let q = PushQuery {
            name: version.map(str::to_string),
            message: message.to_string(),
            activate,
            variables: None,
        };
        self.push_template_with(name, archive, &q).await
    }

    /// A push with everything [`PushQuery`] carries (Terraform variables too).
    pub async fn push_template_with(
        &self,
        name: &str,
        archive: Vec<u8>,
        q: &PushQuery,
    ) -> ClientResult<VersionView> {
        let mut req = self
            .request(Method::POST, &format!("/templates/{name}/versions"))
            .query(q);
        if let Some(vars) = &q.variables {
            req = req.header(crate::wire::templates::VARIABLES_HEADER, vars);
        }
        let req = req
            .header(reqwest::header::CONTENT_TYPE, "application/x-tar")
            .body(archive);
        self.json(req).await
    }

    pub async fn template_versions(&self, name: &str) -> ClientResult<Vec<VersionView>> {
        self.get(&format!("/templates/{name}/versions")).await
    }

    pub async fn template_version(&self, name: &str, version: &str) -> ClientResult<VersionView> {
        self.get(&format!("/templates/{name}/versions/{version}"))
            .await
    }

    pub async fn template_archive(&self, name: &str, version: &str) -> ClientResult<Vec<u8>> {
        self.get_bytes(&format!("/templates/{name}/versions/{version}/archive"))
            .await
    }

    pub async fn activate_template_version(
        &self,
        name: &str,
        version: &str,
    ) -> ClientResult<TemplateView> {
        self.put(
            &format!("/templates/{name}/active"),
            &ActivateRequest {
                version: version.into(),
            },
        )
        .await
    }

    /// Queues a plan of what a create with `parameters` would make (see `Job::result`).
    pub async fn dry_run(
        &self,
        name: &str,
        version: &str,
        parameters: std::collections::BTreeMap<String, String>,
    ) -> ClientResult<Job> {
        self.post(
            &format!("/templates/{name}/versions/{version}/dry-run"),
            &DryRunRequest { parameters },
        )
        .await
    }

    /// Sets a template's display name, description and icon (absent ones stay).
    pub async fn edit_template(
        &self,
        name: &str,
        settings: &crate::wire::templates::TemplateSettings,
    ) -> ClientResult<TemplateView> {
        self.json(
            self.request(Method::PATCH, &format!("/templates/{name}"))
                .json(settings),
        )
        .await
    }

    pub async fn delete_template(&self, name: &str) -> ClientResult<()> {
        self.delete(&format!("/templates/{name}")).await
    }

    // Sessions into workspaces.

    /// Opens a WebSocket relayed to TCP `port` on an agent's loopback.
    pub async fn dial_tcp(&self, agent_id: &str, port: u16) -> ClientResult<SessionSocket> {
        self.dial(&format!("/workspaceagents/{agent_id}/tcp?port={port}"))
            .await
    }

    /// Opens a WebSocket relayed to an agent's embedded SSH server.
    pub async fn dial_ssh(&self, agent_id: &str) -> ClientResult<SessionSocket> {
        self.dial(&format!("/workspaceagents/{agent_id}/ssh")).await
    }

    /// Opens a WebSocket the agent echoes (ping, speed tests).
    pub async fn dial_echo(&self, agent_id: &str) -> ClientResult<SessionSocket> {
        self.dial(&format!("/workspaceagents/{agent_id}/echo"))
            .await
    }

    /// Opens (or reattaches to) the reconnecting terminal `reconnect`; `app` names a
    /// `command` app whose command a new terminal runs. Input is JSON text frames
    /// (`{"data":…}`, `{"height":…,"width":…}`), output binary frames.
    pub async fn dial_pty(
        &self,
        agent_id: &str,
        reconnect: &str,
        app: Option<&str>,
    ) -> ClientResult<SessionSocket> {
        let mut path = format!("/workspaceagents/{agent_id}/pty?reconnect={reconnect}");
        if let Some(app) = app {
            path.push_str("&app=");
            path.push_str(app);
        }
        self.dial(&path).await
    }

    async fn dial(&self, path: &str) -> ClientResult<SessionSocket> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        use tokio_tungstenite::tungstenite::Error as WsError;
        let base = &self.base;
        let ws_base = base
            .strip_prefix("https://")
            .map(|r| format!("wss://{r}"))
            .or_else(|| base.strip_prefix("http://").map(|r| format!("ws://{r}")))
            .unwrap_or_else(|| base.clone());
        let url = format!("{ws_base}/api/v2{path}");
        let failed = |reason: String| ClientError::Session {
            url: base.clone(),
            reason,
        };
        let mut req = url
            .as_str()
            .into_client_request()
            .map_err(|e| failed(e.to_string()))?;
        if let Some(t) = &self.token {
            let value = format!("Bearer {t}")
                .parse()
                .map_err(|_| failed("the session token is not a valid header value".into()))?;
            req.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::header::AUTHORIZATION,
                value,
            );
        }
        match tokio_tungstenite::connect_async_with_config(req, None, true).await {
            Ok((socket, _)) => Ok(socket),
            Err(WsError::Http(resp)) => {
                let status =
                    StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
                let body = resp
                    .body()
                    .as_deref()
                    .and_then(|b| serde_json::from_slice::<ErrorBody>(b).ok())
                    .unwrap_or_else(|| ErrorBody {
                        message: format!("the server answered {status}"),
                        ..Default::default()
                    });
                Err(ClientError::Api { status, body })
            }
            Err(e) => Err(failed(e.to_string())),
        }
    }

    // Workspaces.

    pub async fn create_workspace(
        &self,
        req: &CreateWorkspaceRequest,
    ) -> ClientResult<WorkspaceView> {
        self.post("/workspaces", req).await
    }

    /// Every matching workspace, fetched a page at a time.
    pub async fn workspaces(&self, all: bool, search: &str) -> ClientResult<Vec<WorkspaceView>> {
        let mut out = Vec::new();
        loop {
            let page = self
                .workspaces_page(&ListQuery {
                    all,
                    search: search.to_string(),
                    limit: Some(PAGE),
                    offset: Some(out.len() as i64),
                })
                .await?;
            let last = page.workspaces.len() < PAGE as usize;
            out.extend(page.workspaces);
            if last || out.len() as i64 >= page.count {
                return Ok(out);
            }
        }
    }

    pub async fn workspaces_page(&self, q: &ListQuery) -> ClientResult<WorkspacesPage> {
        let req = self.request(Method::GET, "/workspaces").query(q);
        self.json(req).await
    }

    /// `name` is `NAME` (yours) or `OWNER/NAME`.
    pub async fn workspace(&self, name: &str) -> ClientResult<WorkspaceView> {
        self.get(&format!("/workspaces/{}", owner_path(name))).await
    }

    pub async fn build_workspace(&self, name: &str, req: &BuildRequest) -> ClientResult<BuildView> {
        self.post(&format!("/workspaces/{}/builds", owner_path(name)), req)
            .await
    }

    /// Queues a plan of an update to the active version against the workspace's state.
    pub async fn update_preview(
        &self,
        name: &str,
        parameters: std::collections::BTreeMap<String, String>,
    ) -> ClientResult<Job> {
        self.post(
            &format!("/workspaces/{}/update-preview", owner_path(name)),
            &crate::wire::workspaces::UpdatePreviewRequest { parameters },
        )
        .await
    }

    /// Asks whether `req` would be accepted, queuing nothing (`?validate_only=true`).
    pub async fn validate_build(&self, name: &str, req: &BuildRequest) -> ClientResult<()> {
        self.send(
            self.request(
                Method::POST,
                &format!("/workspaces/{}/builds", owner_path(name)),
            )
            .query(&[("validate_only", "true")])
            .json(req),
        )
        .await
        .map(|_| ())
    }

    /// The newest `limit` builds of a workspace (the server allows 1 to 100 a page).
    pub async fn workspace_builds(&self, name: &str, limit: i64) -> ClientResult<Vec<BuildView>> {
        let req = self
            .request(
                Method::GET,
                &format!("/workspaces/{}/builds", owner_path(name)),
            )
            .query(&BuildsQuery {
                limit: Some(limit),
                offset: None,
            });
        self.json(req).await
    }

    pub async fn set_favorite(&self, name: &str, favorite: bool) -> ClientResult<()> {
        self.send(
            self.request(
                Method::PUT,
                &format!("/workspaces/{}/favorite", owner_path(name)),
            )
            .json(&FavoriteRequest { favorite }),
        )
        .await
        .map(|_| ())
    }

    /// `agent` picks one of several external agents.
    pub async fn agent_instructions(
        &self,
        name: &str,
        agent: Option<&str>,
    ) -> ClientResult<AgentInstructions> {
        let mut req = self.request(
            Method::GET,
            &format!("/workspaces/{}/agent-instructions", owner_path(name)),
        );
        if let Some(a) = agent {
            req = req.query(&[("agent", a)]);
        }
        self.json(req).await
    }

    pub async fn cancel_build(&self, build_id: &str) -> ClientResult<BuildView> {
        self.put(
            &format!("/workspacebuilds/{build_id}/cancel"),
            &serde_json::json!({}),
        )
        .await
    }

    // External auth.

    pub async fn external_auth(&self) -> ClientResult<Vec<ExternalAuthView>> {
        self.get("/external-auth").await
    }

    /// The caller's current access token for provider `id`.
    pub async fn external_auth_token(&self, id: &str) -> ClientResult<ExternalAuthToken> {
        self.get(&format!("/external-auth/{id}/token")).await
    }

    /// Forgets the caller's link to provider `id`.
    pub async fn unlink_external_auth(&self, id: &str) -> ClientResult<()> {
        self.delete(&format!("/external-auth/{id}")).await
    }

    /// With an agent token: the workspace owner's access token for provider `id`.
    pub async fn agent_external_auth_token(&self, id: &str) -> ClientResult<ExternalAuthToken> {
        let req = self
            .request(Method::GET, "/workspaceagents/me/external-auth")
            .query(&[("id", id)]);
        self.json(req).await
    }

    /// The audit log, newest first (owners only).
    pub async fn audit(&self, limit: i64) -> ClientResult<Vec<AuditEntry>> {
        self.get(&format!("/audit?limit={limit}")).await
    }

    // Jobs.

    pub async fn job(&self, id: &str) -> ClientResult<Job> {
        self.get(&format!("/jobs/{id}")).await
    }

    pub async fn job_logs(&self, id: &str, after: i64, wait: bool) -> ClientResult<LogsPage> {
        self.get(&format!("/jobs/{id}/logs?after={after}&wait={wait}"))
            .await
    }

    /// Follows a job to its end, handing each log line to `each`; returns the final job.
    pub async fn follow_job(&self, id: &str, mut each: impl FnMut(&JobLog)) -> ClientResult<Job> {
        let mut after = 0;
        loop {
            let page = self.job_logs(id, after, true).await?;
            for line in &page.logs {
                each(line);
                after = line.id;
            }
            if page.job.status.is_final() && page.logs.is_empty() {
                return Ok(page.job);
            }
        }
    }

    // Workspace agents.

    /// The agent's own manifest; this client must hold the agent token.
    pub async fn agent_manifest(&self) -> ClientResult<Manifest> {
        self.get("/workspaceagents/me").await
    }

    pub async fn agent(&self, id: &str) -> ClientResult<AgentView> {
        self.get(&format!("/workspaceagents/{id}")).await
    }

    /// Log lines after line id `after` (0: from the start), at most a page.
    pub async fn agent_logs(&self, id: &str, after: i64) -> ClientResult<Vec<AgentLog>> {
        self.get(&format!("/workspaceagents/{id}/logs?after={after}"))
            .await
    }

    /// The last `n` log lines.
    pub async fn agent_logs_tail(&self, id: &str, n: i64) -> ClientResult<Vec<AgentLog>> {
        self.get(&format!("/workspaceagents/{id}/logs?tail={n}"))
            .await
    }

    pub async fn agent_metadata(&self, id: &str) -> ClientResult<Vec<MetadataView>> {
        self.get(&format!("/workspaceagents/{id}/metadata")).await
    }

    /// The agent's resource usage over the last hour, oldest first.
    pub async fn agent_usage(&self, id: &str) -> ClientResult<Vec<crate::wire::agent::Usage>> {
        self.get(&format!("/workspaceagents/{id}/usage")).await
    }

    /// The init script for `os`/`arch` (no auth needed).
    pub async fn init_script(&self, os: &str, arch: &str) -> ClientResult<String> {
        let bytes = self.get_bytes(&format!("/init-script/{os}/{arch}")).await?;
        String::from_utf8(bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }
}

/// `alice/dev` → `alice/dev`; `dev` → `me/dev`.
fn owner_path(name: &str) -> String {
    match name.split_once('/') {
        Some((owner, ws)) => format!("{owner}/{ws}"),
        None => format!("me/{name}"),
    }
}
