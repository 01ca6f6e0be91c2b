//! External auth: OAuth2 providers the operator configures (GitHub, GitLab, …) that users
//! link their accounts with, so builds (`hangar_external_auth`) and workspaces (`hangar
//! external-auth access-token`) get the user's current access token.
//!
//! This module is the OAuth2 client: the providers file, the authorization URL, and the
//! token endpoint (code exchange and refresh). Links are stored by `db::external_auth`.

use std::path::Path;

use serde::Deserialize;

use crate::db::Database;
use crate::model::secret::{OAuthTokens as Tokens, Secret};

/// One provider from `--external-auth-config` (Coder's `externalAuthProviders` keys).
#[derive(Debug, Clone, Deserialize)]
pub struct Provider {
    /// What templates name in `hangar_external_auth.id`.
    pub id: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub display_icon: String,
    pub client_id: String,
    #[serde(deserialize_with = "secret")]
    pub client_secret: Secret,
    pub auth_url: String,
    pub token_url: String,
    #[serde(default)]
    pub scopes: Vec<String>,
}

fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
    String::deserialize(d).map(Secret::new)
}

/// Reads and checks the providers file (YAML or JSON: a list of providers).
pub fn load(path: &Path) -> Result<Vec<Provider>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let providers: Vec<Provider> =
        serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    check(&providers).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(providers)
}

fn check(providers: &[Provider]) -> Result<(), String> {
    let mut ids = std::collections::HashSet::new();
    for p in providers {
        let valid_id = !p.id.is_empty()
            && p.id.len() <= 64
            && p.id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid_id {
            return Err(format!(
                "external auth id {:?} must be 1 to 64 letters, digits, '-', '_' or '.'",
                p.id
            ));
        }
        if !ids.insert(p.id.as_str()) {
            return Err(format!(
                "two external auth providers have the id {:?}",
                p.id
            ));
        }
        for (what, url) in [("auth_url", &p.auth_url), ("token_url", &p.token_url)] {
            let parsed =
                url::Url::parse(url).map_err(|e| format!("{}: {what} {url:?}: {e}", p.id))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(format!("{}: {what} must be an http(s) URL", p.id));
            }
        }
        if p.client_id.is_empty() {
            return Err(format!("{}: client_id is empty", p.id));
        }
    }
    Ok(())
}

impl Provider {
    /// The name people see.
    pub fn name(&self) -> &str {
        if self.display_name.is_empty() {
            &self.id
        } else {
            &self.display_name
        }
    }

    /// Where the browser goes to approve the link (the authorization-code flow).
    pub fn authorize_url(&self, redirect_uri: &str, state: &str) -> String {
        let mut url = url::Url::parse(&self.auth_url).expect("checked at load");
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state);
        if !self.scopes.is_empty() {
            url.query_pairs_mut()
                .append_pair("scope", &self.scopes.join(" "));
        }
        url.into()
    }

    /// Trades an authorization code for tokens.
    pub async fn exchange_code(
        &self,
        http: &reqwest::Client,
        code: &str,
        redirect_uri: &str,
        now_ms: i64,
    ) -> Result<Tokens, String> {
        self.token_request(
            http,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
            ],
            None,
            now_ms,
        )
        .await
    }

    /// A new access token from a refresh token (the provider may rotate the refresh
    /// token too; without a new one, the old one is kept).
    pub async fn refresh(
        &self,
        http: &reqwest::Client,
        refresh_token: &str,
        now_ms: i64,
    ) -> Result<Tokens, String> {
        self.token_request(
            http,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
            Some(refresh_token),
            now_ms,
        )
        .await
    }

    async fn token_request(
        &self,
        http: &reqwest::Client,
        grant: &[(&str, &str)],
        old_refresh: Option<&str>,
        now_ms: i64,
    ) -> Result<Tokens, String> {
        let mut form: Vec<(&str, &str)> = grant.to_vec();
        form.push(("client_id", &self.client_id));
        form.push(("client_secret", self.client_secret.expose()));
        let resp = http
            .post(&self.token_url)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .timeout(std::time::Duration::from_secs(15))
            .send()
            .await
            .map_err(|e| format!("{} did not answer: {e}", self.name()))?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .map_err(|e| format!("reading {}'s answer: {e}", self.name()))?;
        parse_token_response(status.as_u16(), &body, old_refresh, now_ms)
            .map_err(|e| format!("{}: {e}", self.name()))
    }
}

/// Where a user stands with a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Linked; the current access token (refreshed if it had expired).
    Valid(Secret),
    Missing,
    /// Linked once, but the token expired and could not be refreshed: link again.
    Expired(String),
}

/// `user_id`'s link with `provider`, refreshing (and storing) an expired access token.
pub async fn current(
    db: &Database,
    http: &reqwest::Client,
    provider: &Provider,
    user_id: &str,
) -> Result<Link, sqlx::Error> {
    let Some(tokens) = db.get_external_auth_link(user_id, &provider.id).await? else {
        return Ok(Link::Missing);
    };
    let now = crate::model::now_ms();
    if !tokens.expired(now) {
        return Ok(Link::Valid(Secret::new(tokens.access_token)));
    }
    let Some(refresh) = &tokens.refresh_token else {
        return Ok(Link::Expired(
            "the access token expired and there is no refresh token".into(),
        ));
    };
    match provider.refresh(http, refresh, now).await {
        Ok(fresh) => {
            db.save_external_auth_link(user_id, &provider.id, &fresh)
                .await?;
            Ok(Link::Valid(Secret::new(fresh.access_token)))
        }
        Err(e) => Ok(Link::Expired(e)),
    }
}

/// The owner's current tokens for what a version reads (`needs`), for a build's
/// environment; `Err` says which required one is unlinked (or not configured) and where
/// to link it. With `required` false every need counts as optional (a prebuild, which
/// has no owner to link anything).
pub async fn build_tokens(
    db: &Database,
    http: &reqwest::Client,
    providers: &[Provider],
    access_url: &str,
    needs: &[crate::model::preset::ExternalAuthRequirement],
    owner_id: &str,
    required: bool,
) -> Result<Result<Vec<(String, Secret)>, String>, sqlx::Error> {
    let mut tokens = Vec::new();
    for need in needs {
        let optional = need.optional || !required;
        let Some(p) = providers.iter().find(|p| p.id == need.id) else {
            if optional {
                continue;
            }
            return Ok(Err(format!(
                "the template needs external auth {:?}, which this server does not have: ask an operator to add it to --external-auth-config",
                need.id
            )));
        };
        match current(db, http, p, owner_id).await? {
            Link::Valid(token) => tokens.push((p.id.clone(), token)),
            _ if optional => {}
            Link::Missing | Link::Expired(_) => {
                return Ok(Err(format!(
                    "the template needs the owner's {} account: link it at {}, then start the workspace again",
                    p.name(),
                    link_url(access_url, &p.id)
                )))
            }
        }
    }
    Ok(Ok(tokens))
}

/// Where a user links (or relinks) their account with provider `id`.
pub fn link_url(access_url: &str, id: &str) -> String {
    format!("{}/external-auth/{id}", access_url.trim_end_matches('/'))
}

/// A token endpoint's answer: JSON (RFC 6749) or, as GitHub sends without an Accept
/// header, form-encoded. An `error` field is a refusal even with status 200 (GitHub).
pub fn parse_token_response(
    status: u16,
    body: &str,
    old_refresh: Option<&str>,
    now_ms: i64,
) -> Result<Tokens, String> {
    let fields: std::collections::HashMap<String, serde_json::Value> =
        match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(body) {
            Ok(map) => map.into_iter().collect(),
            Err(_) => url::form_urlencoded::parse(body.as_bytes())
                .map(|(k, v)| (k.into_owned(), serde_json::Value::String(v.into_owned())))
                .collect(),
        };
    let text = |k: &str| match fields.get(k) {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    if let Some(error) = text("error") {
        let description = text("error_description").unwrap_or_default();
        return Err(
            format!("the token request was refused: {error} {description}")
                .trim()
                .to_string(),
        );
    }
    if !(200..300).contains(&status) {
        return Err(format!("the token endpoint answered {status}"));
    }
    let access_token = text("access_token").ok_or("the answer has no access_token")?;
    let expires_in = match fields.get("expires_in") {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    Ok(Tokens {
        access_token,
        refresh_token: text("refresh_token").or(old_refresh.map(str::to_string)),
        expires_at: expires_in.filter(|s| *s > 0).map(|s| now_ms + s * 1000),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_answers_in_json_and_form_encoding() {
        let t = parse_token_response(
            200,
            r#"{"access_token":"a","refresh_token":"r","expires_in":3600,"token_type":"bearer"}"#,
            None,
            1000,
        )
        .unwrap();
        assert_eq!(t.access_token, "a");
        assert_eq!(t.refresh_token.as_deref(), Some("r"));
        assert_eq!(t.expires_at, Some(3_601_000));
        let t = parse_token_response(
            200,
            "access_token=b&scope=repo&token_type=bearer",
            Some("old"),
            0,
        )
        .unwrap();
        assert_eq!(
            (
                t.access_token.as_str(),
                t.refresh_token.as_deref(),
                t.expires_at
            ),
            ("b", Some("old"), None)
        );
        let err = parse_token_response(
            200,
            r#"{"error":"bad_verification_code","error_description":"The code is wrong"}"#,
            None,
            0,
        )
        .unwrap_err();
        assert!(
            err.contains("bad_verification_code") && err.contains("code is wrong"),
            "{err}"
        );
        assert!(parse_token_response(500, "oops", None, 0)
            .unwrap_err()
            .contains("500"));
        let t = Tokens {
            access_token: "secret".into(),
            refresh_token: Some("r".into()),
            expires_at: Some(0),
        };
        assert!(!format!("{t:?}").contains("secret"));
        assert!(t.expired(0));
    }

    #[test]
    fn providers_are_checked() {
        let parse = |yaml: &str| -> Result<Vec<Provider>, String> {
            let p: Vec<Provider> = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
            check(&p).map(|()| p)
        };
        let ok = parse("- {id: github, client_id: c, client_secret: s, auth_url: 'https://x/a', token_url: 'https://x/t', scopes: [repo]}").unwrap();
        let url = ok[0].authorize_url("http://h/cb", "st");
        assert!(url.starts_with("https://x/a?response_type=code&client_id=c&redirect_uri=http%3A%2F%2Fh%2Fcb&state=st&scope=repo"), "{url}");
        assert!(!format!("{:?}", ok[0]).contains("client_secret: \"s\""));
        assert!(parse("- {id: 'a b', client_id: c, client_secret: s, auth_url: 'https://x', token_url: 'https://x'}").unwrap_err().contains("letters"));
        assert!(parse("- {id: a, client_id: c, client_secret: s, auth_url: 'javascript:x', token_url: 'https://x'}").unwrap_err().contains("http(s)"));
        let twice = "- {id: a, client_id: c, client_secret: s, auth_url: 'https://x', token_url: 'https://x'}\n- {id: a, client_id: c, client_secret: s, auth_url: 'https://x', token_url: 'https://x'}";
        assert!(parse(twice).unwrap_err().contains("two"));
    }
}
