//! The examples are run, so they keep working as Hangar changes.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_ci_example_creates_uses_and_deletes_a_workspace() {
    let app = spawn_app().await;
    push_builtin(&app, "local").await;
    let token = app.client.create_token("ci", Some(3600)).await.unwrap().key;
    let homes = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new("bash")
        .arg("examples/ci-ephemeral-workspace.sh")
        .arg("--parameter")
        .arg(format!("home_base={}", homes.path().display()))
        .env("HANGAR_URL", &app.url)
        .env("HANGAR_SESSION_TOKEN", &token)
        .env("HANGAR_BIN", hangar_bin())
        .env("HANGAR_CONFIG_DIR", app.config_dir.path())
        .env("CI_JOB_ID", "42")
        .output()
        .await
        .unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{o}\n{e}");
    assert!(
        o.contains("ci-42 is running: terraform_data.agent_process[0], terraform_data.home"),
        "{o}"
    );
    assert!(
        app.client.workspaces(true, "").await.unwrap().is_empty(),
        "the example deleted its workspace"
    );
    assert!(!homes.path().join("owner/ci-42").exists());

    // A failing create still cleans up (here: a parameter that fails its rule).
    let out = tokio::process::Command::new("bash")
        .arg("examples/ci-ephemeral-workspace.sh")
        .arg("--parameter")
        .arg("home_base=relative/path")
        .env("HANGAR_URL", &app.url)
        .env("HANGAR_SESSION_TOKEN", &token)
        .env("HANGAR_BIN", hangar_bin())
        .env("HANGAR_CONFIG_DIR", app.config_dir.path())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("home_base"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(app.client.workspaces(true, "").await.unwrap().is_empty());

    // The curl walk-through: create, stream the build's logs, delete.
    let out = tokio::process::Command::new("bash")
        .arg("examples/api.sh")
        .env(
            "PARAMETERS",
            format!("{{\"home_base\": \"{}\"}}", homes.path().display()),
        )
        .env("HANGAR_URL", &app.url)
        .env("HANGAR_SESSION_TOKEN", &token)
        .output()
        .await
        .unwrap();
    let o = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{o}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        o.contains("\"name\":\"api-demo\"") && o.contains("event: end"),
        "{o}"
    );
    let delete = app
        .client
        .workspace_builds("api-demo", 100)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(delete.transition, hangar::model::Transition::Delete);
    app.client.follow_job(&delete.job.id, |_| {}).await.unwrap();
    assert!(app.client.workspaces(true, "").await.unwrap().is_empty());
    app.stop().await;
}

/// The kreuzwerker example cannot be applied here (terraform cannot download its
/// provider), so it is read: it must make what the built-in `docker` template makes, with
/// the same names, labels and parameters.
#[test]
fn the_kreuzwerker_docker_example_matches_the_builtin_template() {
    let read = |path: &str| {
        std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    };
    let example = read("examples/templates/docker-kreuzwerker/main.tf");
    let builtin = read("templates/docker/main.tf");
    let body: hcl::Body = hcl::from_str(&example).expect("the example is valid HCL");
    let resources: Vec<String> = body
        .blocks()
        .filter(|b| b.identifier() == "resource")
        .map(|b| {
            b.labels()
                .iter()
                .map(|l| l.as_str().to_string())
                .collect::<Vec<_>>()
                .join(".")
        })
        .collect();
    for want in [
        "docker_image.workspace",
        "docker_network.workspace",
        "docker_volume.home",
        "docker_container.workspace",
        "hangar_agent.main",
    ] {
        assert!(
            resources.iter().any(|r| r == want),
            "{want} in {resources:?}"
        );
    }
    // Same names and labels, the container ephemeral, the home mounted where the
    // built-in template mounts it.
    for text in [
        "\"hangar-${data.hangar_workspace_owner.me.name}.${data.hangar_workspace.me.name}\"",
        "\"hangar.workspace_id\" = data.hangar_workspace.me.id",
        "\"hangar.owner\"        = data.hangar_workspace_owner.me.name",
        "count    = data.hangar_workspace.me.start_count",
        "container_path = \"/home/dev\"",
        "\"${local.name}-home\"",
    ] {
        assert!(example.contains(text), "{text} missing");
    }
    // Its parameters are the built-in template's (bar the image, which it builds).
    let params = |name: &str, text: &str| {
        hangar::model::parameter::parse_static(&[(name.to_string(), text.to_string())])
            .unwrap()
            .into_iter()
            .filter(|p| p.name != "image" && p.name != "dotfiles_uri")
            .map(|p| (p.name, p.kind, p.default, p.mutable))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        params("main.tf", &example),
        params("main.tf", &builtin),
        "the two docker templates take the same parameters"
    );
}
