//! The web UI in a real headless Chromium, driven over the Chrome DevTools Protocol,
//! against a real server running real terraform builds.

mod common;

use std::time::Duration;

use common::browser::Browser;
use common::*;
use hangar::model::JobStatus;
use hangar::wire::workspaces::CreateWorkspaceRequest;
use serde_json::json;

/// One agent on an ephemeral host, a persistent disk beside it, metadata with a secret,
/// and parameters for the create form (defaults, so the API's creates need none).
const WEB_TF: &str = r#"
data "hangar_parameter" "region" {
  name         = "region"
  display_name = "Region"
  default      = "eu"
  option {
    name  = "Europe"
    value = "eu"
  }
  option {
    name  = "US"
    value = "us"
  }
}
data "hangar_parameter" "cpu" {
  name         = "cpu"
  display_name = "CPUs"
  type         = "number"
  default      = 2
  mutable      = true
  validation {
    min = 1
    max = 8
  }
}
resource "hangar_agent" "main" {
  os   = "linux"
  arch = "amd64"
}
resource "terraform_data" "vm" {
  count = data.hangar_workspace.me.start_count
  input = hangar_agent.main.id
}
resource "terraform_data" "disk" {
  input = "home"
}
resource "hangar_metadata" "vm" {
  count       = data.hangar_workspace.me.start_count
  resource_id = terraform_data.vm[0].id
  item {
    key   = "size"
    value = "large"
  }
  item {
    key       = "password"
    value     = "hunter2-secret"
    sensitive = true
  }
}
"#;

/// Prints its line while the build runs, then keeps running long enough for the page to
/// show it before the build ends (and the page reloads).
const SLOW_TF: &str = r#"
resource "terraform_data" "slow" {
  provisioner "local-exec" {
    command = "sleep 2; echo live-line; sleep 2"
  }
}
"#;

/// A build that runs until it is canceled.
const SLEEPY_TF: &str = r#"
resource "terraform_data" "sleepy" {
  provisioner "local-exec" {
    command = "sleep 120"
  }
}
"#;

async fn push(app: &TestApp, name: &str, main_tf: &str) {
    push_files(app, name, &[("main.tf", &format!("{PROVIDER}{main_tf}"))]).await;
}

async fn create(app: &TestApp, name: &str, template: &str) -> String {
    let ws = app
        .client
        .create_workspace(&CreateWorkspaceRequest {
            name: name.into(),
            template: template.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    ws.latest_build.job.id
}

#[tokio::test(flavor = "multi_thread")]
async fn web_ui_in_a_real_browser() {
    let app = spawn_app().await;
    let setup = async {
        push(&app, "web", WEB_TF).await;
        push(&app, "slow", SLOW_TF).await;
        let job = create(&app, "dev", "web").await;
        app.client.follow_job(&job, |_| {}).await.unwrap();
    };
    // Chromium starts while terraform imports and builds.
    let (mut b, ()) = tokio::join!(Browser::launch(), setup);
    let limit = Duration::from_secs(10);

    b.open(&format!("{}/", app.url)).await;
    b.wait_for(
        "location.pathname === '/login'",
        "the redirect to the login form",
        limit,
    )
    .await;
    b.eval(&format!(
        "document.querySelector('input[name=login]').value = 'owner';
         document.querySelector('input[name=password]').value = {PASSWORD:?};
         document.querySelector('form[action=\"/login\"]').submit();"
    ))
    .await
    .unwrap();
    b.wait_for(
        "location.pathname === '/' && !!document.querySelector('a[href=\"/@owner/dev\"]')",
        "the workspace list after logging in",
        limit,
    )
    .await;
    let list = b.text("table").await;
    for word in ["WORKSPACE", "STATUS", "dev", "web", "running"] {
        assert!(list.contains(word), "{word} not in the list: {list}");
    }

    b.eval("document.querySelector('a[href=\"/@owner/dev\"]').click()")
        .await
        .unwrap();
    b.wait_for(
        "location.pathname === '/@owner/dev' && !!document.getElementById('resources')",
        "the workspace page",
        limit,
    )
    .await;
    let tree = b.text("#resources").await;
    for word in [
        "vm terraform_data",
        "disk terraform_data",
        "computational",
        "peripheral",
        "persistent",
        "ephemeral",
        "agent main",
        "size: large",
        "password: ***",
    ] {
        assert!(
            tree.contains(word),
            "{word:?} not in the resource tree: {tree}"
        );
    }
    assert!(
        !tree.contains("hunter2"),
        "a sensitive value leaked: {tree}"
    );
    let shot = b
        .call("Page.captureScreenshot", json!({ "format": "png" }))
        .await
        .unwrap();
    let png = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        shot["data"].as_str().unwrap(),
    )
    .unwrap();
    let file = tempfile::Builder::new().suffix(".png").tempfile().unwrap();
    std::fs::write(file.path(), &png).unwrap();
    let saved = std::fs::read(file.path()).unwrap();
    assert!(saved.len() > 1000, "a {}-byte screenshot", saved.len());
    assert_eq!(&saved[..8], b"\x89PNG\r\n\x1a\n");
    // HANGAR_WEB_SCREENSHOT=path keeps a copy, to look at the page as a person would.
    if let Ok(keep) = std::env::var("HANGAR_WEB_SCREENSHOT") {
        std::fs::write(keep, &saved).unwrap();
    }

    // Stop posts the form; back on the page, it follows the build in place.
    b.eval("document.getElementById('stop').click()")
        .await
        .unwrap();
    b.wait_for(
        "!!document.getElementById('following')",
        "the page of the stopping workspace",
        limit,
    )
    .await;
    b.eval("window.loadedOnce = true").await.unwrap();
    b.wait_for(
        "document.getElementById('status').textContent === 'stopped'",
        "the stopped workspace",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(
        b.eval("window.loadedOnce === true").await.unwrap(),
        json!(true),
        "the page reloaded instead of updating in place"
    );
    assert_eq!(
        b.text("#latest-build").await,
        "#2 stop",
        "the latest build is the stop"
    );

    // A running build's page appends lines as they come, without reloading.
    let job = create(&app, "slow", "slow").await;
    let deadline = tokio::time::Instant::now() + limit;
    while app.client.job(&job).await.unwrap().status == JobStatus::Pending {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow build never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.open(&format!("{}/@owner/slow/builds/1", app.url)).await;
    b.wait_for("!!document.getElementById('log')", "the build page", limit)
        .await;
    // Marks this page load: a reload would drop the mark.
    let first = b
        .eval("window.loadedOnce = true; document.getElementById('log').innerText.includes('live-line')")
        .await
        .unwrap();
    assert_eq!(
        first,
        json!(false),
        "the line was there before it was printed"
    );
    assert_eq!(b.text("#status").await, "running");
    b.wait_for(
        "window.loadedOnce === true && document.getElementById('log').innerText.includes('live-line')",
        "live-line, streamed into the open page",
        limit,
    )
    .await;
    b.wait_for(
        "document.getElementById('status').textContent === 'succeeded' && document.getElementById('log').innerText.includes('live-line')",
        "the reload when the build ends",
        limit,
    )
    .await;

    b.open(&format!("{}/templates", app.url)).await;
    b.wait_for(
        "document.body.innerText.includes('active')",
        "the templates page",
        limit,
    )
    .await;
    let templates = b.text("main").await;
    assert!(
        templates.contains("web") && templates.contains("slow"),
        "{templates}"
    );

    // Create from the template's form: a value over the maximum comes back beside its field
    // with everything typed kept. `submit()` skips the browser's own min/max check, so this
    // is the server's validation speaking.
    b.eval("document.querySelector('a[href=\"/templates/web/create\"]').click()")
        .await
        .unwrap();
    b.wait_for(
        "location.pathname === '/templates/web/create' && !!document.getElementById('f-param-cpu')",
        "the create form",
        limit,
    )
    .await;
    assert!(b.text("#create").await.contains("CPUs"));
    b.eval(
        "document.getElementById('f-name').value = 'box';
         document.getElementById('f-param-cpu').value = '9';
         document.getElementById('f-param-region-1').click();
         document.getElementById('create').submit();",
    )
    .await
    .unwrap();
    b.wait_for(
        "!!document.getElementById('error-cpu')",
        "the form again with the error",
        limit,
    )
    .await;
    assert!(
        b.text("#error-cpu")
            .await
            .contains("9 is above the maximum 8"),
        "{}",
        b.text("#create").await
    );
    let kept = b
        .eval(
            "[document.getElementById('error-cpu').previousElementSibling.id,
              document.getElementById('f-name').value,
              document.getElementById('f-param-cpu').value,
              document.getElementById('f-param-region-1').checked]",
        )
        .await
        .unwrap();
    assert_eq!(kept, json!(["f-param-cpu", "box", "9", true]));
    assert!(app.client.workspace("box").await.is_err(), "created anyway");

    // Fixed, submitted with the button: the new workspace's page, refreshing until it runs.
    b.eval(
        "document.getElementById('f-param-cpu').value = '4';
         document.getElementById('create-submit').click();",
    )
    .await
    .unwrap();
    b.wait_for(
        "location.pathname === '/@owner/box' && document.getElementById('status').textContent === 'running'",
        "the new workspace running",
        Duration::from_secs(20),
    )
    .await;
    let box_build = app.client.workspace("box").await.unwrap().latest_build;
    assert_eq!(box_build.parameters["cpu"], "4");
    assert_eq!(box_build.parameters["region"], "us");
    let history = b.text("#builds").await;
    assert!(
        history.contains("#1") && history.contains("start") && history.contains("owner"),
        "{history}"
    );

    // Delete asks first, in the page's dialog: Cancel keeps the workspace, Delete deletes
    // it, and once the delete build is done the page returns to the list.
    b.eval("document.getElementById('delete').click()")
        .await
        .unwrap();
    b.wait_for(
        "document.getElementById('confirm-dialog').open",
        "the confirm dialog",
        limit,
    )
    .await;
    assert!(b.text("#confirm-message").await.contains("owner/box"));
    b.eval("document.getElementById('confirm-cancel').click()")
        .await
        .unwrap();
    assert_eq!(
        b.eval("document.getElementById('confirm-dialog').open")
            .await
            .unwrap(),
        json!(false)
    );
    assert_eq!(
        app.client
            .workspace("box")
            .await
            .unwrap()
            .latest_build
            .number,
        1,
        "canceled, yet a build was queued"
    );
    b.eval("document.getElementById('delete').click()")
        .await
        .unwrap();
    b.eval("document.getElementById('confirm-ok').click()")
        .await
        .unwrap();
    b.wait_for(
        "location.pathname === '/' && !!document.querySelector('a[href=\"/@owner/dev\"]')",
        "the list after deleting",
        Duration::from_secs(20),
    )
    .await;
    let list = b.text("main").await;
    assert!(!list.contains("box"), "{list}");

    b.eval("document.querySelector('form[action=\"/logout\"]').submit()")
        .await
        .unwrap();
    b.wait_for(
        "location.pathname === '/login'",
        "the login form after logging out",
        limit,
    )
    .await;
    b.open(&format!("{}/@owner/dev", app.url)).await;
    b.wait_for(
        "location.pathname === '/login'",
        "a logged-out page request sent to login",
        limit,
    )
    .await;
    drop(b);
    app.stop().await;
}

/// The pages' access rules over plain HTTP: what a member sees, how errors render, and
/// that forms need a session. The session travels in the cookie header, as a browser's.
#[tokio::test(flavor = "multi_thread")]
async fn pages_show_members_their_own_and_render_errors() {
    let app = spawn_app().await;
    push(&app, "web", WEB_TF).await;
    create(&app, "dev", "web").await;
    let member = app.user("mia", hangar::model::Role::Member).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = |path: &str, token: &str| {
        http.get(format!("{}{path}", app.url))
            .header("cookie", format!("hangar_session={token}"))
            .send()
    };

    let owner_list = page("/", app.client.token().unwrap()).await.unwrap();
    assert_eq!(owner_list.status(), 200);
    assert!(owner_list.text().await.unwrap().contains("owner/dev"));
    let member_list = page("/", member.token().unwrap()).await.unwrap();
    let body = member_list.text().await.unwrap();
    assert!(body.contains("No workspaces yet"), "{body}");
    assert!(!body.contains("owner/dev"), "{body}");

    let hidden = page("/@owner/dev", member.token().unwrap()).await.unwrap();
    assert_eq!(hidden.status(), 404);
    let body = hidden.text().await.unwrap();
    assert!(
        body.contains("404 Not Found") && body.contains("no workspace &quot;dev&quot; of owner"),
        "{body}"
    );
    let missing = page("/@owner/dev/builds/9", app.client.token().unwrap())
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.unwrap().contains("has no build #9"));

    // A revoked session is the same as none: back to the login form, nothing queued.
    let stale = page("/templates", "not-a-token").await.unwrap();
    assert_eq!(stale.status(), 303);
    // The login comes back to the page asked for (a path here, never another site).
    assert_eq!(stale.headers()["location"], "/login?next=%2Ftemplates");
    let form = http
        .get(format!("{}/login?next=%2F%2Fevil.example", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!form.contains("evil.example"), "{form}");
    let back = http
        .post(format!("{}/login", app.url))
        .header("origin", &app.url)
        .form(&[
            ("login", "owner"),
            ("password", PASSWORD),
            ("next", "/templates"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(back.headers()["location"], "/templates");
    let post = http
        .post(format!("{}/@owner/dev/builds", app.url))
        .form(&[("transition", "stop")])
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 303);
    assert_eq!(post.headers()["location"], "/login");
    assert_eq!(
        app.client.workspace_builds("dev", 100).await.unwrap().len(),
        1
    );

    // The favorite toggle: the owner's post marks it; a member cannot see it to mark it.
    // Forms are posted as a browser posts them from our pages: with our Origin.
    let post_as = |path: &str, token: &str, form: &[(&str, &str)]| {
        http.post(format!("{}{path}", app.url))
            .header("cookie", format!("hangar_session={token}"))
            .header("origin", &app.url)
            .form(form)
            .send()
    };
    let owner_token = app.client.token().unwrap();
    // The same post from another site's page is refused before it does anything.
    let forged = http
        .post(format!("{}/@owner/dev/favorite", app.url))
        .header("cookie", format!("hangar_session={owner_token}"))
        .header("origin", "http://evil.example")
        .form(&[("favorite", "true")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(!app.client.workspace("dev").await.unwrap().favorite);
    let fav = post_as("/@owner/dev/favorite", owner_token, &[("favorite", "true")])
        .await
        .unwrap();
    assert_eq!(fav.status(), 303);
    assert_eq!(fav.headers()["location"], "/@owner/dev");
    assert!(app.client.workspace("dev").await.unwrap().favorite);
    let theirs = post_as(
        "/@owner/dev/favorite",
        member.token().unwrap(),
        &[("favorite", "false")],
    )
    .await
    .unwrap();
    assert_eq!(theirs.status(), 404);
    assert!(app.client.workspace("dev").await.unwrap().favorite);

    // Cancel: nothing runs on dev (409, said on the page); a member cannot reach it; a
    // running build is canceled from its page.
    let dev = app.client.workspace("dev").await.unwrap();
    app.client
        .follow_job(&dev.latest_build.job.id, |_| {})
        .await
        .unwrap();
    let idle = post_as("/@owner/dev/cancel", owner_token, &[])
        .await
        .unwrap();
    assert_eq!(idle.status(), 409);
    assert!(idle.text().await.unwrap().contains("already finished"));
    push(&app, "sleepy", SLEEPY_TF).await;
    let job = create(&app, "sleepy", "sleepy").await;
    let foreign = post_as("/@owner/sleepy/cancel", member.token().unwrap(), &[])
        .await
        .unwrap();
    assert_eq!(foreign.status(), 404);
    let canceled = post_as("/@owner/sleepy/cancel", owner_token, &[])
        .await
        .unwrap();
    assert_eq!(canceled.status(), 303);
    let job = app.client.follow_job(&job, |_| {}).await.unwrap();
    assert_eq!(job.status, hangar::model::JobStatus::Canceled);
    let sleepy = app.client.workspace("sleepy").await.unwrap();
    assert_eq!(sleepy.status, hangar::model::WorkspaceStatus::Canceled);

    // A value not among the options, then a taken name: 400, the form again, nothing made.
    let create_form = |form: &'static [(&'static str, &'static str)]| {
        post_as("/templates/web/create", owner_token, form)
    };
    let bad = create_form(&[("name", "dev"), ("param.cpu", "3"), ("param.region", "")])
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body = bad.text().await.unwrap();
    assert!(
        body.contains("id=\"error-region\"") && body.contains("is not one of the options"),
        "{body}"
    );
    assert!(body.contains("name=\"param.cpu\" value=\"3\""), "{body}");
    let dup = create_form(&[("name", "dev"), ("param.cpu", "3"), ("param.region", "eu")])
        .await
        .unwrap();
    assert_eq!(dup.status(), 400);
    let body = dup.text().await.unwrap();
    assert!(
        body.contains("id=\"error-name\"") && body.contains("already have a workspace named"),
        "{body}"
    );
    assert_eq!(app.client.workspaces(true, "").await.unwrap().len(), 2);

    let login = http
        .post(format!("{}/login", app.url))
        .form(&[("login", "mia"), ("password", "wrong-password")])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 401);
    assert!(login.headers().get("set-cookie").is_none());
    let body = login.text().await.unwrap();
    assert!(body.contains("incorrect login or password") && body.contains("value=\"mia\""));
    app.stop().await;
}

/// Text of the web terminal's screen and scrollback.
const SCREEN: &str = "(() => { const b = window.hangarTerminal.buffer.active; const out = []; \
    for (let i = 0; i < b.length; i++) { out.push(b.getLine(i).translateToString(true)); } \
    return out.join('\\n'); })()";

#[tokio::test(flavor = "multi_thread")]
async fn the_web_terminal_runs_a_shell_that_survives_a_reload() {
    let app = spawn_app().await;
    let homes = tempfile::tempdir().unwrap();
    let setup = async {
        push_builtin(&app, "local").await;
        let ws = app
            .client
            .create_workspace(&CreateWorkspaceRequest {
                name: "dev".into(),
                template: "local".into(),
                parameters: [("home_base".to_string(), homes.path().display().to_string())].into(),
                ..Default::default()
            })
            .await
            .unwrap();
        app.client
            .follow_job(&ws.latest_build.job.id, |_| {})
            .await
            .unwrap();
        for _ in 0..150 {
            if app.client.workspace("dev").await.unwrap().healthy {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the workspace never became healthy");
    };
    let (mut b, ()) = tokio::join!(Browser::launch(), setup);
    let limit = Duration::from_secs(15);
    b.open(&format!("{}/login", app.url)).await;
    b.wait_for(
        "!!document.querySelector('input[name=login]')",
        "the login form",
        limit,
    )
    .await;
    b.eval(&format!(
        "document.querySelector('input[name=login]').value = 'owner';
         document.querySelector('input[name=password]').value = {PASSWORD:?};
         document.querySelector('form[action=\"/login\"]').submit();"
    ))
    .await
    .unwrap();
    b.wait_for(
        "location.pathname === '/'",
        "the list after logging in",
        limit,
    )
    .await;
    // The workspace page offers the terminal.
    b.open(&format!("{}/@owner/dev", app.url)).await;
    b.wait_for(
        "!!document.getElementById('terminal-main')",
        "the Terminal link on the workspace page",
        limit,
    )
    .await;
    b.open(&format!("{}/@owner/dev.main/terminal", app.url))
        .await;
    b.wait_for(
        "!!window.hangarTerminal && document.getElementById('state').innerText === 'connected'",
        "the terminal to connect",
        limit,
    )
    .await;
    let url = b.eval("location.href").await.unwrap();
    assert!(url.as_str().unwrap().contains("reconnect="), "{url}");
    b.eval("window.hangarTerminal.focus()").await.unwrap();
    b.type_line("echo $((6*7)); H=hangar$((1+1)); echo $$ > /dev/null")
        .await;
    b.wait_for(
        &format!("{SCREEN}.split('\\n').some(l => l.trim() === '42')"),
        "42 on the screen",
        limit,
    )
    .await;

    // Reload: the same terminal id, the same shell (its variable is still set), and the
    // earlier output replayed.
    b.eval("location.reload()").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.wait_for(
        "!!window.hangarTerminal && document.getElementById('state').innerText === 'connected'",
        "the terminal to reconnect after a reload",
        limit,
    )
    .await;
    assert_eq!(b.eval("location.href").await.unwrap(), url);
    b.wait_for(
        &format!("{SCREEN}.split('\\n').some(l => l.trim() === '42')"),
        "the earlier output replayed",
        limit,
    )
    .await;
    b.eval("window.hangarTerminal.focus()").await.unwrap();
    b.type_line("echo got-$H").await;
    b.wait_for(
        &format!("{SCREEN}.split('\\n').some(l => l.trim() === 'got-hangar2')"),
        "the same shell after the reload",
        limit,
    )
    .await;

    // A member cannot open the owner's terminal, not even its page.
    let mia = app.user("mia", hangar::model::Role::Member).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http
        .get(format!("{}/@owner/dev.main/terminal", app.url))
        .header("cookie", format!("hangar_session={}", mia.token().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 404);
    // A page elsewhere cannot open the owner's terminal socket with the owner's cookie.
    let agent = app
        .client
        .workspace("dev")
        .await
        .unwrap()
        .agents()
        .next()
        .unwrap()
        .clone();
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!(
        "{}/api/v2/workspaceagents/{}/pty?reconnect=x",
        app.url.replace("http://", "ws://"),
        agent.id
    )
    .into_client_request()
    .unwrap();
    req.headers_mut().insert(
        "cookie",
        format!("hangar_session={}", app.client.token().unwrap())
            .parse()
            .unwrap(),
    );
    req.headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
    delete_workspace(&app.client, "dev").await;
    app.stop().await;
}
