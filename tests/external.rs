//! External workspaces: Hangar issues the token and the command; the machine is the
//! user's. The real agent process runs the printed command against a real server.

mod common;

use std::time::Duration;

use common::*;
use hangar::wire::workspaces::AgentInstructions;
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread")]
async fn external_workspace_from_create_to_delete() {
    let app = spawn_app().await;
    push_builtin(&app, "external").await;
    push_builtin(&app, "local").await;

    let out = app
        .cli(&[
            "external-workspaces",
            "create",
            "nope",
            "--template=local",
            "-y",
        ])
        .await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("has no hangar_external_agent"),
        "{}",
        stderr(&out)
    );
    assert!(app.client.workspaces(true, "").await.unwrap().is_empty());

    let out = app
        .cli(&[
            "external-workspaces",
            "create",
            "ext",
            "--template=external",
            "-y",
        ])
        .await;
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("HANGAR_AGENT_TOKEN="),
        "{}",
        stdout(&out)
    );

    let out = app
        .cli(&[
            "external-workspaces",
            "agent-instructions",
            "ext",
            "-o",
            "json",
        ])
        .await;
    let i: AgentInstructions = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        (
            i.workspace_name.as_str(),
            i.agent_name.as_str(),
            i.auth_type.as_str()
        ),
        ("ext", "main", "token")
    );
    assert_eq!(i.auth_token.len(), 64);
    assert!(i.init_script.starts_with("#!/bin/sh"));
    let text = stdout(
        &app.cli(&[
            "external-workspaces",
            "agent-instructions",
            "owner/ext.main",
        ])
        .await,
    );
    assert!(
        text.contains(&format!(
            "curl -fsSL \"{}/api/v2/init-script/linux/amd64\" | HANGAR_AGENT_TOKEN=\"{}\" sh",
            app.url, i.auth_token
        )),
        "{text}"
    );

    // Another member may not read the token.
    let mia = app.user("mia", hangar::model::Role::Member).await;
    assert_eq!(
        mia.agent_instructions("owner/ext", None)
            .await
            .unwrap_err()
            .status(),
        Some(StatusCode::NOT_FOUND)
    );

    // Until a machine is attached, show says how to attach one.
    let out = app.cli(&["show", "ext"]).await;
    assert!(
        stdout(&out).contains("agent-instructions ext.main"),
        "{}",
        stdout(&out)
    );

    // Start/stop are refused with the reason.
    let out = app.cli(&["stop", "ext", "-y"]).await;
    assert!(
        stderr(&out).contains("external workspace"),
        "{}",
        stderr(&out)
    );

    // Run the printed command, as the user would on their machine.
    let home = tempfile::tempdir().unwrap();
    let mut agent = tokio::process::Command::new("sh")
        .args(["-c", &i.command])
        .current_dir(home.path())
        .env("HOME", home.path())
        .env_remove("HANGAR_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut healthy = false;
    for _ in 0..150 {
        let list: Vec<hangar::wire::workspaces::WorkspaceView> = serde_json::from_str(&stdout(
            &app.cli(&["external-workspaces", "list", "-o", "json"])
                .await,
        ))
        .unwrap();
        if list.len() == 1 && list[0].healthy {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(healthy, "the external agent connected and became ready");

    let out = app.cli(&["delete", "ext", "-y"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    // The token is revoked; the machine (our agent process) is left alone.
    let refused = app
        .anon()
        .with_token(&i.auth_token)
        .get::<serde_json::Value>("/workspaceagents/me")
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(StatusCode::UNAUTHORIZED));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        agent.try_wait().unwrap().is_none(),
        "deleting an external workspace touches no machine"
    );
    // The pipeline's sh exec'd the agent: take the whole process group.
    unsafe { libc::kill(-(agent.id().unwrap() as i32), libc::SIGKILL) };
    let _ = agent.wait().await;
    app.stop().await;
}
