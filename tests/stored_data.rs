//! What is stored and how it is read back: favorites per user, corrupt rows surfaced
//! as errors, and retention of old builds' logs and states.

mod common;

use common::*;
use hangar::db::Database;
use hangar::model::{now_ms, JobStatus, Role, Transition};
use hangar::wire::agent::{LogLine, MetadataResult};
use hangar::wire::workspaces::{BuildRequest, CreateWorkspaceRequest};

const PLAIN_TF: &str = "resource \"terraform_data\" \"x\" {}\n";

#[tokio::test(flavor = "multi_thread")]
async fn favorites_belong_to_the_user_who_marks_them() {
    let app = spawn_app().await;
    push_files(&app, "plain", &[("main.tf", PLAIN_TF)]).await;
    let member = app.user("bob", Role::Member).await;
    for (client, name) in [(&member, "bobs"), (&app.client, "mine")] {
        let ws = client
            .create_workspace(&CreateWorkspaceRequest {
                name: name.into(),
                template: "plain".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let job = client
            .follow_job(&ws.latest_build.job.id, |_| {})
            .await
            .unwrap();
        assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
    }
    // The owner (who sees every workspace) marks bob's.
    app.client.set_favorite("bob/bobs", true).await.unwrap();
    assert!(app.client.workspace("bob/bobs").await.unwrap().favorite);
    assert!(
        !member.workspace("bobs").await.unwrap().favorite,
        "the owner's mark shows as bob's favorite"
    );
    let bobs_list = member.workspaces(false, "").await.unwrap();
    assert!(bobs_list.iter().all(|w| !w.favorite), "{bobs_list:?}");
    // The owner's list has it, first.
    let all = app.client.workspaces(true, "").await.unwrap();
    let names: Vec<(&str, bool)> = all.iter().map(|w| (w.name.as_str(), w.favorite)).collect();
    assert_eq!(names, [("bobs", true), ("mine", false)]);
    // Bob's own mark is his, and unmarking by the owner leaves it.
    member.set_favorite("bobs", true).await.unwrap();
    app.client.set_favorite("bob/bobs", false).await.unwrap();
    assert!(member.workspace("bobs").await.unwrap().favorite);
    assert!(!app.client.workspace("bob/bobs").await.unwrap().favorite);
    // The CLI shows the same.
    let out = app.cli(&["list", "-a"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains('★'), "{}", stdout(&out));
    app.stop().await;
}

const AGENT_TF: &str = r#"
terraform {
  required_providers {
    hangar = { source = "hangar/hangar" }
  }
}
data "hangar_workspace" "me" {}

resource "hangar_agent" "main" {
  os   = "linux"
  arch = "amd64"
}
resource "terraform_data" "vm" {
  count = data.hangar_workspace.me.start_count
  input = hangar_agent.main.id
}
resource "terraform_data" "home" {}
"#;

/// Runs a build of `dev` to success; answers (build id, job id).
async fn build(app: &TestApp, transition: Transition) -> (String, String) {
    let req = BuildRequest {
        transition: Some(transition),
        ..Default::default()
    };
    let b = app.client.build_workspace("dev", &req).await.unwrap();
    let job = app.client.follow_job(&b.job.id, |_| {}).await.unwrap();
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
    (b.id, b.job.id)
}

async fn create_dev(app: &TestApp) -> (String, String) {
    push_files(app, "vm", &[("main.tf", AGENT_TF)]).await;
    let ws = app
        .client
        .create_workspace(&CreateWorkspaceRequest {
            name: "dev".into(),
            template: "vm".into(),
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
    (ws.latest_build.id, job.id)
}

/// Whether a build still has its logs and its state.
async fn kept(db: &Database, (build, job): &(String, String)) -> (bool, bool) {
    (
        !db.list_job_logs(job, 0).await.unwrap().is_empty(),
        db.get_build_state(build).await.unwrap().is_some(),
    )
}

/// Gives the build's agent a log line and a metadata value; answers the agent's id.
async fn agent_reports(db: &Database, build: &str) -> String {
    let agent = db.list_agents(build).await.unwrap().remove(0).id;
    let line = LogLine {
        at: now_ms(),
        source: "startup_script".into(),
        level: "info".into(),
        text: "hello".into(),
    };
    db.insert_agent_logs(&agent, &[line], 1 << 20)
        .await
        .unwrap();
    let value = MetadataResult {
        key: "load".into(),
        value: "0.1".into(),
        error: String::new(),
        collected_at: now_ms(),
    };
    db.upsert_agent_metadata(&agent, &[value]).await.unwrap();
    agent
}

async fn agent_rows(db: &Database, agent: &str) -> usize {
    db.list_agent_logs(agent, 0, 100).await.unwrap().len()
        + db.list_agent_metadata(agent).await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_purges_old_builds_and_keeps_what_workspaces_need() {
    let app = spawn_app().await;
    let db = Database::connect(&app.db_url).await.unwrap();
    let first = create_dev(&app).await;
    let stopped = build(&app, Transition::Stop).await;
    let started = build(&app, Transition::Start).await;
    let old_agent = agent_reports(&db, &first.0).await;
    let live_agent = agent_reports(&db, &started.0).await;
    for b in [&first, &stopped, &started] {
        assert_eq!(kept(&db, b).await, (true, true));
    }

    let purged = db.purge_before(now_ms()).await.unwrap();
    assert_eq!(purged.build_states, 2, "{purged:?}");
    assert!(purged.job_log_lines > 0, "{purged:?}");
    assert_eq!(kept(&db, &first).await, (false, false));
    assert_eq!(kept(&db, &stopped).await, (false, false));
    assert_eq!(kept(&db, &started).await, (true, true), "the latest build");
    assert_eq!(agent_rows(&db, &old_agent).await, 0);
    assert_eq!(agent_rows(&db, &live_agent).await, 2, "the running agent's");

    // A stop is now the latest: the last successful start keeps its logs and state,
    // while its agent no longer runs.
    let stopped_again = build(&app, Transition::Stop).await;
    db.purge_before(now_ms()).await.unwrap();
    assert_eq!(kept(&db, &started).await, (true, true), "the last start");
    assert_eq!(kept(&db, &stopped_again).await, (true, true));
    assert_eq!(agent_rows(&db, &live_agent).await, 0);

    // Nothing a build needs is gone: the workspace starts and stops as before.
    let restarted = build(&app, Transition::Start).await;
    assert_eq!(db.list_resources(&restarted.0).await.unwrap().len(), 2);
    assert_eq!(
        app.client.workspace("dev").await.unwrap().status,
        hangar::model::WorkspaceStatus::Running
    );
    build(&app, Transition::Stop).await;
    db.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_purges_on_its_own_with_a_retention() {
    let app = spawn_app_with(|c| c.retention = Some(std::time::Duration::from_secs(1))).await;
    let db = Database::connect(&app.db_url).await.unwrap();
    let first = create_dev(&app).await;
    build(&app, Transition::Stop).await;
    let started = build(&app, Transition::Start).await;
    let mut purged = false;
    for _ in 0..100 {
        if kept(&db, &first).await == (false, false) {
            purged = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        purged,
        "the first build's logs and state outlived a 1s retention"
    );
    assert_eq!(kept(&db, &started).await, (true, true));
    db.close().await;
    app.stop().await;

    // The flag takes a duration and says so when it is not one.
    let data = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(hangar_bin())
        .args(["server", "--address", "127.0.0.1:0", "--retention", "soon"])
        .arg("--data-dir")
        .arg(data.path())
        .env_remove("HANGAR_PG_URL")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--retention soon"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_row_fails_the_job_and_the_request_that_read_it() {
    use hangar::provisioner::queue::{Outcome, Runner};
    // No provisioner in the server: this test runs the jobs itself.
    let app = spawn_app_with(|c| c.provisioners = 0).await;
    let db = Database::connect(&app.db_url).await.unwrap();
    let mut config =
        hangar::config::Config::new(app.data_dir.path().to_path_buf(), app.url.clone());
    config.hangar_binary = hangar_bin();
    let runner = Runner::new(
        db.clone(),
        &config,
        tokio::sync::broadcast::channel(16).0,
        Default::default(),
    )
    .unwrap()
    .provisioner(1);
    let size = "data \"hangar_parameter\" \"size\" {\n  name = \"size\"\n  default = \"2\"\n}\nresource \"terraform_data\" \"box\" {\n  input = data.hangar_parameter.size.value\n}\n";
    let dir = template_dir(&[("main.tf", &format!("{PROVIDER}{size}"))]);
    let archive = hangar::model::archive::pack_dir(dir.path()).unwrap();
    app.client
        .push_template("sized", archive, None, "", true)
        .await
        .unwrap();
    assert_eq!(
        runner.try_execute().await.unwrap(),
        Outcome::Completed(JobStatus::Succeeded)
    );
    let ws = app
        .client
        .create_workspace(&CreateWorkspaceRequest {
            name: "dev".into(),
            template: "sized".into(),
            parameters: [("size".to_string(), "3".to_string())].into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let build = ws.latest_build;

    // The queued build's parameters are cut short: the build must not run without them.
    sqlx::query("UPDATE workspace_builds SET parameters = $1 WHERE id = $2")
        .bind("{\"size\": \"3\"")
        .bind(&build.id)
        .execute(db.pool())
        .await
        .unwrap();
    assert_eq!(
        runner.try_execute().await.unwrap(),
        Outcome::Completed(JobStatus::Failed)
    );
    let job = app.client.job(&build.job.id).await.unwrap();
    assert_eq!(job.error_code.as_deref(), Some("internal"));
    let error = job.error.unwrap_or_default();
    assert!(
        error.contains(&format!("the parameters of build {}", build.id)),
        "{error}"
    );
    assert!(db.get_build_state(&build.id).await.unwrap().is_none());
    // Requests reading the row fail too, rather than showing no parameters.
    let err = app.client.workspace("dev").await.unwrap_err();
    assert_eq!(
        err.status(),
        Some(reqwest::StatusCode::INTERNAL_SERVER_ERROR)
    );

    // A template version's parameters likewise.
    sqlx::query("UPDATE template_versions SET parameters = 'not json'")
        .execute(db.pool())
        .await
        .unwrap();
    let err = app
        .client
        .template_version("sized", "v1")
        .await
        .unwrap_err();
    assert_eq!(
        err.status(),
        Some(reqwest::StatusCode::INTERNAL_SERVER_ERROR)
    );
    let err = app
        .client
        .create_workspace(&CreateWorkspaceRequest {
            name: "other".into(),
            template: "sized".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.status(),
        Some(reqwest::StatusCode::INTERNAL_SERVER_ERROR)
    );
    db.close().await;
    app.stop().await;
}
