//! How jobs end and who runs them: a job's outcome is stored in one transaction with
//! its completion; template pushes and their imports; provisioner worker ids.

mod common;

use common::*;
use hangar::db::Database;
use hangar::model::{JobStatus, Transition};
use hangar::wire::workspaces::{BuildRequest, CreateWorkspaceRequest};

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

fn postgres() -> bool {
    std::env::var("HANGAR_TEST_DB").as_deref() == Ok("postgres")
}

/// A trigger in the test's database that refuses to mark a workspace build succeeded:
/// a database error at the very last write of a build's outcome.
async fn refuse_build_success(db: &Database) {
    let statements: &[&str] = if postgres() {
        &[
            "CREATE OR REPLACE FUNCTION refuse_success() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_success BEFORE UPDATE OF status ON jobs FOR EACH ROW WHEN (NEW.status = 'succeeded' AND OLD.kind = 'workspace_build') EXECUTE FUNCTION refuse_success()",
        ]
    } else {
        &["CREATE TRIGGER IF NOT EXISTS refuse_success BEFORE UPDATE OF status ON jobs WHEN NEW.status = 'succeeded' AND OLD.kind = 'workspace_build' BEGIN SELECT RAISE(ABORT, 'injected failure'); END"]
    };
    for sql in statements {
        sqlx::query(sql).execute(db.pool()).await.unwrap();
    }
}

async fn allow_build_success(db: &Database) {
    let sql = if postgres() {
        "DROP TRIGGER refuse_success ON jobs"
    } else {
        "DROP TRIGGER refuse_success"
    };
    sqlx::query(sql).execute(db.pool()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_build_outcome_is_stored_whole_or_not_at_all() {
    let app = spawn_app().await;
    push_files(&app, "vm", &[("main.tf", AGENT_TF)]).await;
    let db = Database::connect(&app.db_url).await.unwrap();
    refuse_build_success(&db).await;

    // The apply works, then completing the job fails: none of what the build found is
    // stored, and the job fails saying why, with the state kept.
    let ws = app
        .client
        .create_workspace(&CreateWorkspaceRequest {
            name: "dev".into(),
            template: "vm".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let build = ws.latest_build;
    let job = app.client.follow_job(&build.job.id, |_| {}).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error_code.as_deref(), Some("internal"), "{job:?}");
    let error = job.error.unwrap_or_default();
    assert!(error.contains("injected failure"), "{error}");
    assert!(db.list_resources(&build.id).await.unwrap().is_empty());
    assert!(db.list_agents(&build.id).await.unwrap().is_empty());
    let state = db.get_build_state(&build.id).await.unwrap();
    assert!(
        state.is_some_and(|s| String::from_utf8_lossy(&s).contains("terraform_data")),
        "the state is kept with the failure"
    );

    // Without the fault, the next start records everything (from the kept state).
    allow_build_success(&db).await;
    let started = app
        .client
        .build_workspace("dev", &BuildRequest::default())
        .await
        .unwrap();
    let job = app
        .client
        .follow_job(&started.job.id, |_| {})
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
    assert_eq!(db.list_resources(&started.id).await.unwrap().len(), 2);
    assert_eq!(db.list_agents(&started.id).await.unwrap().len(), 1);

    // A delete whose completion fails leaves the workspace in place.
    refuse_build_success(&db).await;
    let deleted = app
        .client
        .build_workspace(
            "dev",
            &BuildRequest {
                transition: Some(Transition::Delete),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let job = app
        .client
        .follow_job(&deleted.job.id, |_| {})
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    let ws = db.get_workspace(&ws.id).await.unwrap().unwrap();
    assert!(
        !ws.deleted,
        "a delete that did not complete deleted the workspace"
    );
    assert_eq!(app.client.workspace("dev").await.unwrap().name, "dev");
    db.close().await;
    app.stop().await;
}

const PLAIN_TF: &str = "resource \"terraform_data\" \"x\" {}\n";

#[tokio::test(flavor = "multi_thread")]
async fn parallel_pushes_get_distinct_names_and_all_import() {
    let app = spawn_app().await;
    let dir = template_dir(&[("main.tf", PLAIN_TF)]);
    let archive = hangar::model::archive::pack_dir(dir.path()).unwrap();
    let pushes = (0..6).map(|i| {
        let client = app.client.clone();
        let archive = archive.clone();
        tokio::spawn(async move {
            client
                .push_template("busy", archive, None, &format!("push {i}"), true)
                .await
        })
    });
    let mut names = Vec::new();
    for push in futures::future::join_all(pushes).await {
        let v = push.unwrap().expect("every push is accepted");
        let job = app
            .client
            .follow_job(&v.job.as_ref().unwrap().id, |_| {})
            .await
            .unwrap();
        assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
        names.push(v.name);
    }
    names.sort();
    assert_eq!(names, ["v1", "v2", "v3", "v4", "v5", "v6"]);
    app.stop().await;
}

/// Opens the FIFO at `gate` for terraform's `file()` reads until `done` says stop: each
/// read gets "open" and end of file.
async fn serve_gate(gate: &std::path::Path, mut done: impl FnMut() -> bool) {
    use std::os::unix::fs::OpenOptionsExt;
    while !done() {
        // Non-blocking: opening a FIFO for writing fails at once while nobody reads it.
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(gate)
        {
            Ok(mut f) => {
                use std::io::Write;
                let _ = f.write_all(b"open");
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_newest_push_becomes_active_whichever_import_ends_last() {
    let app = spawn_app().await;
    let gates = tempfile::tempdir().unwrap();
    let gate = gates.path().join("gate");
    let made = std::process::Command::new("mkfifo")
        .arg(&gate)
        .status()
        .unwrap();
    assert!(made.success());
    // The older push's import blocks reading the FIFO until the test opens it.
    let gated = format!(
        "{PLAIN_TF}output \"gate\" {{\n  value = file(\"{}\")\n}}\n",
        gate.display()
    );
    let push = |files: &[(&str, &str)]| {
        let dir = template_dir(files);
        let archive = hangar::model::archive::pack_dir(dir.path()).unwrap();
        let client = app.client.clone();
        async move {
            client
                .push_template("order", archive, None, "", true)
                .await
                .unwrap()
        }
    };
    let older = push(&[("main.tf", &gated)]).await;
    let older_job = older.job.clone().unwrap().id;
    // It is running, stuck on the gate.
    for _ in 0..100 {
        if app.client.job(&older_job).await.unwrap().status == JobStatus::Running {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let newer = push(&[("main.tf", PLAIN_TF)]).await;
    let job = app
        .client
        .follow_job(&newer.job.unwrap().id, |_| {})
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
    assert_eq!(
        app.client.job(&older_job).await.unwrap().status,
        JobStatus::Running,
        "the older import is still waiting at its gate"
    );
    assert_eq!(
        app.client.template("order").await.unwrap().active_version,
        Some(newer.name.clone())
    );

    // The older import ends last, and does not take the newer one's place.
    let client = app.client.clone();
    let watch = tokio::spawn({
        let older_job = older_job.clone();
        async move { client.follow_job(&older_job, |_| {}).await.unwrap() }
    });
    serve_gate(&gate, || watch.is_finished()).await;
    let job = watch.await.unwrap();
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
    assert_eq!(
        app.client.template("order").await.unwrap().active_version,
        Some(newer.name),
        "the import that ended last took over from the newest push ({})",
        older.name
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn each_provisioner_records_its_own_worker_id() {
    let app = spawn_app_with(|c| c.provisioners = 2).await;
    let tf = "resource \"terraform_data\" \"slow\" {\n  provisioner \"local-exec\" {\n    command = \"sleep 3\"\n  }\n}\n";
    push_files(&app, "slow", &[("main.tf", tf)]).await;
    let mut jobs = Vec::new();
    for name in ["one", "two"] {
        let ws = app
            .client
            .create_workspace(&CreateWorkspaceRequest {
                name: name.into(),
                template: "slow".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        jobs.push(ws.latest_build.job.id);
    }
    let mut workers = Vec::new();
    for id in &jobs {
        let job = app.client.follow_job(id, |_| {}).await.unwrap();
        assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
        workers.push(job.worker_id.expect("a finished job names its worker"));
    }
    for w in &workers {
        let n = w.rsplit('-').next().unwrap();
        assert!(
            w.starts_with("server-") && (n == "1" || n == "2"),
            "worker id {w}"
        );
    }
    assert_ne!(
        workers[0], workers[1],
        "two builds that ran at once on two provisioners"
    );
    app.stop().await;
}
