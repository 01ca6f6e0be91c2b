//! External auth end to end: a real OAuth2 provider process (a small Python server that
//! stands in for GitHub) the server is configured with, the browser's
//! authorization-code flow over real HTTP, builds that get the owner's token (refreshed
//! when expired), the CLI, and the refusals (unlinked, forged state, agent scope).

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use common::*;
use hangar::client::Client;
use hangar::db::Database;
use hangar::model::JobStatus;
use hangar::wire::workspaces::CreateWorkspaceRequest;
use reqwest::StatusCode;

/// The fake provider, killed when dropped.
struct FakeProvider {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the provider; access tokens it issues expire after `expires_in` seconds (0:
/// never). Hangar refreshes tokens within a minute of expiring, so 30 means "always".
fn start_provider(expires_in: u32) -> FakeProvider {
    let dir = tempfile::tempdir().unwrap();
    let port_file = dir.path().join("port");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oauth2_provider.py");
    let child = Command::new("python3")
        .arg(&script)
        .arg(&port_file)
        .args(["hangar-client", "hangar-secret", &expires_in.to_string()])
        .spawn()
        .expect("python3 runs the fake OAuth2 provider (test.sh installs it)");
    // Dropping it kills and reaps the process, on every path below.
    let mut provider = FakeProvider {
        child,
        url: String::new(),
        _dir: dir,
    };
    for _ in 0..200 {
        if let Ok(port) = std::fs::read_to_string(&port_file) {
            provider.url = format!("http://127.0.0.1:{port}");
            return provider;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("the fake OAuth2 provider did not start");
}

fn providers_file(provider: &FakeProvider, dir: &Path) -> std::path::PathBuf {
    let path = dir.join("external-auth.yaml");
    std::fs::write(
        &path,
        format!(
            "- id: github\n  display_name: GitHub\n  client_id: hangar-client\n  client_secret: hangar-secret\n  auth_url: {0}/authorize\n  token_url: {0}/token\n  scopes: [repo, read:user]\n",
            provider.url
        ),
    )
    .unwrap();
    path
}

async fn spawn_with_provider(provider: &FakeProvider) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = providers_file(provider, dir.path());
    let app = spawn_app_with(|c| {
        c.external_auth = hangar::external_auth::load(&file).unwrap();
    })
    .await;
    (app, dir)
}

const TEMPLATE: &str = r#"
data "hangar_external_auth" "github" {
  id = "github"
}
resource "hangar_agent" "open" {
  os   = "linux"
  arch = "amd64"
}
resource "hangar_agent" "scoped" {
  os            = "linux"
  arch          = "amd64"
  api_key_scope = "no_user_data"
}
resource "terraform_data" "clone" {
  count = data.hangar_workspace.me.start_count
  input = data.hangar_external_auth.github.access_token
}
"#;

/// The browser's link flow, as a browser follows it: our login redirect, the provider's
/// approval redirect, our callback. Returns the callback's answer.
async fn link_in_browser(app: &TestApp, token: &str, tamper_state: bool) -> reqwest::Response {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = format!("hangar_session={token}");
    let start = http
        .get(format!("{}/external-auth/github/login", app.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert!(start.status().is_redirection(), "{}", start.status());
    let state_cookie = start.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(state_cookie.contains("HttpOnly") && state_cookie.contains("SameSite=Lax"));
    let state_cookie = state_cookie.split(';').next().unwrap().to_string();
    let to_provider = start.headers()["location"].to_str().unwrap().to_string();
    assert!(
        to_provider.contains("scope=repo+read%3Auser"),
        "{to_provider}"
    );
    let approved = http.get(&to_provider).send().await.unwrap();
    assert_eq!(approved.status(), StatusCode::FOUND);
    let mut back = approved.headers()["location"].to_str().unwrap().to_string();
    if tamper_state {
        back = back.replace("state=", "state=forged");
    }
    http.get(&back)
        .header("cookie", format!("{cookie}; {state_cookie}"))
        .send()
        .await
        .unwrap()
}

/// The plain value of `terraform_data.clone`'s input in a build's state.
async fn cloned_with(db: &Database, build_id: &str) -> String {
    let state = db.get_build_state(build_id).await.unwrap().unwrap();
    let state: serde_json::Value = serde_json::from_slice(&state).unwrap();
    state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "terraform_data")
        .map(|r| {
            r["instances"][0]["attributes"]["input"]["value"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .expect("the clone resource")
}

fn agent_token(state: &serde_json::Value, name: &str) -> String {
    state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "hangar_agent" && r["name"] == name)
        .map(|r| {
            r["instances"][0]["attributes"]["token"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .unwrap()
}

#[tokio::test]
async fn builds_get_the_owners_linked_token() {
    let provider = start_provider(30);
    let (app, _dir) = spawn_with_provider(&provider).await;
    push_files(&app, "gh", &[("main.tf", &format!("{PROVIDER}{TEMPLATE}"))]).await;
    let v = app.client.template_versions("gh").await.unwrap().remove(0);
    assert_eq!(v.external_auth[0].id, "github");
    let create = |name: &str| CreateWorkspaceRequest {
        name: name.into(),
        template: "gh".into(),
        ..Default::default()
    };

    // Unlinked: refused before any build, saying where to link.
    let err = app
        .client
        .create_workspace(&create("dev"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::BAD_REQUEST));
    let link_at = format!("{}/external-auth/github", app.url);
    assert!(err.to_string().contains(&link_at), "{err}");
    let list = app.client.external_auth().await.unwrap();
    assert_eq!(
        (list[0].linked, list[0].link_url.as_str()),
        (false, link_at.as_str())
    );

    // A callback whose state this browser did not start with links nothing.
    let token = app.client.token().unwrap().to_string();
    let forged = link_in_browser(&app, &token, true).await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    assert!(forged.text().await.unwrap().contains("cannot be verified"));
    assert!(!app.client.external_auth().await.unwrap()[0].linked);

    // The real flow links the account.
    let done = link_in_browser(&app, &token, false).await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(done.headers()["location"], "/external-auth?linked=github");
    assert!(app.client.external_auth().await.unwrap()[0].linked);

    // The build gets the token: issued as at-1 and expiring within the minute, so the
    // build refreshed it first (at-2).
    let ws = app.client.create_workspace(&create("dev")).await.unwrap();
    let job = app
        .client
        .follow_job(&ws.latest_build.job.id, |_| {})
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
    let db = Database::connect(&app.db_url).await.unwrap();
    let used = cloned_with(&db, &ws.latest_build.id).await;
    assert!(
        used.starts_with("at-") && used != "at-1",
        "refreshed first: {used}"
    );
    let stats: serde_json::Value = reqwest::get(format!("{}/stats", provider.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["authorization_code"], 1);
    assert!(stats["refresh_token"].as_u64().unwrap() >= 1, "{stats}");

    // The CLI prints the current token; an agent gets its owner's unless its scope
    // says no user data.
    let out = app.cli(&["external-auth", "access-token", "github"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).trim().starts_with("at-"));
    let out = app.cli(&["external-auth", "list"]).await;
    assert!(
        stdout(&out).contains("github") && stdout(&out).contains("yes"),
        "{}",
        stdout(&out)
    );
    let state = db
        .get_build_state(&ws.latest_build.id)
        .await
        .unwrap()
        .unwrap();
    let state: serde_json::Value = serde_json::from_slice(&state).unwrap();
    let open = Client::new(&app.url, Some(agent_token(&state, "open")));
    assert!(open
        .agent_external_auth_token("github")
        .await
        .unwrap()
        .access_token
        .starts_with("at-"));
    let scoped = Client::new(&app.url, Some(agent_token(&state, "scoped")));
    let err = scoped
        .agent_external_auth_token("github")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::FORBIDDEN), "{err}");
    assert!(err.to_string().contains("no_user_data"));

    // Another user's token is theirs alone: bob has linked nothing.
    let bob = app.user("bob", hangar::model::Role::Member).await;
    let err = bob.external_auth_token("github").await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::CONFLICT));
    assert!(err.to_string().contains("link one at"), "{err}");

    // Unlinked again: the next start is refused with the same advice; a stop is not.
    app.client.unlink_external_auth("github").await.unwrap();
    let stop = app
        .client
        .build_workspace(
            "dev",
            &hangar::wire::workspaces::BuildRequest {
                transition: Some(hangar::model::Transition::Stop),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let job = app.client.follow_job(&stop.job.id, |_| {}).await.unwrap();
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
    let err = app
        .client
        .build_workspace("dev", &Default::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&link_at), "{err}");
    db.close().await;
    app.stop().await;
}

/// Without a link, an optional provider gives builds an empty token; the create form
/// lists the accounts with a link to each.
#[tokio::test]
async fn optional_providers_do_not_block_and_the_form_shows_accounts() {
    let provider = start_provider(0);
    let (app, _dir) = spawn_with_provider(&provider).await;
    let optional = TEMPLATE.replace(
        "id = \"github\"",
        "id       = \"github\"\n  optional = true",
    );
    push_files(&app, "gh", &[("main.tf", &format!("{PROVIDER}{optional}"))]).await;
    let ws = create_built(
        &app.client,
        &CreateWorkspaceRequest {
            name: "dev".into(),
            template: "gh".into(),
            ..Default::default()
        },
    )
    .await;
    let db = Database::connect(&app.db_url).await.unwrap();
    assert_eq!(cloned_with(&db, &ws.latest_build.id).await, "");
    db.close().await;
    let page = page_as_owner(&app, "/templates/gh/create").await;
    assert!(
        page.contains("href=\"/external-auth/github\">Link GitHub</a>"),
        "{page}"
    );
    assert!(page.contains("optional"));
    app.stop().await;
}

/// bob cannot make alice's account use his GitHub account: a callback carrying bob's
/// code and state, even with bob's state planted in alice's browser as a cookie, is
/// refused, because the state was started by bob.
#[tokio::test]
async fn a_callback_only_links_for_the_user_who_started_it() {
    let provider = start_provider(0);
    let (app, _dir) = spawn_with_provider(&provider).await;
    let bob = app.user("bob", hangar::model::Role::Member).await;
    let alice = app.user("alice", hangar::model::Role::Member).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // bob starts a link and gets his code back from the provider, but stops there.
    let start = http
        .get(format!("{}/external-auth/github/login", app.url))
        .header("cookie", format!("hangar_session={}", bob.token().unwrap()))
        .send()
        .await
        .unwrap();
    let bobs_cookie = start.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let to_provider = start.headers()["location"].to_str().unwrap().to_string();
    let approved = http.get(&to_provider).send().await.unwrap();
    let back = approved.headers()["location"].to_str().unwrap().to_string();
    // alice's browser, with bob's state cookie planted, is sent to that callback.
    let refused = http
        .get(&back)
        .header(
            "cookie",
            format!("hangar_session={}; {bobs_cookie}", alice.token().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(!alice.external_auth().await.unwrap()[0].linked);
    // A provider error in the URL is not echoed: anyone can write that URL.
    let spoof = http
        .get(format!(
            "{}/external-auth/github/callback?error=x&error_description=Re-enter+your+password+at+evil.example",
            app.url
        ))
        .header("cookie", format!("hangar_session={}", alice.token().unwrap()))
        .send()
        .await
        .unwrap();
    assert!(!spoof.text().await.unwrap().contains("evil.example"));
    app.stop().await;
}
