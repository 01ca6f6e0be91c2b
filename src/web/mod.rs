//! The web UI: server-rendered pages over the same plain functions the REST API calls.
//! Pages authenticate with the `hangar_session` cookie (the API's `Auth` reads it too);
//! a build page follows its log live through the API's SSE stream.

mod apps;
mod assets;
mod create;
mod external_auth;
mod live;
pub mod subdomain;
mod template_pages;
mod views;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use axum::{Form, Router};
use serde::Deserialize;

use crate::api::auth::{Auth, SESSION_COOKIE};
use crate::api::workspaces;
use crate::api::{agents, builds, jobs, templates, users, ApiError, AppState};
use crate::model::Transition;
use crate::wire::users::LoginRequest;
use crate::wire::workspaces::{BuildRequest, ListQuery};
use views::*;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(workspace_list))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/templates", get(template_list))
        .route("/external-auth", get(external_auth::list))
        .route("/external-auth/:id", get(external_auth::one))
        .route("/external-auth/:id/login", get(external_auth::login))
        .route("/external-auth/:id/callback", get(external_auth::callback))
        .route("/external-auth/:id/unlink", post(external_auth::unlink))
        .route("/static/app.js", get(app_js))
        .route("/static/style.css", get(assets::style))
        .route("/favicon.svg", get(assets::favicon))
        .route("/favicon.ico", get(assets::favicon))
        .route("/icon/:name", get(assets::icon))
        .route("/live", get(live::list_changes))
        .route("/@:owner/:name/live", get(live::workspace_changes))
        .route("/@:owner/:name/restart", post(restart))
        .route(
            "/@:owner/:name/update",
            get(update_page).post(preview_update),
        )
        .route("/@:owner/:name/update/live", get(live::preview_changes))
        .route(
            "/static/terminal.js",
            get(|| asset(TERMINAL_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/static/xterm.js",
            get(|| asset(XTERM_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/static/xterm-addon-fit.js",
            get(|| asset(XTERM_FIT_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/static/xterm.css",
            get(|| asset(XTERM_CSS, "text/css; charset=utf-8")),
        )
        .route("/@:owner/:target/terminal", get(terminal_page))
        .route("/@:owner/:target/terminal/socket", get(terminal_socket))
        .route("/app-auth", get(subdomain::app_auth))
        .route(
            "/templates/:name/create",
            get(create::create_form).post(create::create),
        )
        .route(
            "/templates/new",
            get(template_pages::new_template_form).post(template_pages::new_template),
        )
        .route("/templates/:name", get(template_pages::template_page))
        .route("/templates/:name/active", post(template_pages::promote))
        .route(
            "/templates/:name/settings",
            post(template_pages::template_settings),
        )
        .route(
            "/templates/:name/edit",
            get(template_pages::edit_form).post(template_pages::edit),
        )
        .route("/@:owner/:name", get(workspace_page))
        .route("/@:owner/:name/favorite", post(favorite))
        .route("/@:owner/:name/builds", post(build))
        .route("/@:owner/:name/cancel", post(cancel))
        .route("/@:owner/:target/apps/:slug", any(apps::without_slash))
        .route("/@:owner/:target/apps/:slug/", any(apps::proxy))
        .route("/@:owner/:target/apps/:slug/*rest", any(apps::proxy))
        .route("/@:owner/:target/ports/:port", any(apps::without_slash))
        .route("/@:owner/:target/ports/:port/", any(apps::proxy))
        .route("/@:owner/:target/ports/:port/*rest", any(apps::proxy))
        .route("/@:owner/:name/builds/:number", get(build_page))
        .layer(axum::middleware::from_fn(remember_destination))
        .with_state(state)
}

/// The web terminal's script and xterm.js (vendored from npm, see vendor/README.md),
/// compiled into the binary so a server needs no files beside it.
const TERMINAL_JS: &str = include_str!("terminal.js");
const XTERM_JS: &str = include_str!("vendor/xterm.js");
const XTERM_FIT_JS: &str = include_str!("vendor/xterm-addon-fit.js");
const XTERM_CSS: &str = include_str!("vendor/xterm.css");

async fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (axum::http::header::CONTENT_TYPE, content_type),
            (axum::http::header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// `/@OWNER/WORKSPACE[.AGENT]/terminal`: the web terminal, for the workspace's owner.
async fn terminal_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((owner, target)): Path<(String, String)>,
) -> PageResult {
    let (ws, agent) = terminal_agent(&state, &viewer, &owner, &target).await?;
    let ctx = TerminalPage {
        place: format!("{owner}/{}.{}", ws.name, agent.name),
        back: workspace_href(&owner, &ws.name),
        socket: format!("/@{owner}/{}.{}/terminal/socket", ws.name, agent.name),
    };
    Ok(Html(render(
        "terminal.html",
        &ctx,
        Some(&viewer.0.user.username),
    )?)
    .into_response())
}

/// `/@OWNER/WORKSPACE[.AGENT]/terminal/socket`: the terminal's WebSocket, by name, so a
/// page left open reaches the workspace's current agent after a restart (agents are new
/// with every build).
async fn terminal_socket(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((owner, target)): Path<(String, String)>,
    Query(q): Query<crate::wire::agents::PtyQuery>,
    headers: axum::http::HeaderMap,
    ws: axum::extract::WebSocketUpgrade,
) -> PageResult {
    // A page elsewhere must not open a shell with the visitor's cookie.
    crate::api::guard::check_source(&state.config.access_url, &headers)?;
    let (_, agent) = terminal_agent(&state, &viewer, &owner, &target).await?;
    Ok(crate::api::sessions::terminal(state, viewer.0, agent.id, q, ws).await?)
}

/// The workspace and agent a terminal URL names, for its owner only.
async fn terminal_agent(
    state: &AppState,
    viewer: &Viewer,
    owner: &str,
    target: &str,
) -> Result<
    (
        crate::wire::workspaces::WorkspaceView,
        crate::wire::agents::AgentView,
    ),
    ApiError,
> {
    let (name, agent_name) = match target.split_once('.') {
        Some((w, a)) => (w.to_string(), Some(a.to_string())),
        None => (target.to_string(), None),
    };
    let (ws, owner_user) = workspaces::find_workspace(state, &viewer.0, owner, &name).await?;
    let not_found = || ApiError::NotFound(format!("no agent {target:?} to open a terminal on"));
    if !crate::api::authz::may_connect(&viewer.0.user, &owner_user.id) {
        return Err(ApiError::NotFound(format!(
            "terminals open only for the workspace's owner ({owner})"
        )));
    }
    let view = workspaces::view_of(state, &viewer.0.user, &ws).await?;
    let agent = {
        let agents: Vec<_> = view.agents().collect();
        match &agent_name {
            Some(n) => agents.iter().find(|a| &a.name == n).copied(),
            None if agents.len() == 1 => agents.first().copied(),
            None => None,
        }
        .cloned()
        .ok_or_else(not_found)?
    };
    Ok((view, agent))
}

async fn app_js() -> Response {
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/javascript; charset=utf-8",
            ),
            (axum::http::header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("app.js"),
    )
        .into_response()
}

/// A page's failure: not logged in sends the browser to the login form; anything else
/// renders the error page with the API's message and status.
pub struct WebError(ApiError);

impl<E: Into<ApiError>> From<E> for WebError {
    fn from(e: E) -> Self {
        WebError(e.into())
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let message = match self.0 {
            ApiError::Unauthorized(_) => return Redirect::to("/login").into_response(),
            ApiError::Internal(err) => {
                let id = crate::model::new_id();
                tracing::error!(error_id = %id, error = format!("{err:#}"), "internal error");
                format!("internal server error (id {id}): the server's log has the details")
            }
            other => other.to_string(),
        };
        let page = ErrorPage {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("error").to_string(),
            message,
        };
        match render("error.html", &page, None) {
            Ok(html) => (status, Html(html)).into_response(),
            // The error page itself failed to render: plain text still tells the user why.
            Err(_) => (status, page.message).into_response(),
        }
    }
}

type PageResult = Result<Response, WebError>;

/// The logged-in user of a page request.
pub struct Viewer(Auth);

#[axum::async_trait]
impl FromRequestParts<AppState> for Viewer {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        Ok(Viewer(Auth::from_request_parts(parts, state).await?))
    }
}

fn page(name: &str, ctx: &impl serde::Serialize, viewer: &Viewer) -> PageResult {
    Ok(Html(render(name, ctx, Some(&viewer.0.user.username))?).into_response())
}

/// After a form post: 303 so a reload does not post again.
fn see_other(to: &str) -> Response {
    match HeaderValue::from_str(to) {
        Ok(_) => Redirect::to(to).into_response(),
        // Not a valid header value: home, rather than a panic.
        Err(_) => Redirect::to("/").into_response(),
    }
}

#[derive(Deserialize, Default)]
struct NextQuery {
    #[serde(default)]
    next: String,
}

async fn login_form(Query(q): Query<NextQuery>) -> PageResult {
    let page = LoginPage {
        next: local_path(&q.next).unwrap_or_default().to_string(),
        ..Default::default()
    };
    Ok(Html(render("login.html", &page, None)?).into_response())
}

/// `next` if it is a path on this server (never another site: `//host` and `/\host` are
/// other hosts to a browser).
fn local_path(next: &str) -> Option<&str> {
    // Browsers drop tabs and newlines from URLs and read `\` as `/`, so `/\t/evil` is
    // `//evil`: a local path has none of them anywhere.
    let plain = !next
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\');
    (plain && next.starts_with('/') && !next.starts_with("//")).then_some(next)
}

/// A page that needed a login sends the browser to it with the page's own path in
/// `next`, so the login lands back there.
async fn remember_destination(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let here = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let get = request.method() == axum::http::Method::GET;
    let mut resp = next.run(request).await;
    let to_login = resp
        .headers()
        .get(header::LOCATION)
        .is_some_and(|l| l == "/login");
    if get && to_login && resp.status().is_redirection() {
        let to = format!("/login?next={}", views::urlencode(&here));
        if let Ok(v) = HeaderValue::from_str(&to) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
    }
    resp
}

#[derive(Deserialize)]
struct LoginForm {
    login: String,
    password: String,
    #[serde(default)]
    next: String,
}

async fn login(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(from): axum::extract::ConnectInfo<std::net::SocketAddr>,
    Form(form): Form<LoginForm>,
) -> PageResult {
    let req = LoginRequest {
        login: form.login,
        password: form.password,
    };
    let session = match users::login_user(&state, &req, from.ip()).await {
        Ok(s) => s,
        Err(ApiError::Unauthorized(message)) => {
            let page = LoginPage {
                login: req.login,
                error: Some(message),
                next: local_path(&form.next).unwrap_or_default().to_string(),
            };
            let html = render("login.html", &page, None)?;
            return Ok((StatusCode::UNAUTHORIZED, Html(html)).into_response());
        }
        Err(e) => return Err(e.into()),
    };
    // HttpOnly: page scripts never see the token; SameSite=Lax: other sites cannot post
    // our forms (start/stop) with it, which is the CSRF protection of this UI.
    let secure = if state.config.access_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{SESSION_COOKIE}={}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{secure}",
        session.session_token,
        users::SESSION_TTL_MS / 1000
    );
    let mut resp = see_other(local_path(&form.next).unwrap_or("/"));
    resp.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(anyhow::Error::from)?,
    );
    Ok(resp)
}

async fn logout(State(state): State<AppState>, auth: Option<Auth>) -> PageResult {
    if let Some(auth) = auth {
        users::end_session(&state, &auth).await?;
    }
    let mut resp = see_other("/login");
    let expired = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0");
    resp.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_str(&expired).map_err(anyhow::Error::from)?,
    );
    Ok(resp)
}

/// `/?search=&page=`: the list's search box and page, as the API's.
#[derive(Debug, Default, serde::Deserialize)]
struct ListParams {
    #[serde(default)]
    search: String,
    #[serde(default)]
    page: i64,
}

/// Workspaces per page of the web list.
const LIST_PAGE: i64 = 50;

async fn workspace_list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(params): Query<ListParams>,
) -> PageResult {
    // Owners and template-admins see everyone's workspaces; members their own.
    let page_no = params.page.max(0);
    let q = ListQuery {
        all: true,
        search: params.search.clone(),
        limit: Some(LIST_PAGE),
        offset: Some(page_no.saturating_mul(LIST_PAGE)),
    };
    let list = workspaces::list_page(&state, &viewer.0, &q).await?;
    let mut ctx = ListPage::new(
        &list,
        &viewer.0.user.username,
        &params.search,
        page_no,
        LIST_PAGE,
    );
    let query = format!("page={page_no}&search={}", views::urlencode(&params.search));
    ctx.live = format!("/live?{query}");
    ctx.here = format!("/?{query}");
    ctx.version = live::version_of(&list);
    page("workspaces.html", &ctx, &viewer)
}

async fn workspace_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
) -> PageResult {
    let (ws, _) = workspaces::find_workspace(&state, &viewer.0, &owner, &name).await?;
    let builds = builds::build_history(&state, &ws, workspaces::MAX_PAGE, 0).await?;
    let ws = workspaces::view_of(&state, &viewer.0.user, &ws).await?;
    let version = live::version_of(&live::workspace_snapshot(&state, &ws).await?);
    let mut details = Vec::new();
    for a in ws.agents() {
        let logs = state.db.tail_agent_logs(&a.id, AGENT_LOG_LINES).await?;
        let history = state.usage.history(&a.id);
        details.push(AgentDetail {
            agent: a.clone(),
            logs: logs.into_iter().map(Into::into).collect(),
            metadata: agents::metadata_views_by_id(&state, &a.id).await?,
            usage: match (&a.usage, history.is_empty()) {
                (Some(latest), true) => UsageView::new(std::slice::from_ref(latest)),
                (Some(_), false) => UsageView::new(&history),
                (None, _) => None,
            },
        });
    }
    let failure = if ws.status == crate::model::WorkspaceStatus::Failed {
        let job = &ws.latest_build.job;
        Some(Failure {
            error: match (&job.error_code, &job.error) {
                (Some(code), Some(e)) => format!("{code}: {e}"),
                (None, Some(e)) => e.clone(),
                _ => "the build failed".into(),
            },
            log: state
                .db
                .tail_job_logs(&job.id, FAILURE_LOG_LINES)
                .await?
                .into_iter()
                .map(Into::into)
                .collect(),
        })
    } else {
        None
    };
    let mut view = WorkspacePage::new(ws, builds, details);
    view.failure = failure;
    view.version = version;
    view.live = format!("{}/live", view.href);
    if let Some(w) = &state.config.wildcard {
        view.app_host_suffix = Some(w.suffix_with_port());
        view.app_scheme = w.scheme().to_string();
    }
    page("workspace.html", &view, &viewer)
}

/// The agent log lines a workspace page shows; `hangar logs` has the rest.
const AGENT_LOG_LINES: i64 = 5;
/// The build log lines a failed workspace's page shows; its build page has them all.
const FAILURE_LOG_LINES: i64 = 12;

#[derive(Deserialize)]
struct FavoriteForm {
    favorite: bool,
}

async fn favorite(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
    Form(form): Form<FavoriteForm>,
) -> PageResult {
    workspaces::set_favorite(&state, &viewer.0, &owner, &name, form.favorite).await?;
    Ok(see_other(&workspace_href(&owner, &name)))
}

#[derive(Deserialize)]
struct BuildForm {
    transition: Transition,
    /// Where to go afterwards (a path on this server); the workspace's page by default.
    #[serde(default)]
    next: String,
}

async fn build(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
    Form(form): Form<BuildForm>,
) -> PageResult {
    let req = BuildRequest {
        transition: Some(form.transition),
        ..Default::default()
    };
    builds::queue_build(&state, &viewer.0, &owner, &name, req).await?;
    let here = workspace_href(&owner, &name);
    Ok(see_other(local_path(&form.next).unwrap_or(&here)))
}

#[derive(Deserialize)]
struct RestartForm {
    /// Move to the template's active version on the way.
    #[serde(default)]
    update: bool,
    /// An update names the preview the user saw, and accepts its data loss explicitly.
    #[serde(default)]
    preview: String,
    #[serde(default)]
    accept_data_loss: bool,
    #[serde(default)]
    next: String,
}

/// The Restart button, and an update confirmed on its preview page: stop (when
/// running), then start. An update without a preview goes to one first.
async fn restart(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
    Form(form): Form<RestartForm>,
) -> PageResult {
    if form.update {
        if form.preview.is_empty() {
            return preview_update(State(state), viewer, Path((owner, name))).await;
        }
        let preview = update_preview_of(&state, &viewer, &owner, &name, &form.preview).await?;
        if preview.map(|p| p.data_loss).unwrap_or(true) && !form.accept_data_loss {
            return Err(ApiError::BadRequest(
                "this update replaces or destroys persistent resources: tick the box that accepts losing their data, or back them up first".into(),
            )
            .into());
        }
    }
    // An update starts exactly the version its preview planned, and only while that
    // preview still describes the update (same active version, same latest build).
    let version = if form.update {
        let (ws, _) = workspaces::find_workspace(&state, &viewer.0, &owner, &name).await?;
        let job = builds::preview_job(&state, &ws.id, &form.preview).await?;
        Some(builds::preview_still_current(&state, &ws, &job).await?)
    } else {
        None
    };
    builds::stop_then_start(&state, &viewer.0, &owner, &name, version).await?;
    let here = workspace_href(&owner, &name);
    Ok(see_other(local_path(&form.next).unwrap_or(&here)))
}

/// The Update button: plans the update against the workspace's state, then shows it.
async fn preview_update(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
) -> PageResult {
    let job =
        builds::queue_update_preview(&state, &viewer.0, &owner, &name, Default::default()).await?;
    Ok(see_other(&format!(
        "{}/update?preview={}",
        workspace_href(&owner, &name),
        job.id
    )))
}

#[derive(Deserialize)]
struct PreviewQuery {
    preview: String,
}

/// The preview job of this workspace's update, if the viewer may see the workspace:
/// None while it runs; an error when it failed or belongs elsewhere.
async fn update_preview_of(
    state: &AppState,
    viewer: &Viewer,
    owner: &str,
    name: &str,
    job_id: &str,
) -> Result<Option<crate::wire::workspaces::UpdatePreview>, WebError> {
    let (ws, _) = workspaces::find_workspace(state, &viewer.0, owner, name).await?;
    let job = builds::preview_job(state, &ws.id, job_id).await?;
    match job.status {
        crate::model::JobStatus::Succeeded => {
            let result: crate::wire::workspaces::UpdatePreview =
                serde_json::from_str(&job.result).map_err(anyhow::Error::from)?;
            Ok(Some(result))
        }
        s if s.is_final() => Err(ApiError::Conflict(format!(
            "planning the update {s}: {}",
            job.error.unwrap_or_default()
        ))
        .into()),
        _ => Ok(None),
    }
}

/// `/@OWNER/NAME/update?preview=JOB`: what the update would do, and its confirmation.
async fn update_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
    Query(q): Query<PreviewQuery>,
) -> PageResult {
    let preview = update_preview_of(&state, &viewer, &owner, &name, &q.preview).await?;
    let (ws, _) = workspaces::find_workspace(&state, &viewer.0, &owner, &name).await?;
    let view = workspaces::view_of(&state, &viewer.0.user, &ws).await?;
    let href = workspace_href(&owner, &name);
    let ctx = UpdatePage {
        live: format!("{href}/update/live?preview={}", q.preview),
        version: live::version_of(&preview.is_some()),
        href,
        from: view.template_version.clone(),
        to: view.active_version.clone().unwrap_or_default(),
        owner,
        name,
        job: q.preview,
        preview,
    };
    page("update.html", &ctx, &viewer)
}

async fn cancel(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
) -> PageResult {
    builds::cancel_latest(&state, &viewer.0, &owner, &name).await?;
    Ok(see_other(&workspace_href(&owner, &name)))
}

async fn build_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((owner, name, number)): Path<(String, String, i64)>,
) -> PageResult {
    let (ws, owner_user) = workspaces::find_workspace(&state, &viewer.0, &owner, &name).await?;
    let found = state
        .db
        .build_detail_by_number(&ws.id, number)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("workspace {name:?} has no build #{number}")))?;
    let build = builds::build_view(found)?;
    let logs = jobs::logs_page(&state, &build.job.id, 0, false).await?;
    let ctx = BuildPage::new(&owner_user.username, &ws.name, build, logs);
    page("build.html", &ctx, &viewer)
}

async fn template_list(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let mut rows = Vec::new();
    for t in templates::template_views(&state).await? {
        let parameters = create::active_form(&state, t.active_version_id.as_deref())
            .await?
            .params;
        rows.push(TemplateRow {
            template: t,
            parameters,
        });
    }
    page(
        "templates.html",
        &TemplatesPage {
            templates: rows,
            can_manage: viewer.0.user.role.can_manage_templates(),
        },
        &viewer,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_local_paths_are_destinations() {
        assert_eq!(local_path("/@owner/dev?x=1"), Some("/@owner/dev?x=1"));
        for bad in [
            "//evil.example",
            "/\\evil",
            "/\t/evil.example",
            "/\nx",
            "/ x",
            "https://e",
            "",
        ] {
            assert_eq!(local_path(bad), None, "{bad:?}");
        }
        assert_eq!(
            see_other("/\nx").headers()[header::LOCATION],
            "/",
            "an invalid header value goes home instead of panicking"
        );
    }
}
