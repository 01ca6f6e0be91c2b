//! `/metrics`: Prometheus text that moves with what the server does, and the optional
//! token in front of it. (Agents and sessions are checked where they are live, in
//! tests/sessions.rs.)

mod common;

use common::*;

const TEMPLATE: &str = r#"
terraform {
  required_providers {
    hangar = { source = "hangar/hangar" }
  }
}
data "hangar_workspace" "me" {}
resource "terraform_data" "box" {
  count = data.hangar_workspace.me.start_count
}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_requests_and_jobs_behind_an_optional_token() {
    let mut provisioners = 0;
    let app = spawn_app_with(|c| {
        c.metrics_token_hash = Some(hangar::model::secret::hash_token("scrape-me"));
        provisioners = c.provisioners;
    })
    .await;
    let (status, text) = scrape(&app, None).await;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("--metrics-token"), "{text}");
    assert_eq!(scrape(&app, Some("wrong")).await.0, 401);

    let (status, before) = scrape(&app, Some("scrape-me")).await;
    assert_eq!(status, 200);
    assert_eq!(
        sample(&before, "hangar_provisioners"),
        Some(provisioners as f64)
    );
    assert!(
        sample(&before, r#"hangar_db_connections{state="idle"}"#).is_some(),
        "{before}"
    );
    assert_eq!(
        sample(&before, r#"hangar_sessions_open{kind="ssh"}"#),
        Some(0.0),
        "a gauge reads 0 before its first session"
    );
    let me = r#"hangar_http_requests_total{method="GET",route="/api/v2/users/me",status="200"}"#;
    let seen = sample(&before, me).unwrap_or(0.0);

    app.client.me().await.unwrap();
    app.client.me().await.unwrap();
    push_files(&app, "box", &[("main.tf", TEMPLATE)]).await;
    let ws = app
        .client
        .create_workspace(&hangar::wire::workspaces::CreateWorkspaceRequest {
            name: "w".into(),
            template: "box".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    app.client
        .follow_job(&ws.latest_build.job.id, |_| {})
        .await
        .unwrap();

    let (_, after) = scrape(&app, Some("scrape-me")).await;
    assert_eq!(sample(&after, me), Some(seen + 2.0), "{after}");
    let count = |series: &str| sample(&after, series).unwrap_or(0.0);
    assert_eq!(
        count(
            r#"hangar_jobs_total{kind="template_version_import",status="succeeded",transition=""}"#
        ),
        1.0,
        "{after}"
    );
    assert_eq!(
        count(r#"hangar_jobs_total{kind="workspace_build",status="succeeded",transition="start"}"#),
        1.0,
        "{after}"
    );
    assert_eq!(
        count(r#"hangar_job_stage_seconds_count{kind="workspace_build",stage="total"}"#),
        1.0,
        "{after}"
    );
    assert!(
        count(r#"hangar_job_queue_wait_seconds_count{kind="workspace_build"}"#) >= 1.0,
        "{after}"
    );
    assert_eq!(count("hangar_provisioners_busy"), 0.0);
    assert_eq!(count("hangar_jobs_pending"), 0.0);
    // Routes are counted by pattern: no workspace name becomes a label.
    assert!(!after.contains("/workspaces/owner/w\""), "{after}");
    app.stop().await;
}
