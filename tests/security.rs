//! What a security review found, each reproduced against a real server: members injecting
//! HCL through parameters, hostile HCL and archives, and routes that skipped checks.

mod common;

use common::*;
use hangar::client::ClientError;
use hangar::model::{Role, WorkspaceStatus};
use hangar::wire::workspaces::CreateWorkspaceRequest;
use reqwest::StatusCode;

fn status_of(e: &ClientError) -> Option<StatusCode> {
    match e {
        ClientError::Api { status, .. } => Some(*status),
        _ => None,
    }
}

/// A parameter rendered into a `.tf.tera` string: a member's value that tries to close
/// the string and add a `local-exec` stays a string, and nothing runs.
#[tokio::test(flavor = "multi_thread")]
async fn a_members_parameter_cannot_inject_hcl() {
    let app = spawn_app().await;
    let marker = app.data_dir.path().join("pwned");
    let tf = format!(
        "{PROVIDER}data \"hangar_parameter\" \"note\" {{\n  name    = \"note\"\n  default = \"hi\"\n  mutable = true\n}}\n"
    );
    let tera = "resource \"terraform_data\" \"note\" {\n  input = \"{{ parameters.note }}\"\n}\noutput \"note\" {\n  value = terraform_data.note.output\n}\n";
    push_files(&app, "notes", &[("main.tf", &tf), ("note.tf.tera", tera)]).await;
    let evil = format!(
        "x\"\n}}\nresource \"terraform_data\" \"pwn\" {{\n  provisioner \"local-exec\" {{\n    command = \"touch {}\"\n  }}\n}}\n# ${{path.cwd}}",
        marker.display()
    );
    let member = app.user("mallory", Role::Member).await;
    member
        .create_workspace(&CreateWorkspaceRequest {
            name: "w".into(),
            template: "notes".into(),
            parameters: [("note".to_string(), evil.clone())].into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let ws = member.workspace("w").await.unwrap();
    member
        .follow_job(&ws.latest_build.job.id, |_| {})
        .await
        .unwrap();
    let ws = member.workspace("w").await.unwrap();
    assert_eq!(
        ws.status,
        WorkspaceStatus::Running,
        "{:?}",
        ws.latest_build.job.error
    );
    assert!(!marker.exists(), "the member's value ran a command");
    let addresses: Vec<&str> = ws.resources.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(addresses, ["terraform_data.note"]);
    app.stop().await;
}

fn nested(depth: usize) -> String {
    format!(
        "locals {{\n  x = {}1{}\n}}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

/// 2 KB of nested lists aborted the whole server at push; now it is a 400 naming the file,
/// and the server keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn deeply_nested_hcl_is_a_400_not_a_crash() {
    let app = spawn_app().await;
    let bombs = [
        ("lists.tf", nested(100_000)),
        (
            "ops.tf",
            format!("locals {{\n  x = {}1\n}}\n", "a ? 1 : ".repeat(200_000)),
        ),
    ];
    for (file, text) in &bombs {
        let dir = template_dir(&[("main.tf", PROVIDER), (file, text)]);
        let archive = hangar::model::archive::pack_dir(dir.path()).unwrap();
        let err = app
            .client
            .push_template("bomb", archive, None, "", true)
            .await
            .unwrap_err();
        assert_eq!(status_of(&err), Some(StatusCode::BAD_REQUEST), "{err}");
        assert!(err.to_string().contains(file), "{err}");
    }
    // Deep but sane nesting still parses, and the server is alive.
    push_files(
        &app,
        "fine",
        &[("main.tf", PROVIDER), ("deep.tf", &nested(200))],
    )
    .await;
    assert_eq!(app.client.templates().await.unwrap().len(), 1);
    app.stop().await;
}

mod isolated_parser {
    use super::*;
    use proptest::prelude::*;

    /// HCL-ish text: real constructs nested to random depths, mixed with noise.
    fn hclish() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("1".to_string()),
            Just("\"s\"".to_string()),
            Just("var.x".to_string()),
            "[a-z]{1,3}",
            "\\PC{0,4}",
        ];
        leaf.prop_recursive(64, 512, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(", "))),
                inner.clone().prop_map(|e| format!("({e})")),
                inner.clone().prop_map(|e| format!("!{e}")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} + {b}")),
                (inner.clone(), inner.clone(), inner.clone())
                    .prop_map(|(a, b, c)| format!("{a} ? {b} : {c}")),
                inner.clone().prop_map(|e| format!("\"${{{e}}}\"")),
                inner.prop_map(|e| format!("{{ k = {e} }}")),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        /// Whatever the text, the parser answers (parameters or an error naming the file)
        /// and never takes the caller down.
        #[test]
        fn answers_every_input(expr in hclish(), depth in 0usize..3000, junk in "\\PC{0,40}") {
            let text = format!(
                "data \"hangar_parameter\" \"p\" {{\n  name = \"p\"\n  default = \"d\"\n}}\nlocals {{\n  a = {expr}\n  b = {}1{}\n}}\n{junk}\n",
                "(".repeat(depth),
                ")".repeat(depth)
            );
            let files = vec![("main.tf".to_string(), text)];
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let got = rt.block_on(hangar::isolate::parse_parameters(&hangar_bin(), &files));
            match got {
                Ok(params) => prop_assert_eq!(params.len(), 1),
                Err(hangar::isolate::ParseError::Spawn(e)) => prop_assert!(false, "spawn: {}", e),
                Err(e) => prop_assert!(e.to_string().starts_with("main.tf"), "{}", e),
            }
        }
    }
}

/// A page on another origin cannot make a logged-in admin's browser push a template: a
/// state-changing request with the session cookie must come from this server's pages.
#[tokio::test(flavor = "multi_thread")]
async fn cookie_sessions_refuse_cross_site_requests() {
    let app = spawn_app().await;
    let token = app.client.token().unwrap().to_string();
    let http = reqwest::Client::new();
    let push = |origin: Option<&str>| {
        let mut req = http
            .post(format!("{}/api/v2/templates/evil/versions", app.url))
            .header("cookie", format!("hangar_session={token}"))
            .header("content-type", "text/plain")
            .body("not a tar");
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    let cross = push(Some("http://127.0.0.1.nip.example")).await.unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = cross.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("cross-site"),
        "{body}"
    );
    assert_eq!(push(None).await.unwrap().status(), StatusCode::FORBIDDEN);
    // From our own page it reaches the handler, which judges the upload itself.
    let ours = push(Some(&app.url)).await.unwrap();
    assert_eq!(ours.status(), StatusCode::BAD_REQUEST);
    assert!(app.client.templates().await.unwrap().is_empty());

    // Every response carries the browser protections.
    let page = http.get(format!("{}/login", app.url)).send().await.unwrap();
    let h = page.headers();
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    app.stop().await;
}

/// Guessing a password is slowed to a few tries a minute per account, with a 429 that
/// says when to come back; the account's owner on another address is not locked out of
/// other accounts.
#[tokio::test(flavor = "multi_thread")]
async fn failed_logins_are_rate_limited() {
    let app = spawn_app().await;
    app.user("alice", Role::Member).await;
    let anon = app.anon();
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let err = anon.login("owner", "not-the-password").await.unwrap_err();
        statuses.push(status_of(&err).unwrap());
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
    assert_eq!(*statuses.last().unwrap(), StatusCode::TOO_MANY_REQUESTS);
    let err = anon.login("owner", PASSWORD).await.unwrap_err();
    assert!(err.to_string().contains("try again in"), "{err}");
    // Another account still logs in.
    anon.login("alice", PASSWORD).await.unwrap();
    app.stop().await;
}

/// The smaller findings: oversized and NUL parameter values, overflowing token lifetimes,
/// plain-text rejections, Coder's ways of sending a token, secrets in `Debug`.
#[tokio::test(flavor = "multi_thread")]
async fn bad_values_are_clear_400s_and_coder_clients_authenticate() {
    let app = spawn_app().await;
    let tf = format!(
        "{PROVIDER}data \"hangar_parameter\" \"note\" {{\n  name    = \"note\"\n  default = \"hi\"\n}}\n"
    );
    push_files(&app, "notes", &[("main.tf", &tf)]).await;
    for (value, says) in [
        ("a\0b".to_string(), "NUL"),
        ("x".repeat(65 * 1024), "limited to 64 KiB"),
    ] {
        let err = app
            .client
            .create_workspace(&CreateWorkspaceRequest {
                name: "w".into(),
                template: "notes".into(),
                parameters: [("note".to_string(), value)].into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status_of(&err), Some(StatusCode::BAD_REQUEST), "{err}");
        assert!(err.to_string().contains(says), "{err}");
    }
    let token = app.client.token().unwrap().to_string();
    let http = reqwest::Client::new();
    let api = |path: &str| format!("{}/api/v2{path}", app.url);
    let resp = http
        .post(api("/users/me/keys/tokens"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "ci", "lifetime_seconds": i64::MAX / 1000}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // A body that is not the expected JSON gets the same JSON error shape as any other.
    let resp = http
        .post(api("/workspaces"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(!body["message"].as_str().unwrap().is_empty(), "{body}");
    for (name, value) in [
        ("authorization", format!("bearer {token}")),
        ("Coder-Session-Token", token.clone()),
    ] {
        let resp = http
            .get(api("/users/me"))
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{name}");
    }
    let login = hangar::wire::users::LoginRequest {
        login: "owner".into(),
        password: "hunter2-hunter2".into(),
    };
    assert!(!format!("{login:?}").contains("hunter2"));
    app.stop().await;
}

/// The agent binary carries a strong ETag (its SHA-256) and a matching `If-None-Match`
/// gets a 304 with no body, so an agent start does not download the binary again.
#[tokio::test(flavor = "multi_thread")]
async fn the_agent_binary_is_revalidated_by_etag() {
    use sha2::{Digest, Sha256};
    let app = spawn_app().await;
    let (os, arch) = hangar::wire::agent::this_platform();
    let url = format!("{}/api/v2/bin/hangar-{os}-{arch}", app.url);
    let http = reqwest::Client::new();
    let first = http.get(&url).send().await.unwrap();
    assert_eq!(first.status(), reqwest::StatusCode::OK);
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    let bytes = first.bytes().await.unwrap();
    let expected = format!("\"sha256-{}\"", hex::encode(Sha256::digest(&bytes)));
    assert_eq!(etag, expected, "a strong ETag of exactly the bytes served");

    let again = http
        .get(&url)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), reqwest::StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    assert!(again.bytes().await.unwrap().is_empty());

    let stale = http
        .get(&url)
        .header("If-None-Match", "\"sha256-0000\", W/\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), reqwest::StatusCode::OK);
    assert_eq!(stale.bytes().await.unwrap().len(), bytes.len());
    app.stop().await;
}
