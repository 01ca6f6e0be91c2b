//! The dashboard as people use it, in a real headless Chromium against a real server:
//! usage charts filling from a real agent, pages following builds in place, actions from
//! the list, cancel, an external workspace's connect command, every page at phone width
//! without horizontal scrolling, and axe-core's accessibility check on every page.
//!
//! `HANGAR_WEB_SCREENSHOTS=DIR` keeps a desktop and a phone screenshot of every page.

mod common;

use std::time::Duration;

use common::browser::Browser;
use common::*;
use hangar::wire::workspaces::CreateWorkspaceRequest;
use serde_json::{json, Value};

/// A build that runs until it is canceled.
const SLEEPY_TF: &str = r#"
resource "terraform_data" "sleepy" {
  provisioner "local-exec" {
    command = "sleep 120"
  }
}
"#;

async fn create(app: &TestApp, name: &str, template: &str, params: &[(&str, &str)]) -> String {
    let ws = app
        .client
        .create_workspace(&CreateWorkspaceRequest {
            name: name.into(),
            template: template.into(),
            parameters: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        })
        .await
        .unwrap();
    ws.latest_build.job.id
}

/// A parameter of every control Coder's `form_type` names.
const FORM_TF: &str = r#"
data "hangar_parameter" "size" {
  name      = "size"
  type      = "number"
  form_type = "slider"
  default   = 4
  validation {
    min = 2
    max = 16
  }
}
data "hangar_parameter" "zone" {
  name      = "zone"
  form_type = "dropdown"
  default   = "a"
  option {
    name  = "Zone A"
    value = "a"
  }
  option {
    name  = "Zone B"
    value = "b"
  }
}
data "hangar_parameter" "region" {
  name    = "region"
  default = "eu"
  option {
    name  = "Europe"
    value = "eu"
  }
  option {
    name  = "US"
    value = "us"
  }
}
data "hangar_parameter" "fast" {
  name      = "fast"
  type      = "bool"
  form_type = "switch"
  default   = false
}
data "hangar_parameter" "notes" {
  name      = "notes"
  form_type = "textarea"
  default   = ""
}
data "hangar_parameter" "tags" {
  name    = "tags"
  type    = "list(string)"
  default = jsonencode([])
}
data "hangar_parameter" "ides" {
  name      = "ides"
  type      = "list(string)"
  form_type = "multi-select"
  default   = jsonencode(["vim"])
  option {
    name  = "Vim"
    value = "vim"
  }
  option {
    name  = "Emacs"
    value = "emacs"
  }
}
data "hangar_parameter" "label" {
  name    = "label"
  default = "x"
  validation {
    regex = "^[a-z]+$"
    error = "lower-case letters only"
  }
}
resource "terraform_data" "box" {
  count = data.hangar_workspace.me.start_count
}
"#;

/// axe-core's source: test.sh installs it from npm (`ensure_axe`).
fn axe_source() -> String {
    let path = std::env::var("HANGAR_AXE_JS")
        .unwrap_or_else(|_| "target/axe/node_modules/axe-core/axe.min.js".to_string());
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("axe-core is missing at {path} ({e}): ./test.sh installs it from npm")
    })
}

/// The serious and critical accessibility violations axe-core finds on the open page.
async fn axe_violations(b: &mut Browser, axe: &str) -> Vec<Value> {
    b.eval(axe).await.unwrap();
    let found = b
        .eval_async(
            "axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa'] } })
               .then(r => r.violations
                 .filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .map(v => ({ id: v.id, impact: v.impact, help: v.help,
                              nodes: v.nodes.slice(0, 3).map(n => n.html) })))",
        )
        .await
        .unwrap();
    found.as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_at_desktop_and_phone_widths() {
    let app = spawn_app().await;
    let homes = tempfile::tempdir().unwrap();
    let setup = async {
        push_builtin(&app, "local").await;
        push_builtin(&app, "external").await;
        push_files(
            &app,
            "sleepy",
            &[("main.tf", &format!("{PROVIDER}{SLEEPY_TF}"))],
        )
        .await;
        push_files(
            &app,
            "form",
            &[("main.tf", &format!("{PROVIDER}{FORM_TF}"))],
        )
        .await;
        create_dev(&app.client, "local", homes.path()).await;
        let ext = create(&app, "ext", "external", &[]).await;
        app.client.follow_job(&ext, |_| {}).await.unwrap();
    };
    let (mut b, ()) = tokio::join!(Browser::launch(), setup);
    let limit = Duration::from_secs(15);
    // A template's icon and display name, as `coder templates edit` sets them; an icon
    // that would run script is refused.
    let out = app
        .cli(&[
            "templates",
            "edit",
            "local",
            "--icon",
            "/icon/folder.svg",
            "--display-name",
            "Local dev",
        ])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = app
        .cli(&[
            "templates",
            "edit",
            "local",
            "--icon",
            "javascript:alert(1)",
        ])
        .await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("icon must be a path"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        app.client.template("local").await.unwrap().icon,
        "/icon/folder.svg"
    );
    b.log_in(&app.url, "owner", PASSWORD).await;
    b.wait_for(
        "!!document.querySelector('#row-owner-dev img[src=\"/icon/folder.svg\"]')",
        "dev's row with its template's icon",
        limit,
    )
    .await;

    // The workspace page: the agent's ways in, and its usage charts filling in place as
    // samples arrive (every 5 s) without the page reloading.
    b.open(&format!("{}/@owner/dev", app.url)).await;
    b.wait_for(
        "!!document.getElementById('agent-main')",
        "the workspace page",
        limit,
    )
    .await;
    b.eval("window.loadedOnce = true").await.unwrap();
    let agent = b.text("#agent-main").await;
    for word in ["Terminal", "hangar ssh dev.main", "connected"] {
        assert!(agent.contains(word), "{word} not in {agent}");
    }
    b.wait_for(
        "(document.querySelector('#usage-main polyline')?.getAttribute('points') || '').split(' ').length >= 3",
        "three samples in the CPU chart",
        Duration::from_secs(40),
    )
    .await;
    assert_eq!(
        b.eval("window.loadedOnce === true").await.unwrap(),
        json!(true),
        "the page reloaded instead of updating in place"
    );
    let usage = b.text("#usage-main").await;
    assert!(
        usage.contains("cores") && usage.contains("Memory") && usage.contains("Disk"),
        "{usage}"
    );

    // An external workspace waits for its agent and gives its command on demand.
    b.open(&format!("{}/@owner/ext", app.url)).await;
    b.wait_for(
        "!!document.querySelector('[data-instructions]')",
        "the external workspace's connect button",
        limit,
    )
    .await;
    assert!(b.text("main").await.contains("Waiting for this agent"));
    b.eval("document.querySelector('[data-instructions]').click()")
        .await
        .unwrap();
    b.wait_for(
        "document.getElementById('connect-dialog').open && document.getElementById('connect-command').textContent.includes('HANGAR_AGENT_TOKEN=')",
        "the connect command in its dialog",
        limit,
    )
    .await;
    assert!(b.text("#connect-command").await.contains("curl -fsSL"));
    b.eval("document.getElementById('connect-close').click()")
        .await
        .unwrap();

    // Cancel a long build from its workspace's page; the page follows it to canceled.
    let job = create(&app, "nap", "sleepy", &[]).await;
    b.open(&format!("{}/@owner/nap", app.url)).await;
    b.wait_for(
        "!!document.getElementById('cancel')",
        "the building workspace's Cancel button",
        limit,
    )
    .await;
    b.eval("document.getElementById('cancel').click()")
        .await
        .unwrap();
    b.wait_for(
        "document.getElementById('status').textContent === 'canceled'",
        "the canceled build",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        app.client.job(&job).await.unwrap().status,
        hangar::model::JobStatus::Canceled
    );

    // Every page, at desktop width and at a phone's 390 px: nothing wider than the
    // screen, and no serious accessibility violation.
    let axe = axe_source();
    // The checker itself finds what it should: an input without a label is serious.
    b.open(&format!("{}/", app.url)).await;
    b.wait_for("!!document.querySelector('main h1')", "the list", limit)
        .await;
    b.eval(
        "document.querySelector('main').insertAdjacentHTML('beforeend', '<input id=\"planted\">')",
    )
    .await
    .unwrap();
    let planted = axe_violations(&mut b, &axe).await;
    assert!(
        planted.iter().any(|v| v["id"] == "label"),
        "axe missed an unlabelled input: {planted:?}"
    );
    let shots = std::env::var_os("HANGAR_WEB_SCREENSHOTS").map(std::path::PathBuf::from);
    let pages = [
        ("list", "/"),
        ("workspace", "/@owner/dev"),
        ("external", "/@owner/ext"),
        ("canceled", "/@owner/nap"),
        ("build", "/@owner/dev/builds/1"),
        ("templates", "/templates"),
        ("create", "/templates/local/create"),
        ("template", "/templates/local"),
        ("editor", "/templates/local/edit"),
    ];
    for (width, height, mobile) in [(1280, 900, false), (390, 844, true)] {
        b.viewport(width, height, mobile).await;
        for (name, path) in pages {
            b.open(&format!("{}{path}", app.url)).await;
            b.wait_for("!!document.querySelector('main h1')", name, limit)
                .await;
            let fits = b
                .eval("[document.documentElement.scrollWidth, window.innerWidth]")
                .await
                .unwrap();
            assert!(
                fits[0].as_i64() <= fits[1].as_i64(),
                "{name} at {width} px scrolls sideways: {fits}"
            );
            if !mobile {
                let violations = axe_violations(&mut b, &axe).await;
                assert!(
                    violations.is_empty(),
                    "{name}: {}",
                    serde_json::to_string_pretty(&violations).unwrap()
                );
            }
            if let Some(dir) = &shots {
                std::fs::create_dir_all(dir).unwrap();
                let png = b.screenshot().await;
                std::fs::write(dir.join(format!("{name}-{width}.png")), png).unwrap();
            }
        }
    }
    b.viewport(1280, 900, false).await;

    // The create form: each control, every error at once beside its field, then a
    // workspace with the values as the controls gave them.
    b.open(&format!("{}/templates/form/create", app.url)).await;
    b.wait_for(
        "!!document.getElementById('f-param-size')",
        "the form",
        limit,
    )
    .await;
    let kinds = b
        .eval(
            "['size', 'zone', 'fast', 'notes', 'tags'].map(n => {
               const e = document.getElementById('f-param-' + n);
               return e.tagName.toLowerCase() + ':' + (e.type || '') + ':' + (e.getAttribute('role') || '');
             }).concat([document.getElementById('f-param-region-0').type,
                        document.getElementById('f-param-ides-1').type])",
        )
        .await
        .unwrap();
    assert_eq!(
        kinds,
        json!([
            "input:range:",
            "select:select-one:",
            "input:checkbox:switch",
            "textarea:textarea:",
            "textarea:textarea:",
            "radio",
            "checkbox"
        ])
    );
    b.eval(
        "document.getElementById('f-name').value = 'Bad Name';
         document.getElementById('f-param-label').value = 'NOPE';
         document.getElementById('create-submit').click();",
    )
    .await
    .unwrap();
    b.wait_for(
        "!!document.getElementById('error-label') && !!document.getElementById('error-name')",
        "both errors beside their fields",
        limit,
    )
    .await;
    assert!(b
        .text("#error-label")
        .await
        .contains("lower-case letters only"));
    b.eval(
        "document.getElementById('f-name').value = 'formed';
         document.getElementById('f-param-label').value = 'ok';
         const size = document.getElementById('f-param-size');
         size.value = '8'; size.dispatchEvent(new Event('input', { bubbles: true }));
         document.getElementById('f-param-zone').value = 'b';
         document.getElementById('f-param-region-1').click();
         document.getElementById('f-param-fast').click();
         document.getElementById('f-param-notes').value = 'two\\nlines';
         document.getElementById('f-param-tags').value = 'red\\nblue';
         document.getElementById('f-param-ides-1').click();",
    )
    .await
    .unwrap();
    assert_eq!(b.text("#f-param-size-value").await, "8");
    b.eval("document.getElementById('create-submit').click()")
        .await
        .unwrap();
    b.wait_for(
        "location.pathname === '/@owner/formed'",
        "the new workspace's page",
        limit,
    )
    .await;
    let params = app
        .client
        .workspace("formed")
        .await
        .unwrap()
        .latest_build
        .parameters;
    for (k, v) in [
        ("size", "8"),
        ("zone", "b"),
        ("region", "us"),
        ("fast", "true"),
        ("notes", "two\nlines"),
        ("tags", r#"["red","blue"]"#),
        ("ides", r#"["vim","emacs"]"#),
        ("label", "ok"),
    ] {
        assert_eq!(params[k], v, "{k} in {params:?}");
    }

    // The template's page: versions, usage, and the editor publishing a new version,
    // after which the workspace made from it offers Update.
    b.open(&format!("{}/templates", app.url)).await;
    b.wait_for(
        "!!document.querySelector('a[href=\"/templates/form\"]')",
        "the templates",
        limit,
    )
    .await;
    b.eval("document.querySelector('a[href=\"/templates/form\"]').click()")
        .await
        .unwrap();
    b.wait_for(
        "!!document.getElementById('version-v1')",
        "the template's page",
        limit,
    )
    .await;
    assert!(
        b.text("#usage").await.contains("1 workspace uses it"),
        "{}",
        b.text("#usage").await
    );
    b.eval("document.getElementById('edit').click()")
        .await
        .unwrap();
    b.wait_for(
        "!!document.getElementById('f-content')",
        "the editor",
        limit,
    )
    .await;
    assert!(
        b.eval("document.getElementById('f-content').value.includes('hangar_parameter')")
            .await
            .unwrap()
            == json!(true)
    );
    b.eval(
        "document.getElementById('f-content').value += '\\n# edited in the browser\\n';
         document.getElementById('f-message').value = 'a comment';
         document.getElementById('publish').click();",
    )
    .await
    .unwrap();
    b.wait_for(
        "!!document.getElementById('version-v2')",
        "the new version",
        limit,
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !app.client.workspace("formed").await.unwrap().outdated {
        assert!(
            tokio::time::Instant::now() < deadline,
            "v2 never became active"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let v2 = app.client.template_version("form", "v2").await.unwrap();
    assert_eq!(v2.message, "a comment");
    // Members read templates but neither edit nor promote them.
    let member = app.user("mia", hangar::model::Role::Member).await;
    let http = reqwest::Client::new();
    let cookie = format!("hangar_session={}", member.token().unwrap());
    let denied = http
        .get(format!("{}/templates/form/edit", app.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);

    // Stop from the list: the row follows the build to stopped in place.
    b.open(&format!("{}/", app.url)).await;
    b.wait_for(
        "!!document.querySelector('#row-owner-dev .stop')",
        "dev's Stop button on the list",
        limit,
    )
    .await;
    b.eval("document.querySelector('#row-owner-dev .stop').click()")
        .await
        .unwrap();
    b.wait_for(
        "!!document.querySelector('#row-owner-dev .status.stopping, #row-owner-dev .status.stopped')",
        "the list after Stop",
        limit,
    )
    .await;
    b.eval("window.loadedOnce = true").await.unwrap();
    b.wait_for(
        "document.querySelector('#row-owner-dev .status').textContent === 'stopped' && !!document.querySelector('#row-owner-dev .start')",
        "dev stopped, with a Start button",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        b.eval("window.loadedOnce === true").await.unwrap(),
        json!(true),
        "the list reloaded instead of updating in place"
    );
    drop(b);
    app.stop().await;
}
