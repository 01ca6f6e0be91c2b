//! What is stored and how it is read back: favorites per user, corrupt rows surfaced
//! as errors, and retention of old builds' logs and states.

mod common;

use common::*;
use hangar::api::workspaces::CreateWorkspaceRequest;
use hangar::model::{JobStatus, Role};

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
