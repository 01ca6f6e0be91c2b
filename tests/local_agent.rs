//! The `local` template's agent, for real: the build starts it through the server's init
//! script (downloading this very binary), it connects, runs its startup script, reports
//! metadata, and is gone after stop and delete.

mod common;

use std::time::Duration;

use common::*;
use hangar::model::{JobStatus, Transition};
use hangar::wire::workspaces::{BuildRequest, CreateWorkspaceRequest, WorkspaceView};

fn agent_pid(home: &std::path::Path) -> Option<i32> {
    std::fs::read_to_string(home.join(".hangar/agent.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..150 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn local_agent_connects_reports_and_goes_away() {
    let app = spawn_app().await;
    push_builtin(&app, "local").await;
    let homes = tempfile::tempdir().unwrap();
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
    let home = homes.path().join("owner/dev");

    let ws: WorkspaceView = until("a healthy workspace", async || {
        let ws = app.client.workspace("dev").await.ok()?;
        ws.healthy.then_some(ws)
    })
    .await;
    let agent = ws.agents().next().expect("an agent").clone();
    assert_eq!(
        agent.host_address.as_deref(),
        Some("terraform_data.agent_process[0]")
    );
    let logs = until("startup output", async || {
        let logs = app.client.agent_logs(&agent.id, 0).await.ok()?;
        logs.iter()
            .any(|l| l.text.contains("is ready"))
            .then_some(logs)
    })
    .await;
    assert!(
        logs.iter().any(|l| l
            .text
            .contains(&format!("home directory {} is ready", home.display()))),
        "{logs:?}"
    );
    assert!(
        home.join(".hangar-welcome").exists(),
        "the startup script ran in the workspace"
    );
    let usage = until("metadata", async || {
        let m = app.client.agent_metadata(&agent.id).await.ok()?;
        m.into_iter()
            .find(|m| m.key == "home_usage" && m.collected_at.is_some())
    })
    .await;
    assert!(
        usage.error.is_empty() && !usage.value.trim().is_empty(),
        "{usage:?}"
    );
    // The agent measures what this machine (or the container the suite runs in) has.
    let reported = until("resource usage", async || {
        let ws = app.client.workspace("dev").await.ok()?;
        let usage = ws.agents().find_map(|a| a.usage.clone());
        usage
    })
    .await;
    let mut here = hangar::agent::usage::Sampler::new(
        hangar::agent::usage::Source::detect(),
        vec![home.clone()],
    );
    let here = here.sample();
    assert_eq!(reported.cpu_total_cores, here.cpu_total_cores);
    assert_eq!(reported.memory_total_bytes, here.memory_total_bytes);
    assert!(reported.memory_used_bytes > 0);
    assert_eq!(reported.disks[0].path, home.display().to_string());
    assert_eq!(reported.disks[0].total_bytes, here.disks[0].total_bytes);
    let history = app.client.agent_usage(&agent.id).await.unwrap();
    assert!(history
        .last()
        .is_some_and(|u| u.collected_at >= reported.collected_at));
    let out = app.cli(&["show", "dev"]).await;
    assert!(stdout(&out).contains("usage: cpu "), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("Home directory size") && stdout(&out).contains("is ready"),
        "{}",
        stdout(&out)
    );

    // Stop: the agent process is gone and its token refused.
    let pid = agent_pid(&home).expect("the agent's pid file");
    assert!(alive(pid));
    let token_holder = std::fs::read(format!("/proc/{pid}/environ"))
        .map(|e| String::from_utf8_lossy(&e).into_owned())
        .unwrap_or_default();
    let token = token_holder
        .split('\0')
        .find_map(|kv| kv.strip_prefix("HANGAR_AGENT_TOKEN="))
        .unwrap_or_default()
        .to_string();
    assert_eq!(token.len(), 64, "the agent got its token from the build");
    let b = app
        .client
        .build_workspace(
            "dev",
            &BuildRequest {
                transition: Some(Transition::Stop),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        app.client
            .follow_job(&b.job.id, |_| {})
            .await
            .unwrap()
            .status,
        JobStatus::Succeeded
    );
    until("the agent to exit", async || (!alive(pid)).then_some(())).await;
    let refused = app
        .anon()
        .with_token(&token)
        .get::<serde_json::Value>("/workspaceagents/me")
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(reqwest::StatusCode::UNAUTHORIZED));

    // Delete: nothing left on disk.
    let b = app
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
    assert_eq!(
        app.client
            .follow_job(&b.job.id, |_| {})
            .await
            .unwrap()
            .status,
        JobStatus::Succeeded
    );
    assert!(!home.exists());
    app.stop().await;
}
