//! `/api/v2/jobs/{id}…`: a job's status and its log lines, with a long-poll so clients
//! follow a running build live without a busy loop.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::Json;

use super::auth::Auth;
use super::{ApiError, ApiResult, AppState};
use crate::db::jobs::Job as JobRow;
use crate::wire::jobs::{Job, LogsPage, LogsQuery, StreamQuery};

pub async fn job_or_404(state: &AppState, id: &str) -> ApiResult<JobRow> {
    state
        .db
        .get_job(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no job {id:?}")))
}

pub async fn get(
    State(state): State<AppState>,
    _auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Job>> {
    Ok(Json(super::convert::job(job_or_404(&state, &id).await?)?))
}

pub async fn logs(
    State(state): State<AppState>,
    _auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> ApiResult<Json<LogsPage>> {
    Ok(Json(logs_page(&state, &id, q.after, q.wait).await?))
}

/// Lines after `after`; with `wait`, holds the request until there are some or the job ends.
pub async fn logs_page(state: &AppState, id: &str, after: i64, wait: bool) -> ApiResult<LogsPage> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut updates = state.job_updates.subscribe();
    loop {
        let logs = state.db.list_job_logs(id, after).await?;
        let job = job_or_404(state, id).await?;
        if !wait
            || !logs.is_empty()
            || job.status.is_final()
            || tokio::time::Instant::now() >= deadline
        {
            return Ok(LogsPage {
                logs: logs.into_iter().map(Into::into).collect(),
                job: super::convert::job(job)?,
            });
        }
        // Woken by this server's provisioners; the timeout covers jobs run elsewhere.
        let _ = tokio::time::timeout(Duration::from_millis(500), updates.recv()).await;
    }
}

/// `GET /jobs/{id}/logs/stream[?after=ID]`: Server-Sent Events, one `log` event per line
/// as it is written, then one `end` event carrying the finished job.
pub async fn stream(
    State(state): State<AppState>,
    _auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<StreamQuery>,
) -> ApiResult<
    axum::response::sse::Sse<
        impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
    >,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures::StreamExt;

    job_or_404(&state, &id).await?;
    let events = futures::stream::unfold(
        (state, id, q.after, false),
        |(state, id, after, done)| async move {
            if done {
                return None;
            }
            let page = logs_page(&state, &id, after, true).await.ok()?;
            let last = page.logs.last().map(|l| l.id).unwrap_or(after);
            let finished = page.job.status.is_final() && page.logs.is_empty();
            let events: Vec<Event> = if finished {
                vec![Event::default().event("end").json_data(&page.job).ok()?]
            } else {
                page.logs
                    .iter()
                    .filter_map(|l| Event::default().event("log").json_data(l).ok())
                    .collect()
            };
            Some((
                futures::stream::iter(events.into_iter().map(Ok)),
                (state, id, last, finished),
            ))
        },
    )
    .flatten();
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
