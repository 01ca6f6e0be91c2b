//! `GET /metrics` (Prometheus text format, behind `--metrics-token` when one is set) and
//! the middleware that times every HTTP request by its route pattern.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::{bearer, hashes_equal};
use super::AppState;
use crate::model::secret::hash_token;

/// Counts and times a request under its route pattern (`/api/v2/workspaces/:owner/:name`,
/// never the path itself: paths carry names, and their number is unbounded).
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    // Methods from a fixed set: a client can send any token as a method, and each label
    // value would be a new series kept forever.
    let method = match req.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => m,
        _ => "other",
    }
    .to_string();
    let start = Instant::now();
    let response = next.run(req).await;
    let m = &state.metrics;
    m.http_request_seconds
        .with_label_values(&[&route, &method])
        .observe(start.elapsed().as_secs_f64());
    m.http_requests
        .with_label_values(&[&route, &method, response.status().as_str()])
        .inc();
    response
}

/// `GET /metrics`: refreshes the gauges of current state, then renders everything.
pub async fn scrape(State(state): State<AppState>, parts: axum::http::request::Parts) -> Response {
    if let Some(want) = &state.config.metrics_token_hash {
        let given = bearer(&parts).map(|t| hash_token(&t));
        if !given.is_some_and(|g| hashes_equal(&g, want)) {
            return (
                StatusCode::UNAUTHORIZED,
                "metrics need `Authorization: Bearer <token>` with the server's --metrics-token\n",
            )
                .into_response();
        }
    }
    let m = &state.metrics;
    match state.db.count_pending_jobs().await {
        Ok(n) => m.jobs_pending.set(n),
        Err(e) => tracing::warn!(error = %e, "counting pending jobs for /metrics"),
    }
    m.agents_connected.set(state.agent_conns.connected() as i64);
    let (size, idle) = state.db.pool_use();
    m.db_connections
        .with_label_values(&["idle"])
        .set(idle as i64);
    m.db_connections
        .with_label_values(&["in_use"])
        .set((size as usize).saturating_sub(idle) as i64);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.render(),
    )
        .into_response()
}
