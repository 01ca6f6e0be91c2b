//! Crash safety: kill -9 the server in the middle of an apply, start it again, and the
//! job is failed with a clear error while the state terraform wrote is kept, so the next
//! build (here a delete) manages every resource that exists.

mod common;

use std::time::Duration;

use common::*;
use hangar::client::Client;
use hangar::model::{JobStatus, Transition};
use hangar::wire::workspaces::{BuildRequest, CreateWorkspaceRequest};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_server(port: u16, data: &std::path::Path, db_url: &str) -> tokio::process::Child {
    start_server_with(port, data, db_url, &[]).await
}

async fn start_server_with(
    port: u16,
    data: &std::path::Path,
    db_url: &str,
    env: &[(&str, &str)],
) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new(hangar_bin());
    cmd.args([
        "server",
        "--address",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
        data.to_str().unwrap(),
        "--provisioners",
        "1",
    ])
    .env_remove("HANGAR_PG_URL")
    .stdout(std::process::Stdio::null())
    // The server's log, to show when an assertion fails.
    .stderr(
        std::fs::File::create(data.join(format!(
            "server-{port}-{}.log",
            uuid::Uuid::new_v4().simple()
        )))
        .unwrap(),
    )
    .kill_on_drop(true)
    .envs(env.iter().copied());
    // One database for both runs of the server: that is what a restart means.
    if std::env::var("HANGAR_TEST_DB").as_deref() == Ok("postgres") {
        cmd.env("HANGAR_PG_URL", db_url);
    }
    let child = cmd.spawn().expect("starting hangar server");
    let client = Client::new(&format!("http://127.0.0.1:{port}"), None);
    for _ in 0..100 {
        if client.first_user_exists().await.is_ok() {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not come up on port {port}");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_dash_nine_mid_apply_loses_no_resource() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let db_url = fresh_db_url(data.path()).await;
    let mut server = start_server(port, data.path(), &db_url).await;
    let (client, _) = create_owner(&url).await;
    let tf = "resource \"terraform_data\" \"first\" {}\nresource \"terraform_data\" \"slow\" {\n  depends_on = [terraform_data.first]\n  provisioner \"local-exec\" {\n    command = \"sleep 600\"\n  }\n}\n";
    let dir = template_dir(&[("main.tf", tf)]);
    let v = client
        .push_template(
            "slow",
            hangar::model::archive::pack_dir(dir.path()).unwrap(),
            None,
            "",
            true,
        )
        .await
        .unwrap();
    assert_eq!(
        client
            .follow_job(&v.job.unwrap().id, |_| {})
            .await
            .unwrap()
            .status,
        JobStatus::Succeeded
    );
    let ws = client
        .create_workspace(&CreateWorkspaceRequest {
            name: "ws".into(),
            template: "slow".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let job_id = ws.latest_build.job.id.clone();
    let mut created = false;
    for _ in 0..200 {
        let logs = client.job_logs(&job_id, 0, false).await.unwrap().logs;
        if logs
            .iter()
            .any(|l| l.text.contains("terraform_data.first: Creation complete"))
        {
            created = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(created, "terraform created the first resource");
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.start_kill().unwrap(); // SIGKILL
    server.wait().await.unwrap();

    let _server = start_server(port, data.path(), &db_url).await;
    let job = client.job(&job_id).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed, "{job:?}");
    assert_eq!(job.error_code.as_deref(), Some("lost"));
    // What terraform printed while stopping, after the server was gone, is in the logs.
    let logs = client.job_logs(&job_id, 0, false).await.unwrap().logs;
    assert!(
        logs.iter().any(|l| l.text.contains("Stopping operation")),
        "{logs:#?}"
    );
    assert!(logs.iter().all(|l| !l.text.trim().is_empty()));
    assert!(
        job.error
            .as_deref()
            .unwrap_or_default()
            .contains("recovered"),
        "{job:?}"
    );
    assert_eq!(
        std::fs::read_dir(data.path().join("work")).unwrap().count(),
        0,
        "leftover work dirs are wiped"
    );

    // The recovered state is the next build's starting point: delete destroys `first`.
    let del = client
        .build_workspace(
            "ws",
            &BuildRequest {
                transition: Some(Transition::Delete),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut destroyed = false;
    let done = client
        .follow_job(&del.job.id, |l| {
            destroyed |= l.text.contains("terraform_data.first: Destroying")
        })
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Succeeded, "{done:?}");
    if !destroyed {
        let logs = client.job_logs(&del.job.id, 0, false).await.unwrap().logs;
        for entry in std::fs::read_dir(data.path()).unwrap().flatten() {
            if entry.file_name().to_string_lossy().ends_with(".log") {
                eprintln!(
                    "== {:?}\n{}",
                    entry.file_name(),
                    std::fs::read_to_string(entry.path()).unwrap_or_default()
                );
            }
        }
        panic!("the resource created before the crash was not destroyed; delete logs: {logs:#?}");
    }
}

/// Without terraform the server still runs; every build says what is missing and how to
/// get it, and nothing is left half-made.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_terraform_is_a_clear_error() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let db_url = fresh_db_url(data.path()).await;
    // A PATH without /usr/local/bin, where terraform lives on this machine.
    let path = "/usr/bin:/bin";
    assert!(
        !std::path::Path::new("/usr/bin/terraform").exists()
            && !std::path::Path::new("/bin/terraform").exists()
    );
    let _server = start_server_with(port, data.path(), &db_url, &[("PATH", path)]).await;
    let (client, _) = create_owner(&format!("http://127.0.0.1:{port}")).await;
    let dir = template_dir(&[("main.tf", "resource \"terraform_data\" \"x\" {}\n")]);
    let v = client
        .push_template(
            "t",
            hangar::model::archive::pack_dir(dir.path()).unwrap(),
            None,
            "",
            true,
        )
        .await
        .unwrap();
    let job = client.follow_job(&v.job.unwrap().id, |_| {}).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed, "{job:?}");
    assert_eq!(
        job.error_code.as_deref(),
        Some("terraform_missing"),
        "{job:?}"
    );
    let error = job.error.unwrap_or_default();
    assert!(
        error.contains("install Terraform") && error.contains("HANGAR_TERRAFORM"),
        "{error}"
    );
    assert!(
        client.template("t").await.unwrap().active_version.is_none(),
        "a failed import activates nothing"
    );
}

/// A server asked to stop does not wait for a long build: terraform is interrupted like a
/// cancel, the state it wrote is kept, and the build says what happened.
#[tokio::test(flavor = "multi_thread")]
async fn shutdown_interrupts_running_builds_and_keeps_their_state() {
    let mut app = spawn_app().await;
    let tf = "resource \"terraform_data\" \"first\" {}\nresource \"terraform_data\" \"slow\" {\n  depends_on = [terraform_data.first]\n  provisioner \"local-exec\" {\n    command = \"sleep 600\"\n  }\n}\n";
    let dir = template_dir(&[("main.tf", tf)]);
    let v = app
        .client
        .push_template(
            "slow",
            hangar::model::archive::pack_dir(dir.path()).unwrap(),
            None,
            "",
            true,
        )
        .await
        .unwrap();
    assert_eq!(
        app.client
            .follow_job(&v.job.unwrap().id, |_| {})
            .await
            .unwrap()
            .status,
        JobStatus::Succeeded
    );
    let ws = app
        .client
        .create_workspace(&CreateWorkspaceRequest {
            name: "ws".into(),
            template: "slow".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    for _ in 0..200 {
        let logs = app
            .client
            .job_logs(&ws.latest_build.job.id, 0, false)
            .await
            .unwrap()
            .logs;
        if logs
            .iter()
            .any(|l| l.text.contains("terraform_data.first: Creation complete"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let db_url = app.db_url.clone();
    // The SQLite file lives in the data dir: keep it past the server.
    let _data = std::mem::replace(&mut app.data_dir, tempfile::tempdir().unwrap());
    let started = std::time::Instant::now();
    app.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "shutdown took {:?}",
        started.elapsed()
    );

    let db = hangar::db::Database::connect(&db_url).await.unwrap();
    let job = db.get_job(&ws.latest_build.job.id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Failed, "{job:?}");
    assert_eq!(
        job.error_code.as_deref(),
        Some("server_shutdown"),
        "{job:?}"
    );
    let state = db
        .get_build_state(&ws.latest_build.id)
        .await
        .unwrap()
        .expect("the state was kept");
    let resources = hangar::provisioner::classify::parse_state(&state).unwrap();
    assert!(
        resources
            .iter()
            .any(|r| r.address == "terraform_data.first"),
        "{resources:?}"
    );
}
