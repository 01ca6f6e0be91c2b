//! Apps proxied at `/@OWNER/WORKSPACE.AGENT/apps/SLUG/…` (and any listening port, for
//! the workspace's owner, at `/@OWNER/WORKSPACE.AGENT/ports/PORT/…`): each request is sent over a
//! TCP stream of the agent's tunnel to the app's port in the workspace, speaking HTTP/1.1
//! (hyper), WebSocket upgrades included, bodies streamed both ways. Who may open an app
//! is its `share`: `owner` (the workspace's owner), `authenticated` (anyone logged in),
//! `public` (anyone). The session cookie never reaches the app, redirects to the app's
//! own origin or absolute paths are rewritten under the proxy path, and a page someone
//! else's workspace serves is sandboxed (an opaque origin: its scripts cannot call this
//! server as the viewer).

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use hyper_util::rt::TokioIo;

use crate::api::auth::{Auth, SESSION_COOKIE};
use crate::api::{ApiError, AppState};
use crate::tunnel::StreamRequest;
use crate::wire::agent::AppSpec;

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1); `upgrade` and
/// `connection` are put back for WebSocket requests.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What a page from someone else's workspace may do: run, but as an opaque origin.
const SANDBOX: &str = "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads";

/// `/@OWNER/WORKSPACE.AGENT/apps/SLUG`: the same with a slash, so relative links resolve.
pub async fn without_slash(uri: Uri) -> Response {
    let mut to = format!("{}/", uri.path());
    if let Some(q) = uri.query() {
        to.push('?');
        to.push_str(q);
    }
    Redirect::permanent(&to).into_response()
}

pub async fn proxy(
    State(state): State<AppState>,
    auth: Option<Auth>,
    Path(p): Path<std::collections::HashMap<String, String>>,
    request: Request,
) -> Response {
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or_default();
    let (owner, target) = (get("owner"), get("target"));
    let what = match p.get("port") {
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => What::Port(port),
            _ => return (StatusCode::NOT_FOUND, "not a port\n").into_response(),
        },
        None => What::App(get("slug")),
    };
    // A WebSocket handshake is a GET, which the origin check of state-changing requests
    // lets by: a page elsewhere must not open the app's socket with the visitor's cookie.
    if is_upgrade(request.headers()) {
        if let Err(e) = crate::api::guard::check_source(&state.config.access_url, request.headers())
        {
            return refused(e);
        }
    }
    let place = Place {
        owner,
        target,
        what,
        mount: Mount::Path,
    };
    match serve(&state, auth.as_ref(), place, request).await {
        Ok(r) => r,
        Err(Refusal::Login) => Redirect::to("/login").into_response(),
        Err(Refusal::Error(e)) => refused(e),
    }
}

/// An app request's error as plain text (the app's page, not Hangar's JSON API).
pub(super) fn refused(e: ApiError) -> Response {
    let (status, message) = match &e {
        ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m.clone()),
        ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m.clone()),
        ApiError::Conflict(m) => (StatusCode::BAD_GATEWAY, m.clone()),
        ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
        ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, m.clone()),
        _ => return e.into_response(),
    };
    (status, format!("{message}\n")).into_response()
}

/// What the path names: an app by slug, or a listening port (its owner's alone).
#[derive(Clone, Copy)]
pub(super) enum What<'a> {
    App(&'a str),
    Port(u16),
}

/// Where the proxy serves an app from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mount {
    /// Under `/@OWNER/WORKSPACE.AGENT/apps/SLUG/` on Hangar's own origin.
    Path,
    /// At the root of the app's own host under the wildcard access URL.
    Subdomain,
}

/// The app a request is for.
pub(super) struct Place<'a> {
    pub owner: &'a str,
    /// `WORKSPACE` or `WORKSPACE.AGENT`.
    pub target: &'a str,
    pub what: What<'a>,
    pub mount: Mount,
}

pub(super) enum Refusal {
    Login,
    Error(ApiError),
}

impl<E: Into<ApiError>> From<E> for Refusal {
    fn from(e: E) -> Self {
        Refusal::Error(e.into())
    }
}

/// The app's address in the workspace, from its `url`.
struct AppUrl {
    /// `host:port` for the Host header.
    authority: String,
    port: u16,
    /// The path the app is served under, without a trailing slash.
    base: String,
}

fn parse_app_url(url: &str) -> Option<AppUrl> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let port = match authority.rsplit_once(':') {
        Some((_, p)) => p.parse().ok()?,
        None => 80,
    };
    Some(AppUrl {
        authority: authority.to_string(),
        port,
        base: path.trim_end_matches('/').to_string(),
    })
}

pub(super) async fn serve(
    state: &AppState,
    auth: Option<&Auth>,
    place: Place<'_>,
    mut request: Request,
) -> Result<Response, Refusal> {
    let Place {
        owner,
        target,
        what,
        mount,
    } = place;
    let slug = match what {
        What::App(slug) => slug.to_string(),
        What::Port(port) => format!("port {port}"),
    };
    let not_found = || ApiError::NotFound(format!("no app {slug:?} on {owner}/{target}"));
    let (workspace, agent_name) = match target.split_once('.') {
        Some((w, a)) => (w, Some(a)),
        None => (target, None),
    };
    let owner_user = state
        .db
        .get_user_by_name(owner)
        .await?
        .ok_or_else(not_found)?;
    let ws = state
        .db
        .get_workspace_by_name(&owner_user.id, workspace)
        .await?
        .ok_or_else(not_found)?;
    let latest = state.db.latest_build(&ws.id).await?.ok_or_else(not_found)?;
    let agents = state.db.list_agents(&latest.build.id).await?;
    let agent = match agent_name {
        Some(name) => agents.iter().find(|a| a.name == name),
        None if agents.len() == 1 => agents.first(),
        None => None,
    }
    .ok_or_else(not_found)?;
    let spec = agent.spec()?;
    let port_app;
    let app: &AppSpec = match what {
        // A subdomain serves only the apps made for one; a path serves every app.
        What::App(slug) => spec
            .apps
            .iter()
            .find(|a| a.slug == slug && (mount == Mount::Path || a.subdomain))
            .ok_or_else(not_found)?,
        What::Port(port) => {
            port_app = AppSpec {
                slug: slug.clone(),
                url: format!("http://localhost:{port}/"),
                share: "owner".into(),
                ..Default::default()
            };
            &port_app
        }
    };
    let viewer_is_owner = auth.is_some_and(|a| a.user.id == owner_user.id);
    match app.share.as_str() {
        "public" => {}
        "authenticated" if auth.is_some() => {}
        "authenticated" => return Err(Refusal::Login),
        // `owner`, and anything unknown, is the owner's alone.
        _ if viewer_is_owner => {}
        _ if auth.is_none() => return Err(Refusal::Login),
        _ => {
            return Err(ApiError::Forbidden(format!(
                "app {slug:?} of {owner}/{workspace} is shared with its owner only"
            ))
            .into())
        }
    }
    let url = parse_app_url(&app.url).ok_or_else(|| {
        ApiError::NotFound(format!(
            "app {slug:?} has no http:// url to proxy (command apps open in the terminal, external ones are links)"
        ))
    })?;

    let (stream, _) =
        crate::api::sessions::open(state, &agent.id, &StreamRequest::Tcp { port: url.port })
            .await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ApiError::Conflict(format!("app {slug:?} did not speak HTTP: {e}")))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });

    let prefix = match (mount, what) {
        (Mount::Subdomain, _) => String::new(),
        (Mount::Path, What::App(slug)) => format!("/@{owner}/{target}/apps/{slug}"),
        (Mount::Path, What::Port(port)) => format!("/@{owner}/{target}/ports/{port}"),
    };
    let upgrade = is_upgrade(request.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let (parts, body) = request.into_parts();
    let rest = app_path(parts.uri.path(), mount)
        .ok_or_else(|| ApiError::BadRequest("a path segment is `.` or `..`".into()))?;
    let mut path = format!("{}/{rest}", url.base);
    if let Some(q) = parts.uri.query() {
        path.push('?');
        path.push_str(q);
    }
    let mut out = hyper::Request::builder()
        .method(parts.method.clone())
        .uri(path)
        .body(body)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    *out.headers_mut() = forwarded_headers(&parts.headers, &url.authority, upgrade);
    let mut response = sender
        .send_request(out)
        .await
        .map_err(|e| ApiError::Conflict(format!("app {slug:?} did not answer: {e}")))?;

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let app_side = hyper::upgrade::on(&mut response);
        if let Some(client_side) = client_upgrade {
            // A socket is a session: audited, and cut when its user's token or the
            // agent stops being valid, as the other sessions are.
            let (state, auth) = (state.clone(), auth.cloned());
            let (agent_id, place) = (agent.id.clone(), format!("{owner}/{target}"));
            let detail = format!("app {slug} websocket");
            tokio::spawn(async move {
                if let (Ok(client), Ok(app)) = (client_side.await, app_side.await) {
                    let mut client = TokioIo::new(client);
                    let mut app = TokioIo::new(app);
                    let audit = crate::api::sessions::SessionAudit::start(
                        &state,
                        auth.as_ref(),
                        &place,
                        &detail,
                    )
                    .await;
                    let outcome = tokio::select! {
                        r = tokio::io::copy_bidirectional(&mut client, &mut app) => match r {
                            Ok((up, down)) => format!("{up} bytes in, {down} out"),
                            Err(e) => format!("ended: {e}"),
                        },
                        why = crate::api::sessions::ended(&state, auth.as_ref(), &agent_id) => {
                            format!("cut: {why}")
                        }
                    };
                    audit.end(&state, &outcome).await;
                }
            });
        }
    }
    let (mut parts, body) = response.into_parts();
    rewrite_location(&mut parts.headers, &url, &prefix);
    keep_hangar_cookies(&mut parts.headers);
    // On Hangar's origin, a page of someone else's workspace runs as an opaque origin; a
    // subdomain app has an origin of its own already.
    if !viewer_is_owner && mount == Mount::Path {
        parts.headers.append(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(SANDBOX),
        );
    }
    // The app's own headers stand; these fill in what Hangar's defaults would forbid.
    parts
        .headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static("frame-ancestors 'self'"));
    parts
        .headers
        .entry(header::X_FRAME_OPTIONS)
        .or_insert(HeaderValue::from_static("SAMEORIGIN"));
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// The part of the request's path the app gets, still percent-encoded as the browser
/// sent it (decoding would turn `%2F` into a separator and `%20` into an invalid URI), or
/// `None` when a segment is `.` or `..` in any spelling: the path must stay under the
/// app's own base.
fn app_path(raw: &str, mount: Mount) -> Option<&str> {
    let rest = match mount {
        // `/@OWNER/TARGET/apps/SLUG/REST` (or `/ports/PORT/REST`).
        Mount::Path => raw.splitn(6, '/').nth(5).unwrap_or(""),
        Mount::Subdomain => raw.strip_prefix('/').unwrap_or(raw),
    };
    let dots = |seg: &str| {
        let s = seg.to_ascii_lowercase().replace("%2e", ".");
        s == "." || s == ".."
    };
    (!rest.split('/').any(dots)).then_some(rest)
}

pub(super) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
        && headers.contains_key(header::UPGRADE)
}

/// The request's headers for the app: hop-by-hop ones dropped (the upgrade put back),
/// Hangar's session cookie and token headers removed, `Host` the app's own.
fn forwarded_headers(incoming: &HeaderMap, authority: &str, upgrade: bool) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in incoming {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n)
            || n == "host"
            || n == "cookie"
            || n == "authorization"
            || n.starts_with("coder-session")
            || n.starts_with("hangar-session")
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    if let Some(cookies) = kept_cookies(incoming) {
        out.insert(header::COOKIE, cookies);
    }
    if let Ok(host) = HeaderValue::from_str(authority) {
        out.insert(header::HOST, host);
    }
    if upgrade {
        out.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        if let Some(u) = incoming.get(header::UPGRADE) {
            out.insert(header::UPGRADE, u.clone());
        }
    }
    out
}

/// The request's cookies without Hangar's session.
fn kept_cookies(headers: &HeaderMap) -> Option<HeaderValue> {
    let kept: Vec<&str> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| {
            !c.is_empty()
                && !c.starts_with(&format!("{SESSION_COOKIE}="))
                && !c.starts_with(&format!("{}=", super::subdomain::APP_COOKIE))
        })
        .collect();
    (!kept.is_empty())
        .then(|| HeaderValue::from_str(&kept.join("; ")).ok())
        .flatten()
}

/// An app may set its own cookies, never Hangar's (a fixed or cleared session), and may
/// not wipe the browser's data for Hangar's origin.
fn keep_hangar_cookies(headers: &mut HeaderMap) {
    let kept: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|v| {
            // Bytes a browser may read differently (non-UTF-8), or a cookie without a
            // name (a browser stores `=hangar_x=v` as `hangar_x=v`), are dropped outright.
            let Ok(text) = std::str::from_utf8(v.as_bytes()) else {
                return false;
            };
            let Some((name, _)) = text.split_once('=') else {
                return false;
            };
            let name = name.trim().to_ascii_lowercase();
            !name.is_empty() && !name.starts_with("hangar")
        })
        .cloned()
        .collect();
    headers.remove(header::SET_COOKIE);
    for v in kept {
        headers.append(header::SET_COOKIE, v);
    }
    headers.remove("clear-site-data");
}

/// A redirect to the app's own origin, or to an absolute path on it, stays in the proxy.
fn rewrite_location(headers: &mut HeaderMap, url: &AppUrl, prefix: &str) {
    let Some(location) = headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let origins = [
        format!("http://{}", url.authority),
        format!("http://localhost:{}", url.port),
        format!("http://127.0.0.1:{}", url.port),
    ];
    let path = origins
        .iter()
        .find_map(|o| location.strip_prefix(o.as_str()))
        .or_else(|| location.starts_with('/').then_some(location));
    if let Some(path) = path {
        let path = path.strip_prefix(url.base.as_str()).unwrap_or(path);
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        if let Ok(v) = HeaderValue::from_str(&format!("{prefix}{path}")) {
            headers.insert(header::LOCATION, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_urls_parse() {
        let u = parse_app_url("http://localhost:8080/ui/").unwrap();
        assert_eq!(
            (u.authority.as_str(), u.port, u.base.as_str()),
            ("localhost:8080", 8080, "/ui")
        );
        let u = parse_app_url("http://127.0.0.1").unwrap();
        assert_eq!((u.port, u.base.as_str()), (80, ""));
        assert!(parse_app_url("https://x").is_none());
        assert!(parse_app_url("http://x:notaport/").is_none());
    }

    #[test]
    fn the_session_never_reaches_the_app() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; hangar_session=secret; b=2; hangar_app_session=s"),
        );
        h.append(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer secret"),
        );
        h.append(header::HOST, HeaderValue::from_static("hangar.example"));
        h.append("x-app", HeaderValue::from_static("kept"));
        let out = forwarded_headers(&h, "localhost:8080", false);
        assert_eq!(out[header::COOKIE], "a=1; b=2");
        assert_eq!(out[header::HOST], "localhost:8080");
        assert!(out.get(header::AUTHORIZATION).is_none());
        assert_eq!(out["x-app"], "kept");
        let only = forwarded_headers(
            &HeaderMap::from_iter([(header::COOKIE, HeaderValue::from_static("hangar_session=s"))]),
            "x",
            false,
        );
        assert!(only.get(header::COOKIE).is_none());
    }

    #[test]
    fn apps_cannot_touch_hangars_cookies() {
        let mut h = HeaderMap::new();
        for c in [
            "hangar_session=fixed; Path=/",
            "HANGAR_APP_SESSION=x; Domain=apps.example.com",
            "=hangar_oauth_state=github.x; Path=/external-auth",
            " hangar_session=padded",
            "theme=dark; Path=/",
        ] {
            h.append(header::SET_COOKIE, HeaderValue::from_static(c));
        }
        // A browser may read non-UTF-8 bytes its own way: such a cookie goes too.
        h.append(
            header::SET_COOKIE,
            HeaderValue::from_bytes(b"hangar_session=FIXED; Path=/; Y=\xe9").unwrap(),
        );
        h.insert("clear-site-data", HeaderValue::from_static("\"cookies\""));
        keep_hangar_cookies(&mut h);
        let left: Vec<_> = h.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(left, vec!["theme=dark; Path=/"]);
        assert!(h.get("clear-site-data").is_none());
    }

    #[test]
    fn the_app_gets_the_raw_path_and_never_a_way_out() {
        assert_eq!(
            app_path("/@o/w.a/apps/s/a%20b/c%2Fd?", Mount::Path),
            Some("a%20b/c%2Fd?")
        );
        assert_eq!(app_path("/@o/w.a/apps/s/", Mount::Path), Some(""));
        assert_eq!(app_path("/@o/w.a/apps/s", Mount::Path), Some(""));
        assert_eq!(app_path("/x/y", Mount::Subdomain), Some("x/y"));
        for bad in [
            "/@o/w.a/apps/s/../own/x",
            "/@o/w.a/apps/s/%2e%2e/own",
            "/@o/w.a/apps/s/a/%2E/b",
            "/@o/w.a/apps/s/.%2E",
        ] {
            assert_eq!(app_path(bad, Mount::Path), None, "{bad}");
        }
        assert_eq!(app_path("/a/../b", Mount::Subdomain), None);
        // Dots inside a name are fine.
        assert_eq!(app_path("/@o/w.a/apps/s/.env", Mount::Path), Some(".env"));
    }

    #[test]
    fn redirects_stay_in_the_proxy() {
        let url = parse_app_url("http://localhost:8080/ui").unwrap();
        for (from, to) in [
            ("http://localhost:8080/ui/login", "/@o/w.a/apps/s/login"),
            ("/ui/next?x=1", "/@o/w.a/apps/s/next?x=1"),
            ("/elsewhere", "/@o/w.a/apps/s/elsewhere"),
            ("https://example.com/", "https://example.com/"),
        ] {
            let mut h =
                HeaderMap::from_iter([(header::LOCATION, HeaderValue::from_str(from).unwrap())]);
            rewrite_location(&mut h, &url, "/@o/w.a/apps/s");
            assert_eq!(h[header::LOCATION], to, "{from}");
        }
    }
}
