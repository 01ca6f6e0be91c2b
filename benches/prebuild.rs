//! create→healthy with a preset whose prebuilt workspace is ready (a claim: a start build
//! that changes nothing, and the running agent restarting with its own token) against a
//! full create of the same template (terraform creates everything, the agent starts).
//! The `local` template starts a process in milliseconds, which no real workspace does:
//! a `terraform_data` that sleeps BOOT_SECS stands in for a machine's boot (a VM, an image
//! pull), created with the workspace. Prints medians and their ratio, side by side.

mod common;

use std::time::Duration;

use common::*;
use hangar::wire::workspaces::CreateWorkspaceRequest;

/// Runs per kind: `cargo bench` does five; `cargo test --all-targets` (the test command)
/// runs one, as a smoke test.
fn runs() -> usize {
    if full() {
        5
    } else {
        1
    }
}
const BOOT_SECS: u32 = 5;

#[tokio::main]
async fn main() {
    let s = server_with("127.0.0.1:0", |c| {
        c.prebuild_interval = Duration::from_millis(200);
    })
    .await;
    let homes = tempfile::tempdir().unwrap();
    let module = tempfile::tempdir().unwrap();
    hangar::cli::templates::write_builtin("local", module.path()).unwrap();
    // Homes keyed by workspace id: a claim renames the workspace and changes its owner,
    // and nothing of the agent's may depend on those (as Coder advises for prebuilds).
    let main = std::fs::read_to_string(module.path().join("main.tf"))
        .unwrap()
        .replace(
            "home = \"${data.hangar_parameter.home_base.value}/${data.hangar_workspace_owner.me.name}/${data.hangar_workspace.me.name}\"",
            "home = \"${data.hangar_parameter.home_base.value}/${data.hangar_workspace.me.id}\"",
        )
        .replace("Welcome to ${data.hangar_workspace.me.name}", "Welcome");
    std::fs::write(module.path().join("main.tf"), main).unwrap();
    std::fs::write(
        module.path().join("prebuilds.tf"),
        format!(
            "data \"hangar_workspace_preset\" \"fast\" {{\n  name = \"fast\"\n  parameters = {{ \"home_base\" = \"{}\" }}\n  prebuilds {{\n    instances = 1\n  }}\n}}\nresource \"terraform_data\" \"boot\" {{\n  count = data.hangar_workspace.me.start_count\n  provisioner \"local-exec\" {{\n    command = \"sleep {BOOT_SECS}\"\n  }}\n}}\n",
            homes.path().display()
        ),
    )
    .unwrap();
    push(&s.client, "fast", module.path()).await;
    let home = homes.path().display().to_string();

    let (mut full, mut claimed) = (Vec::new(), Vec::new());
    let runs = runs();
    for i in 0..runs {
        full.push(
            create_until_healthy(
                &s.client,
                &format!("full-{i}"),
                "fast",
                &[("home_base", &home)],
            )
            .await,
        );
        // Not timed: the next prebuild getting ready in the background.
        wait_for_ready_prebuild(&s).await;
        let req = CreateWorkspaceRequest {
            name: format!("claim-{i}"),
            template: "fast".into(),
            preset: Some("fast".into()),
            ..Default::default()
        };
        claimed.push(create_request_until_healthy(&s.client, &req).await);
    }
    let (f, c) = (median(full), median(claimed));
    println!("create→healthy (local template + a {BOOT_SECS} s machine boot), median of {runs}:");
    println!("  full build                 {:8.1} ms", ms(f));
    println!("  claim of a ready prebuild  {:8.1} ms", ms(c));
    println!("  ratio claim / full          {:7.2}x", ms(c) / ms(f));

    for i in 0..runs {
        delete(&s.client, &format!("full-{i}")).await;
        delete(&s.client, &format!("claim-{i}")).await;
    }
    // A version without prebuilds: the server deletes the one it keeps (its agent is a
    // process on this machine that would outlive the benchmark).
    std::fs::remove_file(module.path().join("prebuilds.tf")).unwrap();
    push(&s.client, "fast", module.path()).await;
    for _ in 0..1500 {
        if s.client
            .workspaces(true, "owner:prebuilds")
            .await
            .unwrap()
            .is_empty()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the prebuild was not deleted");
}

async fn wait_for_ready_prebuild(s: &Server) {
    for _ in 0..1500 {
        let views: Vec<hangar::wire::templates::PrebuildView> =
            s.client.get("/templates/fast/prebuilds").await.unwrap();
        if views.first().is_some_and(|v| v.ready >= 1) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no prebuild got ready");
}
