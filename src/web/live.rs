//! Live pages: a page carries a version (a hash of what it shows) and listens on an SSE
//! stream that sends the new version whenever it changes; the page's script then fetches
//! the page again and swaps its `data-live` regions in place. No page reloads, no
//! client-side rendering: the server renders every state the same way.
//!
//! The stream re-reads what the page shows when any job changes on this server (builds
//! finishing, logs arriving) and every `RECHECK` otherwise (agents, usage, other replicas).
//! Each check runs the caller's authorization again, so a page whose workspace is deleted
//! or no longer visible gets `gone` and the stream ends.

use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::Serialize;

use super::{ListParams, Viewer, WebError, LIST_PAGE};
use crate::api::auth::Auth;
use crate::api::workspaces;
use crate::api::{builds, ApiError, AppState};
use crate::wire::workspaces::{ListQuery, WorkspaceView};

/// How often a stream checks for changes no job update announces.
const RECHECK: Duration = Duration::from_secs(2);
/// How long a stream lets job updates gather before it checks.
const SETTLE: Duration = Duration::from_millis(250);

/// A short hash of what a page shows.
pub fn version_of(value: &impl Serialize) -> String {
    let text = serde_json::to_string(value).unwrap_or_default();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// What a workspace page shows beyond the workspace's view: each agent's newest log
/// line and metadata values.
#[derive(Serialize)]
pub struct WorkspaceSnapshot<'a> {
    view: &'a WorkspaceView,
    logs: Vec<i64>,
    metadata: Vec<(String, String, String)>,
}

pub async fn workspace_snapshot<'a>(
    state: &AppState,
    view: &'a WorkspaceView,
) -> Result<WorkspaceSnapshot<'a>, ApiError> {
    let mut logs = Vec::new();
    let mut metadata = Vec::new();
    for a in view.agents() {
        let tail = state.db.tail_agent_logs(&a.id, 1).await?;
        logs.push(tail.last().map_or(0, |l| l.id));
        for m in crate::api::agents::metadata_views_by_id(state, &a.id).await? {
            metadata.push((m.key, m.value, m.error));
        }
    }
    Ok(WorkspaceSnapshot {
        view,
        logs,
        metadata,
    })
}

async fn workspace_version(
    state: &AppState,
    auth: &Auth,
    owner: &str,
    name: &str,
) -> Result<String, ApiError> {
    let auth = &crate::api::auth::recheck(state, auth).await?;
    let (ws, _) = workspaces::find_workspace(state, auth, owner, name).await?;
    let view = workspaces::view_of(state, &auth.user, &ws).await?;
    Ok(version_of(&workspace_snapshot(state, &view).await?))
}

/// `GET /@OWNER/NAME/live`: the workspace page's versions.
pub async fn workspace_changes(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
) -> Result<Response, WebError> {
    // Checked once here so a page that may not see the workspace gets its error page.
    workspace_version(&state, &viewer.0, &owner, &name).await?;
    let auth = viewer.0;
    let slot = StreamSlot::take(&auth.user.id)?;
    Ok(changes(state, slot, move |state| {
        let (auth, owner, name) = (auth.clone(), owner.clone(), name.clone());
        async move { workspace_version(&state, &auth, &owner, &name).await }
    })
    .into_response())
}

/// `GET /live?page=&search=`: the workspace list's versions.
pub async fn list_changes(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(params): Query<ListParams>,
) -> Result<Response, WebError> {
    let auth = viewer.0;
    let q = ListQuery {
        all: true,
        search: params.search.clone(),
        limit: Some(LIST_PAGE),
        offset: Some(params.page.max(0).saturating_mul(LIST_PAGE)),
    };
    workspaces::list_page(&state, &auth, &q).await?;
    let slot = StreamSlot::take(&auth.user.id)?;
    Ok(changes(state, slot, move |state| {
        let (auth, q) = (auth.clone(), q.clone());
        async move {
            let auth = crate::api::auth::recheck(&state, &auth).await?;
            let list = workspaces::list_page(&state, &auth, &q).await?;
            Ok(version_of(&list))
        }
    })
    .into_response())
}

#[derive(serde::Deserialize)]
pub struct PreviewQuery {
    preview: String,
}

/// `GET /@OWNER/NAME/update/live?preview=JOB`: the preview page's version (whether its
/// plan is done).
pub async fn preview_changes(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
    Query(q): Query<PreviewQuery>,
) -> Result<Response, WebError> {
    let auth = viewer.0;
    let slot = StreamSlot::take(&auth.user.id)?;
    let check = move |state: AppState| {
        let (auth, owner, name, job) =
            (auth.clone(), owner.clone(), name.clone(), q.preview.clone());
        async move {
            let auth = crate::api::auth::recheck(&state, &auth).await?;
            let (ws, _) = workspaces::find_workspace(&state, &auth, &owner, &name).await?;
            let job = builds::preview_job(&state, &ws.id, &job).await?;
            Ok(version_of(&job.status.is_final()))
        }
    };
    check(state.clone()).await?;
    Ok(changes(state, slot, check).into_response())
}

/// An SSE stream of `version` events, one whenever `check` answers something new (the
/// first at once), and a last `gone` event when `check` fails.
fn changes<F, Fut>(
    state: AppState,
    slot: StreamSlot,
    check: F,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>>
where
    F: Fn(AppState) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<String, ApiError>> + Send,
{
    let updates = state.job_updates.subscribe();
    let start = (state, check, updates, None::<String>, false);
    let events = futures::stream::unfold(
        start,
        |(state, check, mut updates, last, done)| async move {
            if done {
                return None;
            }
            loop {
                match check(state.clone()).await {
                    Ok(version) if last.as_ref() != Some(&version) => {
                        let event = Event::default().event("version").data(version.clone());
                        return Some((Ok(event), (state, check, updates, Some(version), false)));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let event = Event::default().event("gone").data(e.to_string());
                        return Some((Ok(event), (state, check, updates, last, true)));
                    }
                }
                let _ = tokio::time::timeout(RECHECK, updates.recv()).await;
                // A build logs many lines a second: check at most a few times a second.
                tokio::time::sleep(SETTLE).await;
                while updates.try_recv().is_ok() {}
            }
        },
    );
    // The slot is held as long as the stream is.
    let events = futures::StreamExt::map(events, move |e| {
        let _held = &slot;
        e
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// Live streams one user may hold at once (each re-reads the database every few
/// seconds); a browser opens one per tab.
const STREAMS_PER_USER: usize = 32;

/// Live streams open per user in this process.
static STREAMS: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, usize>>> =
    std::sync::LazyLock::new(Default::default);

/// One of a user's live streams; given back when dropped.
pub struct StreamSlot(String);

impl StreamSlot {
    fn take(user_id: &str) -> Result<StreamSlot, ApiError> {
        let mut open = STREAMS.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(user_id.to_string()).or_default();
        if *n >= STREAMS_PER_USER {
            return Err(ApiError::TooManyRequests(format!(
                "{STREAMS_PER_USER} live pages are open for this user already: close some tabs"
            )));
        }
        *n += 1;
        Ok(StreamSlot(user_id.to_string()))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = STREAMS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.0) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.0);
            }
        }
    }
}
