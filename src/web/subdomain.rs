//! Subdomain apps: with `--wildcard-access-url '*.apps.example.com'`, an app with
//! `subdomain = true` is served at the root of its own host,
//! `SLUG--AGENT--WORKSPACE--OWNER.apps.example.com`, for apps that cannot live under a
//! path prefix.
//!
//! Hangar's session cookie belongs to Hangar's host and never reaches these hosts, so a
//! browser gets an app token per host: an app host that needs a login redirects to
//! `/app-auth` on Hangar's origin, which (for a logged-in user) makes a token that opens
//! that one host and nothing else, and sends the browser back with it in the query; the
//! app host turns it into its own HttpOnly cookie and redirects to the clean URL, so the
//! app never sees it. The proxy itself is the path-based one (`web::apps`), with the same
//! `share` rules.

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::apps::{self, Mount, Place, Refusal, What};
use crate::api::auth::{authenticate, Auth, TokenUse, APP_LOGIN_TYPE};
use crate::api::{ApiError, ApiResult, AppState};
use crate::config::Wildcard;
use crate::db::tokens::ApiToken;
use crate::model::secret::{generate_token, hash_token};
use crate::model::{new_id, now_ms};

/// The cookie that holds an app host's token, on that host only.
pub const APP_COOKIE: &str = "hangar_app_session";
/// The query parameter `/app-auth` hands the token over in.
const TOKEN_PARAM: &str = "hangar_app_token";
/// The round trip's nonce: a cookie on the app host before it, a parameter back, so a
/// token link someone else made (theirs) is refused (no login fixation).
const STATE_COOKIE: &str = "hangar_app_state";
const STATE_PARAM: &str = "hangar_app_state";
/// How long an app token lasts: a day of use, then the round trip again.
const APP_TOKEN_TTL_MS: i64 = 24 * 60 * 60 * 1000;
/// Ways to read a host's label that are looked up, at most (names may contain `--`).
const MAX_SPLITS: usize = 16;

/// The ways a label reads as `SLUG--AGENT--WORKSPACE--OWNER` (names may hold `--`
/// themselves), each part non-empty; at most [`MAX_SPLITS`].
pub fn splits(label: &str) -> Vec<[&str; 4]> {
    let seps: Vec<usize> = label.match_indices("--").map(|(i, _)| i).collect();
    let mut out = Vec::new();
    for (n, &i) in seps.iter().enumerate() {
        for (m, &j) in seps.iter().enumerate().skip(n + 1) {
            for &k in seps.iter().skip(m + 1) {
                if j < i + 3 || k < j + 3 || i == 0 || k + 2 >= label.len() {
                    continue;
                }
                out.push([
                    &label[..i],
                    &label[i + 2..j],
                    &label[j + 2..k],
                    &label[k + 2..],
                ]);
                if out.len() == MAX_SPLITS {
                    return out;
                }
            }
        }
    }
    out
}

/// In front of every route: a request for an app host is the app's; the rest go on.
pub async fn route(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(wildcard) = state.config.wildcard.clone() else {
        return next.run(request).await;
    };
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    match host.and_then(|h| wildcard.label(&h)) {
        Some(label) => serve(&state, &wildcard, &label, request)
            .await
            .unwrap_or_else(apps::refused),
        None => next.run(request).await,
    }
}

async fn serve(
    state: &AppState,
    wildcard: &Wildcard,
    label: &str,
    request: Request,
) -> ApiResult<Response> {
    let host = wildcard.host(label);
    let [slug, agent, workspace, owner] = resolve(state, label).await?;
    let origin = format!("{}://{host}{}", wildcard.scheme(), wildcard.port());
    let secure = if wildcard.scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    // The round trip through /app-auth ends here: the token becomes this host's cookie,
    // if this browser started the round trip.
    if let Some(token) = query_param(request.uri().query(), TOKEN_PARAM) {
        let nonce = query_param(request.uri().query(), STATE_PARAM);
        if nonce.is_none() || nonce != cookie(&request, STATE_COOKIE) {
            return Err(ApiError::BadRequest(
                "this app login was not started by this browser: open the app again".into(),
            ));
        }
        authenticate(state, &token, TokenUse::App(&host)).await?;
        let session = format!(
            "{APP_COOKIE}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{secure}",
            APP_TOKEN_TTL_MS / 1000
        );
        let done = format!("{STATE_COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0{secure}");
        // Absolute, on this host: a path like `//elsewhere` stays here.
        let clean = without_params(request.uri(), &[TOKEN_PARAM, STATE_PARAM]);
        let mut resp = Redirect::to(&format!("{origin}{clean}")).into_response();
        for c in [session, done] {
            resp.headers_mut().append(
                header::SET_COOKIE,
                HeaderValue::from_str(&c).map_err(anyhow::Error::from)?,
            );
        }
        return Ok(resp);
    }
    // The app's host is its own origin: a page elsewhere (another app host included)
    // must not drive its sockets or change things with the visitor's app cookie.
    let changes = !matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    ) || apps::is_upgrade(request.headers());
    if changes {
        if let Some(from) = request.headers().get(header::ORIGIN) {
            if from.to_str().ok() != Some(origin.as_str()) {
                return Err(ApiError::Forbidden(format!(
                    "cross-site request refused: it comes from {}, not from this app",
                    from.to_str().unwrap_or("?")
                )));
            }
        }
    }
    // A missing or stale cookie is a visitor without a login: public apps still open.
    let auth = match cookie(&request, APP_COOKIE) {
        Some(secret) => authenticate(state, &secret, TokenUse::App(&host))
            .await
            .ok(),
        None => None,
    };
    let here = format!(
        "{}://{host}{}{}",
        wildcard.scheme(),
        wildcard.port(),
        request.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    let target = format!("{workspace}.{agent}");
    let place = Place {
        owner,
        target: &target,
        what: What::App(slug),
        mount: Mount::Subdomain,
    };
    Ok(
        match apps::serve(state, auth.as_ref(), place, request).await {
            Ok(r) => r,
            Err(Refusal::Login) => {
                let nonce = generate_token();
                let to = format!(
                    "{}/app-auth?redirect={}&state={}",
                    state.config.access_url.trim_end_matches('/'),
                    super::views::urlencode(&here),
                    nonce.expose()
                );
                let mut resp = Redirect::to(&to).into_response();
                let c = format!(
                    "{STATE_COOKIE}={}; HttpOnly; SameSite=Lax; Path=/; Max-Age=600{secure}",
                    nonce.expose()
                );
                resp.headers_mut().insert(
                    header::SET_COOKIE,
                    HeaderValue::from_str(&c).map_err(anyhow::Error::from)?,
                );
                resp
            }
            Err(Refusal::Error(e)) => apps::refused(e),
        },
    )
}

/// The one subdomain app a label names. Two readings that both name an app are refused
/// rather than guessed between.
async fn resolve<'l>(state: &AppState, label: &'l str) -> ApiResult<[&'l str; 4]> {
    let mut found = Vec::new();
    for parts in splits(label) {
        if names_an_app(state, parts).await? {
            found.push(parts);
        }
    }
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(ApiError::NotFound(format!(
            "no subdomain app at {label}: app hosts read SLUG--AGENT--WORKSPACE--OWNER, for apps with `subdomain = true`"
        ))),
        _ => Err(ApiError::BadRequest(format!(
            "{label} names more than one app: open it by its path instead"
        ))),
    }
}

async fn names_an_app(
    state: &AppState,
    [slug, agent, workspace, owner]: [&str; 4],
) -> ApiResult<bool> {
    let Some(user) = state.db.get_user_by_name(owner).await? else {
        return Ok(false);
    };
    let Some(ws) = state.db.get_workspace_by_name(&user.id, workspace).await? else {
        return Ok(false);
    };
    let Some(latest) = state.db.latest_build(&ws.id).await? else {
        return Ok(false);
    };
    for a in state.db.list_agents(&latest.build.id).await? {
        if a.name == agent {
            return Ok(a
                .spec()?
                .apps
                .iter()
                .any(|app| app.slug == slug && app.subdomain));
        }
    }
    Ok(false)
}

#[derive(Debug, serde::Deserialize)]
pub struct AppAuthQuery {
    redirect: String,
    /// The app host's nonce for this round trip, handed back with the token.
    #[serde(default)]
    state: String,
}

/// `GET /app-auth?redirect=URL`, on Hangar's origin: gives the logged-in browser a token
/// for the app host in `redirect` (only ever a host under the wildcard) and sends it back.
pub async fn app_auth(
    State(state): State<AppState>,
    auth: Option<Auth>,
    Query(q): Query<AppAuthQuery>,
) -> Response {
    mint(&state, auth, &q.redirect, &q.state)
        .await
        .unwrap_or_else(apps::refused)
}

async fn mint(
    state: &AppState,
    auth: Option<Auth>,
    redirect: &str,
    nonce: &str,
) -> ApiResult<Response> {
    let wildcard = state.config.wildcard.as_ref().ok_or_else(|| {
        ApiError::NotFound("this server has no wildcard access URL, so no subdomain apps".into())
    })?;
    let not_ours =
        || ApiError::BadRequest(format!("{redirect:?} is not an app address of this server"));
    let mut url = reqwest::Url::parse(redirect).map_err(|_| not_ours())?;
    let label = url
        .host_str()
        .and_then(|h| wildcard.label(h))
        .filter(|_| url.scheme() == wildcard.scheme())
        .filter(|_| url.port_or_known_default() == Some(wildcard.port_number()))
        .filter(|_| url.username().is_empty() && url.password().is_none())
        .ok_or_else(not_ours)?;
    if nonce.len() != 64 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::BadRequest(
            "an app login starts at the app: open the app again".into(),
        ));
    }
    // Tokens only for hosts that are apps (no rows for made-up names).
    resolve(state, &label).await?;
    let Some(auth) = auth else {
        return Ok(Redirect::to("/login").into_response());
    };
    let host = wildcard.host(&label);
    let secret = generate_token();
    let now = now_ms();
    let token = ApiToken {
        id: new_id(),
        user_id: auth.user.id.clone(),
        name: host.clone(),
        login_type: APP_LOGIN_TYPE.into(),
        created_at: now,
        expires_at: Some(now + APP_TOKEN_TTL_MS),
        last_used_at: None,
    };
    // One token per user and app host: the last round trip's.
    state.db.delete_app_tokens(&auth.user.id, &host).await?;
    state
        .db
        .insert_token(&token, &hash_token(secret.expose()))
        .await?;
    url.query_pairs_mut()
        .append_pair(TOKEN_PARAM, secret.expose())
        .append_pair(STATE_PARAM, nonce);
    Ok(Redirect::to(url.as_str()).into_response())
}

fn cookie(request: &Request, name: &str) -> Option<String> {
    request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == name).then(|| v.to_string())
        })
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The request's path and query without the parameters `names`.
fn without_params(uri: &axum::http::Uri, names: &[&str]) -> String {
    let kept: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| !names.contains(&k.as_ref()))
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    if kept.is_empty() {
        return uri.path().to_string();
    }
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(kept)
        .finish();
    format!("{}?{query}", uri.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_split_every_way_names_allow() {
        assert_eq!(
            splits("code--main--dev--alice"),
            vec![["code", "main", "dev", "alice"]]
        );
        // A workspace called `my--box`: two readings, both looked up.
        let two = splits("code--main--my--box--alice");
        assert!(two.contains(&["code", "main", "my--box", "alice"]));
        assert!(two.contains(&["code", "main", "my", "box--alice"]));
        assert!(splits("code--main--dev").is_empty());
        assert!(splits("--a--b--c").is_empty());
        assert!(splits(&"a--".repeat(200)).len() <= MAX_SPLITS);
    }

    #[test]
    fn the_token_parameter_is_taken_out_of_the_url() {
        let uri: axum::http::Uri = "/x?a=1&hangar_app_token=s3cret&b=2".parse().unwrap();
        assert_eq!(
            query_param(uri.query(), TOKEN_PARAM).as_deref(),
            Some("s3cret")
        );
        assert_eq!(without_params(&uri, &[TOKEN_PARAM]), "/x?a=1&b=2");
        let bare: axum::http::Uri = "/y?hangar_app_token=s&hangar_app_state=n".parse().unwrap();
        assert_eq!(without_params(&bare, &[TOKEN_PARAM, STATE_PARAM]), "/y");
    }
}
