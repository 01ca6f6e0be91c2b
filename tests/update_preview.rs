//! An update is planned against the workspace's state before it is applied: the CLI and
//! the web page show each change, and one that would replace a persistent resource (a
//! home volume) needs explicit consent, `--yes` is not enough.

mod common;

use common::*;

/// A version of a workspace: `home` is persistent, `box` ephemeral; `home_rev` and
/// `box_rev` force their replacement when they change between versions.
fn version(home_rev: &str, box_rev: &str) -> String {
    format!(
        r#"{PROVIDER}
resource "terraform_data" "home" {{
  triggers_replace = "{home_rev}"
}}
resource "terraform_data" "box" {{
  count            = data.hangar_workspace.me.start_count
  triggers_replace = "{box_rev}"
}}
"#
    )
}

async fn push(app: &TestApp, home_rev: &str, box_rev: &str) {
    push_files(app, "vol", &[("main.tf", &version(home_rev, box_rev))]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_update_that_loses_a_persistent_resource_needs_consent() {
    let app = spawn_app().await;
    push(&app, "h1", "b1").await;
    let out = app.cli(&["create", "dev", "--template", "vol", "-y"]).await;
    assert!(out.status.success(), "{}", stderr(&out));

    // v2 replaces the home: the preview says so, and `update -y` refuses.
    push(&app, "h2", "b1").await;
    let out = app.cli(&["update", "dev", "--dry-run"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let preview = stdout(&out);
    let home = preview
        .lines()
        .find(|l| l.contains("terraform_data.home"))
        .unwrap_or_else(|| panic!("no home line in {preview}"));
    for word in ["replace", "persistent", "LOSES DATA"] {
        assert!(home.contains(word), "{word} not in {home:?}");
    }
    assert!(
        preview
            .lines()
            .filter(|l| l.contains("LOSES DATA"))
            .all(|l| l.contains("terraform_data.home")),
        "only the home loses data: {preview}"
    );
    let before = app.client.workspace("dev").await.unwrap();
    let out = app.cli(&["update", "dev", "-y"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--accept-data-loss"),
        "{}",
        stderr(&out)
    );
    let after = app.client.workspace("dev").await.unwrap();
    assert_eq!(
        after.latest_build.number, before.latest_build.number,
        "a refused update built anyway"
    );

    // The web page shows the same, and will not update without the box ticked.
    let cookie = format!("hangar_session={}", app.client.token().unwrap());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let queued = http
        .post(format!("{}/@owner/dev/update", app.url))
        .header("cookie", &cookie)
        .header("origin", &app.url)
        .send()
        .await
        .unwrap();
    assert_eq!(queued.status(), 303);
    let page_url = format!(
        "{}{}",
        app.url,
        queued.headers()["location"].to_str().unwrap()
    );
    let job = page_url.split("preview=").nth(1).unwrap().to_string();
    app.client.follow_job(&job, |_| {}).await.unwrap();
    let page = http
        .get(&page_url)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("loses its data") && page.contains("accept_data_loss"),
        "{page}"
    );
    let refused = http
        .post(format!("{}/@owner/dev/restart", app.url))
        .header("cookie", &cookie)
        .header("origin", &app.url)
        .form(&[("update", "true"), ("preview", job.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    // Someone else's preview job opens nothing.
    let bob = app.user("bob", hangar::model::Role::Member).await;
    let bob_cookie = format!("hangar_session={}", bob.token().unwrap());
    let peek = http
        .get(&page_url)
        .header("cookie", &bob_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(peek.status(), 404);

    // Consent given: the update runs.
    let out = app
        .cli(&["update", "dev", "-y", "--accept-data-loss"])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let ws = app.client.workspace("dev").await.unwrap();
    assert!(!ws.outdated);
    assert_eq!(ws.status, hangar::model::WorkspaceStatus::Running);
    // The web preview from before no longer describes any update: it is refused.
    let stale = http
        .post(format!("{}/@owner/dev/restart", app.url))
        .header("cookie", &cookie)
        .header("origin", &app.url)
        .form(&[
            ("update", "true"),
            ("preview", job.as_str()),
            ("accept_data_loss", "true"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 409);
    let text = stale.text().await.unwrap();
    assert!(text.contains("out of date"), "{text}");

    // v3 only replaces the ephemeral box: no consent needed.
    push(&app, "h2", "b2").await;
    let out = app.cli(&["update", "dev", "-y"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("terraform_data.box[0]"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("LOSES DATA"), "{}", stdout(&out));
    assert!(!app.client.workspace("dev").await.unwrap().outdated);
    app.stop().await;
}
