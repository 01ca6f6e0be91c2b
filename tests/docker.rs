//! The built-in `docker` template, for real: a Docker engine (started by the test
//! command), real terraform driving the `docker` CLI, the agent inside the container, and
//! `hangar ssh` into it. The workspace image is built on first use and cached by tag, so
//! only the first test of a run pays for it.

mod common;

use std::time::Duration;

use common::*;
use hangar::model::resource::{Kind, Lifetime};
use hangar::model::Transition;
use hangar::wire::workspaces::{BuildRequest, CreateWorkspaceRequest, WorkspaceView};

/// A workspace name no other test or run uses (container names are per engine).
fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

async fn docker(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new("docker")
        .args(args)
        .output()
        .await
        .expect("the docker CLI runs (the test command installs and starts the engine)")
}

async fn docker_out(args: &[&str]) -> String {
    let out = docker(args).await;
    assert!(out.status.success(), "docker {args:?}: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

/// Everything the engine has with this workspace's label: containers, volumes, networks.
async fn labelled(ws_id: &str) -> Vec<String> {
    let filter = format!("label=hangar.workspace_id={ws_id}");
    let mut all = Vec::new();
    for kind in [
        &["ps", "-a", "--format", "container {{.Names}}"][..],
        &["volume", "ls", "--format", "volume {{.Name}}"],
        &["network", "ls", "--format", "network {{.Name}}"],
    ] {
        let mut args = kind.to_vec();
        args.extend(["--filter", filter.as_str()]);
        all.extend(docker_out(&args).await.lines().map(String::from));
    }
    all
}

async fn create(app: &TestApp, name: &str, params: &[(&str, &str)]) -> WorkspaceView {
    let ws = app
        .client
        .create_workspace(&CreateWorkspaceRequest {
            name: name.into(),
            template: "docker".into(),
            parameters: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        })
        .await
        .unwrap();
    app.client
        .follow_job(&ws.latest_build.job.id, |_| {})
        .await
        .unwrap();
    ws
}

/// Waits (the first start of a run builds the image) until `healthy` is as wanted.
async fn until_healthy(app: &TestApp, name: &str, want: bool) -> WorkspaceView {
    for _ in 0..600 {
        let ws = app.client.workspace(name).await.unwrap();
        if ws.healthy == want {
            return ws;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{name} never became healthy={want}");
}

/// Waits until the workspace's agent reported its resource usage.
async fn until_usage(app: &TestApp, name: &str) -> hangar::wire::agent::Usage {
    for _ in 0..120 {
        let ws = app.client.workspace(name).await.unwrap();
        let usage = ws
            .resources
            .iter()
            .flat_map(|r| r.agents.iter())
            .find_map(|a| a.usage.clone());
        if let Some(u) = usage {
            return u;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{name}'s agent never reported its usage");
}

async fn build(app: &TestApp, name: &str, transition: Transition, orphan: bool) {
    let b = app
        .client
        .build_workspace(
            name,
            &BuildRequest {
                transition: Some(transition),
                orphan,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let job = app.client.follow_job(&b.job.id, |_| {}).await.unwrap();
    assert_eq!(job.status, hangar::model::JobStatus::Succeeded, "{job:?}");
}

async fn ssh(app: &TestApp, name: &str, command: &str) -> String {
    let out = app.cli(&["ssh", name, "--", command]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_docker_workspace_is_a_container_with_a_persistent_home() {
    let app = spawn_app_for_containers().await;
    push_builtin(&app, "docker").await;
    let name = unique("box");
    create(&app, &name, &[("cpus", "1"), ("memory_gb", "1")]).await;
    let ws = until_healthy(&app, &name, true).await;
    let container = format!("hangar-owner.{name}");

    // The limits asked for, the labels, and the agent inside as the non-root user.
    let inspect = docker_out(&[
        "inspect",
        "--format",
        "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{index .Config.Labels \"hangar.workspace_id\"}} {{index .Config.Labels \"hangar.owner\"}}",
        &container,
    ])
    .await;
    assert_eq!(inspect, format!("1000000000 1073741824 {} owner", ws.id));
    // The agent measures the container, not the machine: its limits, its home volume.
    let usage = until_usage(&app, &name).await;
    assert_eq!(
        (usage.cpu_total_cores, usage.memory_total_bytes),
        (1.0, 1 << 30),
        "{usage:?}"
    );
    assert!(usage.memory_used_bytes > 0 && usage.memory_used_bytes < 1 << 30);
    assert_eq!(usage.disks[0].path, "/home/dev");
    // Busy for a while, the container's CPU shows it (at most its one core; the machine
    // running the suite is busy too, so the lower bound is loose).
    ssh(
        &app,
        &name,
        "timeout 12 sh -c 'while :; do :; done' || true",
    )
    .await;
    let busy = app
        .client
        .workspace(&name)
        .await
        .unwrap()
        .resources
        .iter()
        .flat_map(|r| r.agents.iter())
        .filter_map(|a| a.usage.clone())
        .next()
        .unwrap();
    assert!(
        busy.cpu_used_cores > 0.25 && busy.cpu_used_cores <= 1.0,
        "{busy:?}"
    );
    assert_eq!(ssh(&app, &name, "id -un; pwd").await, "dev\n/home/dev\n");
    // The agent's own binary is `hangar` on a session's PATH, as the README promises.
    let stat = ssh(&app, &name, "hangar stat").await;
    assert!(stat.starts_with("container: "), "{stat}");
    // The image step's output is in the build log (built now, or cached by an earlier one).
    let logs = stdout(&app.cli(&["logs", &name]).await);
    assert!(
        logs.contains("image hangar-workspace:bookworm-1: "),
        "{logs}"
    );
    ssh(&app, &name, "echo kept > ~/note").await;

    // The container is the computational, ephemeral resource; the home volume and the
    // network are peripheral and persistent.
    let kinds: Vec<(String, Kind, Lifetime)> = ws
        .resources
        .iter()
        .map(|r| (r.address.clone(), r.kind, r.lifetime))
        .collect();
    for want in [
        (
            "terraform_data.container[0]",
            Kind::Computational,
            Lifetime::Ephemeral,
        ),
        (
            "terraform_data.home",
            Kind::Peripheral,
            Lifetime::Persistent,
        ),
        (
            "terraform_data.network",
            Kind::Peripheral,
            Lifetime::Persistent,
        ),
    ] {
        assert!(
            kinds.contains(&(want.0.to_string(), want.1, want.2)),
            "{want:?} in {kinds:?}"
        );
    }

    // Stopped: no container, the volume and the network stay; started again, the home
    // directory is as it was.
    build(&app, &name, Transition::Stop, false).await;
    let left = labelled(&ws.id).await;
    assert_eq!(
        left,
        vec![
            format!("volume {container}-home"),
            format!("network {container}")
        ]
    );
    // An operator's `docker network prune` removes a stopped workspace's network: the
    // next start makes it again.
    docker_out(&["network", "rm", &container]).await;
    build(&app, &name, Transition::Start, false).await;
    until_healthy(&app, &name, true).await;
    assert_eq!(ssh(&app, &name, "cat ~/note").await, "kept\n");

    // A container that dies shows up as an unhealthy workspace; a restart brings it back.
    docker_out(&["kill", &container]).await;
    until_healthy(&app, &name, false).await;
    let out = app.cli(&["restart", &name]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    until_healthy(&app, &name, true).await;
    assert_eq!(ssh(&app, &name, "cat ~/note").await, "kept\n");

    // Deleted: nothing with its label is left.
    build(&app, &name, Transition::Delete, false).await;
    assert_eq!(labelled(&ws.id).await, Vec::<String>::new());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_workspaces_are_isolated_and_failures_say_why() {
    let app = spawn_app_for_containers().await;
    push_builtin(&app, "docker").await;
    // `owner`'s `one-X` and `owner-one`'s `X`: names that joined with a hyphen would be
    // the same Docker objects.
    let a = unique("one");
    let b = a.trim_start_matches("one-").to_string();
    let other = app.user("owner-one", hangar::model::Role::Member).await;
    let ws_a = create(&app, &a, &[]).await;
    let ws_b = other
        .create_workspace(&CreateWorkspaceRequest {
            name: b.clone(),
            template: "docker".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    other
        .follow_job(&ws_b.latest_build.job.id, |_| {})
        .await
        .unwrap();
    until_healthy(&app, &a, true).await;
    for _ in 0..600 {
        if other.workspace(&b).await.unwrap().healthy {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_ne!(labelled(&ws_a.id).await, labelled(&ws_b.id).await);
    assert_eq!(labelled(&ws_b.id).await.len(), 3);

    // A serves on port 8000; it reaches itself, the other workspace cannot reach it.
    ssh(
        &app,
        &a,
        "nohup python3 -m http.server 8000 >/dev/null 2>&1 & sleep 1; curl -s -o /dev/null -w '%{http_code}' http://localhost:8000/",
    )
    .await;
    let ip_a = docker_out(&[
        "inspect",
        "--format",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        &format!("hangar-owner.{a}"),
    ])
    .await;
    let from_a = ssh(
        &app,
        &a,
        &format!("curl -s -o /dev/null -w '%{{http_code}}' http://{ip_a}:8000/"),
    )
    .await;
    assert_eq!(from_a, "200");
    let out = app
        .cli_as(
            other.token(),
            &[
                "ssh",
                &b,
                "--",
                &format!("curl -s --max-time 3 -o /dev/null http://{ip_a}:8000/"),
            ],
            None,
        )
        .await;
    assert!(
        !out.status.success(),
        "workspace {b} reached {a}'s port: {}",
        stdout(&out)
    );

    // An image the engine does not have fails the build, saying so.
    let bad = unique("bad");
    let ws = app
        .client
        .create_workspace(&CreateWorkspaceRequest {
            name: bad.clone(),
            template: "docker".into(),
            parameters: [("image".to_string(), "hangar-nope:missing".to_string())].into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let job = app
        .client
        .follow_job(&ws.latest_build.job.id, |_| {})
        .await
        .unwrap();
    assert_eq!(job.status, hangar::model::JobStatus::Failed);
    let logs = app.cli(&["logs", &bad]).await;
    assert!(
        stdout(&logs).contains("image hangar-nope:missing is not in this server's Docker engine"),
        "{}",
        stdout(&logs)
    );
    build(&app, &bad, Transition::Delete, false).await;
    assert_eq!(labelled(&ws.id).await, Vec::<String>::new());

    // --orphan forgets the workspace and leaves its Docker objects, for an operator to
    // remove; a plain delete removes them.
    build(&app, &a, Transition::Delete, true).await;
    let orphaned = labelled(&ws_a.id).await;
    assert_eq!(orphaned.len(), 3, "{orphaned:?}");
    // A new workspace of the same name does not take the orphan's home over: it says
    // whose objects are in the way.
    let again = app
        .client
        .create_workspace(&CreateWorkspaceRequest {
            name: a.clone(),
            template: "docker".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let job = app
        .client
        .follow_job(&again.latest_build.job.id, |_| {})
        .await
        .unwrap();
    assert_eq!(job.status, hangar::model::JobStatus::Failed);
    let logs = stdout(&app.cli(&["logs", &a]).await);
    assert!(
        logs.contains("exists but is not this workspace's"),
        "{logs}"
    );
    build(&app, &a, Transition::Delete, false).await;
    assert_eq!(
        labelled(&ws_a.id).await.len(),
        3,
        "the orphan's objects stay"
    );
    let name_a = format!("hangar-owner.{a}");
    docker_out(&["rm", "-f", &name_a]).await;
    docker_out(&["volume", "rm", &format!("{name_a}-home")]).await;
    docker_out(&["network", "rm", &name_a]).await;
    let b_del = other
        .build_workspace(
            &b,
            &BuildRequest {
                transition: Some(Transition::Delete),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    other.follow_job(&b_del.job.id, |_| {}).await.unwrap();
    assert_eq!(labelled(&ws_b.id).await, Vec::<String>::new());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_build_that_fails_says_why_and_leaves_no_image() {
    // The template's image script, with a Debian mirror nobody answers at.
    let tag = format!("hangar-test-never:{:08x}", rand::random::<u32>());
    let out = tokio::process::Command::new("sh")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/templates/docker/build-image.sh"
        ))
        .arg(&tag)
        .env("HANGAR_DEBIAN_MIRROR", "http://127.0.0.1:9/debian")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        said.contains(&format!("image {tag}: debootstrap failed")),
        "{said}"
    );
    assert!(!docker(&["image", "inspect", &tag]).await.status.success());
}
