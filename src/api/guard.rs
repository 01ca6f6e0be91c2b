//! What every request and response of the server passes through, API and web alike:
//! the cross-site request check for cookie sessions, and the browser security headers.

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::{CODER_SESSION_HEADER, SESSION_COOKIE, SESSION_HEADER};
use super::{ApiError, AppState};

/// Scripts only from this server (no inline script), nothing framed, forms post here only.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
frame-ancestors 'none'; form-action 'self'";

/// A browser sends the session cookie with requests other sites make it send (a form
/// posted from a sibling origin, which `SameSite=Lax` does not stop). So a state-changing
/// request authenticated by the cookie must come from a page of this server: its `Origin`
/// (or, without one, its `Referer`) names this server's host. Clients that send their
/// token in a header are not browsers acting for another site, and pass.
pub async fn same_origin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Err(e) = check_origin(
        &state.config.access_url,
        request.method(),
        request.headers(),
    ) {
        return e.into_response();
    }
    next.run(request).await
}

pub fn check_origin(
    access_url: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    check_source(access_url, headers)
}

/// The rule for requests that change something: a browser's `Origin` (or `Referer`)
/// must be this server, and a cookie-authenticated request must carry one. WebSocket
/// handshakes are GETs that open sessions into workspaces, so they are checked with it
/// too (a page elsewhere could otherwise open a shell with the visitor's cookie).
pub fn check_source(access_url: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    let header_token = headers.contains_key(header::AUTHORIZATION)
        || headers.contains_key(SESSION_HEADER)
        || headers.contains_key(CODER_SESSION_HEADER);
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(';')
                .any(|c| c.trim().starts_with(&format!("{SESSION_COOKIE}=")))
        });
    let source = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    let ours = |url: &str| {
        let host = authority(url);
        host.is_some()
            && (host == authority(access_url)
                || host == headers.get(header::HOST).and_then(|h| h.to_str().ok()))
    };
    match source {
        // A browser said where the request comes from: it must be us, cookie or not
        // (a login form posted from elsewhere would log the victim in as the attacker).
        Some(url) if !ours(url) => Err(ApiError::Forbidden(format!(
            "cross-site request refused: it comes from {url}, not from this server's pages"
        ))),
        None if cookie && !header_token => Err(ApiError::Forbidden(
            "cross-site request refused: a request authenticated by the session cookie must carry an Origin header; API clients send `Authorization: Bearer <token>` instead".into(),
        )),
        _ => Ok(()),
    }
}

/// `host[:port]` of an absolute URL.
fn authority(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&rest[..end]).filter(|a| !a.is_empty())
}

/// axum's own rejections (a body that is not the expected JSON, a bad path or query, a
/// wrong method) answer plain text; API clients get every error as an `ErrorBody`.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let response = next.run(request).await;
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    if !api
        || !plain
        || !(response.status().is_client_error() || response.status().is_server_error())
    {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let message = match String::from_utf8_lossy(&text).trim() {
        "" => parts
            .status
            .canonical_reason()
            .unwrap_or("error")
            .to_string(),
        t => t.to_string(),
    };
    let body = super::ErrorBody {
        message,
        ..Default::default()
    };
    (parts.status, axum::Json(body)).into_response()
}

pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: &'static str, value: &'static str| {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    };
    set(headers, "content-security-policy", CSP);
    set(headers, "x-frame-options", "DENY");
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "referrer-policy", "same-origin");
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn cookie_requests_must_come_from_our_pages() {
        let url = "http://hangar.example:3000";
        let post = Method::POST;
        let cookie = ("cookie", "hangar_session=s3cret");
        let ok = |h: &[(&'static str, &str)]| check_origin(url, &post, &headers(h)).is_ok();
        assert!(ok(&[cookie, ("origin", "http://hangar.example:3000")]));
        assert!(ok(&[
            cookie,
            ("host", "10.0.0.5:3000"),
            ("origin", "http://10.0.0.5:3000")
        ]));
        assert!(ok(&[
            cookie,
            ("referer", "http://hangar.example:3000/@a/b")
        ]));
        assert!(!ok(&[
            cookie,
            ("origin", "http://evil.hangar.example:3000")
        ]));
        assert!(!ok(&[cookie, ("origin", "null")]));
        assert!(!ok(&[cookie]));
        // Bearer clients (the CLI) send no Origin; a browser cannot add the header cross-site.
        assert!(ok(&[cookie, ("authorization", "Bearer x")]));
        assert!(ok(&[("authorization", "Bearer x")]));
        assert!(!ok(&[("origin", "http://evil.example")]));
        assert!(check_origin(url, &Method::GET, &headers(&[cookie])).is_ok());
    }
}
