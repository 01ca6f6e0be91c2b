//! A server started as root runs terraform, and so every template's local-exec, as the
//! unprivileged `hangar-terraform`: a template cannot read the database or the server's
//! environment, nor list its data dir, and builds still work end to end (the init cache,
//! state read back from the user's work dir, a delete that finds what the create made).
//! `tests/sessions.rs` also runs the `local` template this way and opens an SSH session
//! into it; `tests/crash.rs` kills such a server mid-apply.

mod common;

use std::os::unix::fs::PermissionsExt;
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

fn server(data: &std::path::Path, port: u16, db_url: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(hangar_bin());
    cmd.args(["server", "--address", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data)
        .env_remove("HANGAR_PG_URL")
        .env_remove("HANGAR_TERRAFORM_USER")
        // Something only the server's environment holds, for the template to look for.
        .env("HANGAR_TEST_SERVER_SECRET", "s3cr3t-of-the-server")
        .kill_on_drop(true);
    if std::env::var("HANGAR_TEST_DB").as_deref() == Ok("postgres") {
        cmd.env("HANGAR_PG_URL", db_url);
    }
    cmd
}

/// Waits for the server at `url` and makes its first user.
async fn owner_of(url: &str) -> Client {
    let anon = Client::new(url, None);
    for _ in 0..100 {
        if anon.first_user_exists().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    create_owner(url).await.0
}

/// A template whose local-exec reports who it runs as and what it can reach.
fn probe(data: &std::path::Path, server_pid: u32) -> String {
    let data = data.display();
    format!(
        r#"resource "terraform_data" "probe" {{
  provisioner "local-exec" {{
    command = <<-EOT
      echo "probe user=$(id -un)"
      if cat '{data}/hangar.db' >/dev/null 2>&1; then echo "probe db=readable"; else echo "probe db=denied"; fi
      if cat /proc/{server_pid}/environ >/dev/null 2>&1; then echo "probe environ=readable"; else echo "probe environ=denied"; fi
      if ls '{data}' >/dev/null 2>&1; then echo "probe listing=allowed"; else echo "probe listing=denied"; fi
      if touch '{data}/work/planted' 2>/dev/null; then echo "probe workroot=writable"; else echo "probe workroot=closed"; fi
      if env | grep -q s3cr3t-of-the-server; then echo "probe env=leaked"; else echo "probe env=clean"; fi
    EOT
  }}
}}
"#
    )
}

async fn probe_lines(client: &Client, job: &str) -> Vec<String> {
    let logs = client.job_logs(job, 0, false).await.unwrap().logs;
    let mut lines: Vec<String> = logs
        .into_iter()
        .filter_map(|l| {
            // The command's output, not the line that shows the command.
            let (_, said) = l.text.split_once("(local-exec): probe ")?;
            Some(said.trim().to_string())
        })
        .collect();
    lines.sort();
    lines.dedup();
    lines
}

#[tokio::test(flavor = "multi_thread")]
async fn templates_run_as_the_unprivileged_user_and_reach_no_server_secret() {
    let Some(user) = terraform_user() else {
        // Not root: no switch is possible, and asking for one says so.
        let data = tempfile::tempdir().unwrap();
        let out = server(data.path(), free_port(), "")
            .args(["--terraform-user", "nobody"])
            .output()
            .await
            .unwrap();
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("needs the server to run as root"),
            "{}",
            stderr(&out)
        );
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let db_url = fresh_db_url(data.path()).await;
    let mut child = server(data.path(), port, &db_url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = owner_of(&url).await;

    // The data dir lets the user pass to the work dirs, not list them; the database is
    // private by its own mode.
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(data.path()), 0o711);
    if !db_url.starts_with("postgres") {
        assert_eq!(mode(&data.path().join("hangar.db")), 0o600);
    }

    let dir = template_dir(&[("main.tf", &probe(data.path(), child.id().unwrap()))]);
    let v = client
        .push_template(
            "probe",
            hangar::model::archive::pack_dir(dir.path()).unwrap(),
            None,
            "",
            true,
        )
        .await
        .unwrap();
    let import = client.follow_job(&v.job.unwrap().id, |_| {}).await.unwrap();
    assert_eq!(import.status, JobStatus::Succeeded, "{:?}", import.error);

    // Two workspaces: the second's init comes from the cache the first's filled, which
    // the server owns and the user can only read.
    for name in ["one", "two"] {
        let ws = create_built(
            &client,
            &CreateWorkspaceRequest {
                name: name.into(),
                template: "probe".into(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(
            probe_lines(&client, &ws.latest_build.job.id).await,
            [
                "db=denied",
                "env=clean",
                "environ=denied",
                "listing=denied",
                &format!("user={}", user.name),
                "workroot=closed",
            ],
            "{name}"
        );
    }
    assert!(!data.path().join("work/planted").exists());

    // The state terraform's user wrote was read back: a delete finds the resource and
    // destroys it.
    let b = client
        .build_workspace(
            "one",
            &BuildRequest {
                transition: Some(Transition::Delete),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let job = client.follow_job(&b.job.id, |_| {}).await.unwrap();
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
    let logs = client.job_logs(&b.job.id, 0, false).await.unwrap().logs;
    assert!(
        logs.iter()
            .any(|l| l.text.contains("terraform_data.probe") && l.text.contains("Destr")),
        "the delete destroyed nothing: {:?}",
        logs.iter().map(|l| &l.text).collect::<Vec<_>>()
    );
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_terraform_user_that_does_not_exist_stops_the_server_with_the_fix() {
    let data = tempfile::tempdir().unwrap();
    let out = server(data.path(), free_port(), &fresh_db_url(data.path()).await)
        .args(["--terraform-user", "no-such-hangar-user"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    if terraform_user().is_some() {
        assert!(
            err.contains("\"no-such-hangar-user\", which does not exist"),
            "{err}"
        );
        assert!(err.contains("useradd --system"), "{err}");
    } else {
        assert!(err.contains("needs the server to run as root"), "{err}");
    }
}

/// A data dir under a directory terraform's user cannot pass (root's home, say) makes
/// every build fail with the reason and the fix, not with a permission error in init.
#[tokio::test(flavor = "multi_thread")]
async fn a_data_dir_the_user_cannot_reach_fails_builds_with_the_fix() {
    let closed = tempfile::tempdir().unwrap();
    std::fs::set_permissions(closed.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let data = closed.path().join("data");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let db_url = fresh_db_url(&data).await;
    let mut child = server(&data, port, &db_url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = owner_of(&url).await;
    let dir = template_dir(&[("main.tf", "resource \"terraform_data\" \"x\" {}\n")]);
    let v = client
        .push_template(
            "x",
            hangar::model::archive::pack_dir(dir.path()).unwrap(),
            None,
            "",
            true,
        )
        .await
        .unwrap();
    let import = client.follow_job(&v.job.unwrap().id, |_| {}).await.unwrap();
    match terraform_user() {
        Some(user) => {
            assert_eq!(import.status, JobStatus::Failed);
            let error = import.error.unwrap_or_default();
            assert!(
                error.contains(&format!("{}, who cannot reach the data dir", user.name))
                    && error.contains("/var/lib/hangar"),
                "{error}"
            );
        }
        // Not root: terraform runs as the test's user, who may enter its own dir.
        None => assert_eq!(import.status, JobStatus::Succeeded, "{:?}", import.error),
    }
    child.kill().await.unwrap();
}

/// Whatever a template leaves where the state goes, the server reads at most a bounded
/// amount of it: a sparse file of gigabytes fails the build at once, memory untouched.
#[tokio::test(flavor = "multi_thread")]
async fn a_huge_state_file_fails_the_build_without_being_read() {
    let app = spawn_app().await;
    let tf = "resource \"terraform_data\" \"x\" {\n  provisioner \"local-exec\" {\n    command = \"truncate -s 4G .big && mv .big terraform.tfstate\"\n  }\n}\n";
    push_files(&app, "huge", &[("main.tf", tf)]).await;
    let job = create_and_follow(
        &app.client,
        &CreateWorkspaceRequest {
            name: "huge".into(),
            template: "huge".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(job.status, JobStatus::Failed);
    let error = job.error.unwrap_or_default();
    assert!(error.contains("larger than 256 MiB"), "{error}");
    app.stop().await;
}
