//! Prebuilt workspaces with the real agent: the server keeps a preset's prebuild running,
//! a create with the preset claims it (the same workspace, renamed and handed over, its
//! agent restarted with a token of its own), claims never share a workspace, new versions
//! replace prebuilds, and failing prebuilds back off where template admins see them.

mod common;

use std::time::Duration;

use common::*;
use hangar::db::Database;
use hangar::model::{JobStatus, Role};
use hangar::wire::templates::PrebuildView;
use hangar::wire::workspaces::{CreateWorkspaceRequest, WorkspaceView};

/// The `local` template with its home keyed by the workspace id (stable across a claim)
/// rather than owner and name, a flags resource, and a preset that keeps one prebuild.
fn prebuilt_template(homes: &std::path::Path, extra: &str) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    hangar::cli::templates::write_builtin("local", dir.path()).unwrap();
    let main = std::fs::read_to_string(dir.path().join("main.tf"))
        .unwrap()
        .replace(
            "home = \"${data.hangar_parameter.home_base.value}/${data.hangar_workspace_owner.me.name}/${data.hangar_workspace.me.name}\"",
            "home = \"${data.hangar_parameter.home_base.value}/${data.hangar_workspace.me.id}\"",
        )
        .replace("Welcome to ${data.hangar_workspace.me.name}", "Welcome");
    assert!(
        main.contains("hangar_workspace.me.id}\""),
        "the template changed: update this test"
    );
    let presets = format!(
        r#"
data "hangar_workspace_preset" "fast" {{
  name       = "fast"
  default    = true
  parameters = {{ "home_base" = "{}" }}
  prebuilds {{
    instances = 1
  }}
}}
resource "terraform_data" "flags" {{
  input = [data.hangar_workspace.me.is_prebuild, data.hangar_workspace.me.is_prebuild_claim, data.hangar_workspace_owner.me.name]
}}
{extra}
"#,
        homes.display()
    );
    vec![("main.tf".into(), main), ("prebuilds.tf".into(), presets)]
}

async fn push(app: &TestApp, name: &str, files: &[(String, String)]) {
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    push_files(app, name, &files).await;
}

async fn prebuilds(app: &TestApp, template: &str) -> Vec<PrebuildView> {
    app.client
        .get(&format!("/templates/{template}/prebuilds"))
        .await
        .unwrap()
}

/// Waits (up to `secs`) until `check` holds for the template's prebuild views.
async fn wait_prebuilds(
    app: &TestApp,
    template: &str,
    secs: u64,
    check: impl Fn(&[PrebuildView]) -> bool,
) -> Vec<PrebuildView> {
    for _ in 0..secs * 5 {
        let views = prebuilds(app, template).await;
        if check(&views) {
            return views;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "prebuilds of {template} never got there: {:?}",
        prebuilds(app, template).await
    );
}

/// The prebuilt workspaces (the owner sees every workspace).
async fn prebuilt(app: &TestApp) -> Vec<WorkspaceView> {
    app.client
        .workspaces(true, "owner:prebuilds")
        .await
        .unwrap()
}

async fn healthy(client: &hangar::client::Client, name: &str) -> WorkspaceView {
    for _ in 0..300 {
        let ws = client.workspace(name).await.unwrap();
        if ws.healthy {
            return ws;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "{name} never became healthy: {:?}",
        client.workspace(name).await.unwrap()
    );
}

fn state_flags(state: &[u8]) -> serde_json::Value {
    let state: serde_json::Value = serde_json::from_slice(state).unwrap();
    state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "terraform_data" && r["name"] == "flags")
        .map(|r| r["instances"][0]["attributes"]["output"]["value"].clone())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preset_create_claims_the_running_prebuild() {
    let homes = tempfile::tempdir().unwrap();
    let app = spawn_app_with(|c| {
        c.prebuild_interval = Duration::from_millis(300);
        c.prebuild_backoff = Duration::from_secs(2);
    })
    .await;
    push(&app, "fast", &prebuilt_template(homes.path(), "")).await;

    // The server builds one prebuild, owned by the prebuilds system user.
    wait_prebuilds(&app, "fast", 90, |v| v.len() == 1 && v[0].ready == 1).await;
    let pre = prebuilt(&app).await;
    assert_eq!(pre.len(), 1);
    assert_eq!(pre[0].owner, "prebuilds");
    let db = Database::connect(&app.db_url).await.unwrap();
    let state = db
        .get_build_state(&pre[0].latest_build.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        state_flags(&state),
        serde_json::json!([true, false, "prebuilds"])
    );
    // Nobody logs in as the system user.
    assert!(app.anon().login("prebuilds", "!").await.is_err());
    let prebuild_token = {
        let s: serde_json::Value = serde_json::from_slice(&state).unwrap();
        s["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == "hangar_agent")
            .map(|r| {
                r["instances"][0]["attributes"]["token"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .unwrap()
    };

    // alice's create with the preset gets that very workspace.
    let alice = app.user("alice", Role::Member).await;
    let ws = alice
        .create_workspace(&CreateWorkspaceRequest {
            name: "mine".into(),
            template: "fast".into(),
            preset: Some("fast".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ws.id, pre[0].id, "claimed, not built");
    assert_eq!((ws.owner.as_str(), ws.name.as_str()), ("alice", "mine"));
    let job = alice
        .follow_job(&ws.latest_build.job.id, |_| {})
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
    let state = db
        .get_build_state(&ws.latest_build.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        state_flags(&state),
        serde_json::json!([false, true, "alice"])
    );

    // The agent kept running through the claim, then got a token of its own: the
    // prebuild's token no longer works, and the workspace is healthy again.
    let ws = healthy(&alice, "mine").await;
    let old = hangar::client::Client::new(&app.url, Some(prebuild_token));
    let refused = old.agent_manifest().await.unwrap_err();
    assert_eq!(
        refused.status(),
        Some(reqwest::StatusCode::UNAUTHORIZED),
        "{refused}"
    );
    let audit = app.client.audit(20).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "claim_prebuild"));

    // A new prebuild replaces the claimed one.
    wait_prebuilds(&app, "fast", 90, |v| v[0].ready == 1).await;
    let next = prebuilt(&app).await;
    assert_eq!(next.len(), 1);
    assert_ne!(next[0].id, ws.id);

    // Two creates racing for one prebuild: one claims it, the other builds.
    let bob = app.user("bob", Role::Member).await;
    let req = |name: &str| CreateWorkspaceRequest {
        name: name.into(),
        template: "fast".into(),
        preset: Some("fast".into()),
        ..Default::default()
    };
    let (second, first) = (req("second"), req("first"));
    let (a, b) = tokio::join!(
        alice.create_workspace(&second),
        bob.create_workspace(&first)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.id, b.id);
    assert_eq!(
        [a.id == next[0].id, b.id == next[0].id]
            .iter()
            .filter(|c| **c)
            .count(),
        1,
        "exactly one claim"
    );
    for (client, w) in [(&alice, &a), (&bob, &b)] {
        let job = client
            .follow_job(&w.latest_build.job.id, |_| {})
            .await
            .unwrap();
        assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
    }

    // A new active version: the old version's prebuild goes, a new one comes.
    let mut v2 = prebuilt_template(homes.path(), "# v2");
    v2[1].1.push_str("\n# second version\n");
    push(&app, "fast", &v2).await;
    let active = app
        .client
        .template("fast")
        .await
        .unwrap()
        .active_version
        .unwrap();
    wait_prebuilds(&app, "fast", 90, |v| v[0].ready == 1 && v[0].building == 0).await;
    let mut versions = Vec::new();
    for _ in 0..300 {
        versions = prebuilt(&app)
            .await
            .into_iter()
            .map(|p| p.template_version)
            .collect();
        if versions == [active.clone()] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(versions, [active], "the old version's prebuild is gone");

    // Without prebuilds in the active version, they are all deleted.
    let mut v3 = prebuilt_template(homes.path(), "");
    v3[1].1 = v3[1].1.replace("prebuilds {\n    instances = 1\n  }", "");
    push(&app, "fast", &v3).await;
    for _ in 0..300 {
        if prebuilt(&app).await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(prebuilt(&app).await.is_empty());
    for (client, name) in [(&alice, "mine"), (&alice, "second"), (&bob, "first")] {
        delete_workspace(client, name).await;
    }
    db.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_prebuilds_back_off_where_template_admins_see_them() {
    let homes = tempfile::tempdir().unwrap();
    let app = spawn_app_with(|c| {
        c.prebuild_interval = Duration::from_millis(200);
        c.prebuild_backoff = Duration::from_secs(60);
    })
    .await;
    let broken = r#"
resource "terraform_data" "fails" {
  count = data.hangar_workspace.me.is_prebuild ? 1 : 0
  provisioner "local-exec" {
    command = "echo the image registry is unreachable >&2; exit 3"
  }
}
"#;
    push(&app, "broken", &prebuilt_template(homes.path(), broken)).await;
    let views = wait_prebuilds(&app, "broken", 90, |v| v[0].failures >= 1).await;
    assert!(
        views[0]
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("exit"),
        "{views:?}"
    );
    assert!(views[0].next_attempt_at.is_some(), "backing off: {views:?}");
    // Backing off: no new attempt for a while (the failed one is being deleted).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let views = prebuilds(&app, "broken").await;
    assert_eq!((views[0].failures, views[0].building), (1, 0), "{views:?}");
    // Members do not see prebuild internals; the template page shows admins.
    let member = app.user("mia", Role::Member).await;
    let err = member
        .get::<Vec<PrebuildView>>("/templates/broken/prebuilds")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(reqwest::StatusCode::FORBIDDEN));
    let page = page_as_owner(&app, "/templates/broken").await;
    assert!(
        page.contains("Prebuilt workspaces") && page.contains("1 in a row"),
        "{page}"
    );
    // A user's create with the preset still works: a full build, no claim.
    let ws = app
        .client
        .create_workspace(&CreateWorkspaceRequest {
            name: "dev".into(),
            template: "broken".into(),
            preset: Some("fast".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let job = app
        .client
        .follow_job(&ws.latest_build.job.id, |_| {})
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
    delete_workspace(&app.client, "dev").await;
    let mut calm = prebuilt_template(homes.path(), "");
    calm[1].1 = calm[1].1.replace("prebuilds {\n    instances = 1\n  }", "");
    push(&app, "broken", &calm).await;
    for _ in 0..300 {
        if prebuilt(&app).await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.stop().await;
}
