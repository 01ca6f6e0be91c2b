//! The web UI: server-rendered pages over the same plain functions the REST API calls.
//! Pages authenticate with the `hangar_session` cookie (the API's `Auth` reads it too);
//! a build page follows its log live through the API's SSE stream.

mod views;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use crate::api::auth::{Auth, SESSION_COOKIE};
use crate::api::workspaces::{self, BuildRequest, ListQuery};
use crate::api::{jobs, templates, users, ApiError, AppState};
use crate::model::parameter::Parameter;
use crate::model::Transition;
use views::*;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(workspace_list))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/templates", get(template_list))
        .route("/@:owner/:name", get(workspace_page))
        .route("/@:owner/:name/builds", post(build))
        .route("/@:owner/:name/builds/:number", get(build_page))
        .with_state(state)
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
                tracing::error!(error = format!("{err:#}"), "internal error");
                format!("internal server error: {err:#}")
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
    Redirect::to(to).into_response()
}

async fn login_form() -> PageResult {
    Ok(Html(render("login.html", &LoginPage::default(), None)?).into_response())
}

#[derive(Deserialize)]
struct LoginForm {
    login: String,
    password: String,
}

async fn login(State(state): State<AppState>, Form(form): Form<LoginForm>) -> PageResult {
    let req = users::LoginRequest {
        login: form.login,
        password: form.password,
    };
    let session = match users::login_user(&state, &req).await {
        Ok(s) => s,
        Err(ApiError::Unauthorized(message)) => {
            let page = LoginPage {
                login: req.login,
                error: Some(message),
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
    let mut resp = see_other("/");
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

async fn workspace_list(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    // Owners and template-admins see everyone's workspaces; members their own.
    let q = ListQuery {
        all: true,
        search: String::new(),
    };
    let list = workspaces::list_views(&state, &viewer.0, &q).await?;
    let ctx = ListPage {
        workspaces: list.iter().map(ListRow::from).collect(),
    };
    page("workspaces.html", &ctx, &viewer)
}

async fn workspace_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
) -> PageResult {
    let (ws, owner_user) = workspaces::find_workspace(&state, &viewer.0, &owner, &name).await?;
    let ws = workspaces::workspace_view(&state, ws, &owner_user).await?;
    page("workspace.html", &WorkspacePage::new(ws), &viewer)
}

#[derive(Deserialize)]
struct BuildForm {
    transition: Transition,
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
    workspaces::queue_build(&state, &viewer.0, &owner, &name, req).await?;
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
        .list_builds(&ws.id)
        .await?
        .into_iter()
        .find(|b| b.build.number == number)
        .ok_or_else(|| ApiError::NotFound(format!("workspace {name:?} has no build #{number}")))?;
    let build = workspaces::build_view(&state, found).await?;
    let logs = jobs::logs_page(&state, &build.job.id, 0, false).await?;
    let ctx = BuildPage::new(&owner_user.username, &ws.name, build, logs);
    page("build.html", &ctx, &viewer)
}

async fn template_list(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let mut rows = Vec::new();
    for t in templates::template_views(&state).await? {
        let parameters: Vec<Parameter> = match &t.active_version_id {
            Some(id) => match state.db.get_template_version(id).await? {
                Some(v) => serde_json::from_str(&v.parameters).unwrap_or_default(),
                None => Vec::new(),
            },
            None => Vec::new(),
        };
        rows.push(TemplateRow {
            template: t,
            parameters,
        });
    }
    page(
        "templates.html",
        &TemplatesPage { templates: rows },
        &viewer,
    )
}
