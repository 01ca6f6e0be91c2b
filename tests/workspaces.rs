//! Workspaces end to end: the built binary, a real server, real terraform.

mod common;

use std::time::Duration;

use common::*;
use hangar::model::{JobStatus, Transition, WorkspaceStatus};
use hangar::wire::workspaces::{BuildRequest, CreateWorkspaceRequest, WorkspaceView};
use reqwest::StatusCode;

async fn wait_build(app: &TestApp, ws: &str) -> WorkspaceView {
    let w = app.client.workspace(ws).await.unwrap();
    app.client
        .follow_job(&w.latest_build.job.id, |_| {})
        .await
        .unwrap();
    app.client.workspace(ws).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn local_workspace_lifecycle_through_the_cli() {
    let app = spawn_app().await;
    let v = push_builtin(&app, "local").await;
    assert_eq!(v.resources.len(), 2, "{:?}", v.resources);
    let kinds: Vec<(String, String)> = v
        .resources
        .iter()
        .map(|r| {
            (
                r["address"].as_str().unwrap().to_string(),
                r["lifetime"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("terraform_data.home".into(), "persistent".into())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("terraform_data.agent_process".into(), "ephemeral".into())),
        "{kinds:?}"
    );

    let homes = tempfile::tempdir().unwrap();
    let yaml = homes.path().join("params.yaml");
    std::fs::write(&yaml, format!("home_base: {}\n", homes.path().display())).unwrap();
    let out = app
        .cli(&[
            "create",
            "--template=local",
            "dev",
            "--rich-parameter-file",
            yaml.to_str().unwrap(),
            "-y",
        ])
        .await;
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("is running"), "{}", stdout(&out));
    let home = homes.path().join("owner/dev");
    assert!(home.is_dir());
    std::fs::write(home.join("notes.txt"), "kept").unwrap();

    let out = app.cli(&["show", "dev", "-o", "json"]).await;
    let ws: WorkspaceView = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(ws.status, WorkspaceStatus::Running);
    let host = ws
        .resources
        .iter()
        .find(|r| r.address == "terraform_data.agent_process[0]")
        .expect("the agent host");
    assert_eq!(
        (host.kind.as_str(), host.lifetime.as_str()),
        ("computational", "ephemeral")
    );
    assert_eq!(host.agents.len(), 1);
    let home_res = ws
        .resources
        .iter()
        .find(|r| r.address == "terraform_data.home")
        .unwrap();
    assert_eq!(
        (home_res.kind.as_str(), home_res.lifetime.as_str()),
        ("peripheral", "persistent")
    );
    let out = app.cli(&["show", "dev"]).await;
    assert!(
        stdout(&out).contains("computational") && stdout(&out).contains("└── agent main"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("app top (Processes): top"),
        "{}",
        stdout(&out)
    );
    let out = app.cli(&["list"]).await;
    assert!(
        stdout(&out).contains("owner/dev") && stdout(&out).contains("running"),
        "{}",
        stdout(&out)
    );

    // Stop: the ephemeral agent process goes, the home stays.
    let out = app.cli(&["stop", "dev", "-y"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let ws = app.client.workspace("dev").await.unwrap();
    assert_eq!(ws.status, WorkspaceStatus::Stopped);
    let addresses: Vec<&str> = ws.resources.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(addresses, ["terraform_data.home"]);
    assert_eq!(
        std::fs::read_to_string(home.join("notes.txt")).unwrap(),
        "kept"
    );

    let out = app.cli(&["start", "dev", "-y"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        app.client.workspace("dev").await.unwrap().resources.len(),
        2
    );
    assert_eq!(
        std::fs::read_to_string(home.join("notes.txt")).unwrap(),
        "kept"
    );

    let out = app.cli(&["start", "dev", "-y"]).await;
    assert!(stdout(&out).contains("already running"), "{}", stdout(&out));
    assert_eq!(
        app.client.workspace_builds("dev", 100).await.unwrap().len(),
        3,
        "no needless rebuild"
    );

    let out = app.cli(&["builds", "dev"]).await;
    assert!(
        stdout(&out).contains("#3") && stdout(&out).contains("stop"),
        "{}",
        stdout(&out)
    );

    let out = app.cli(&["delete", "dev", "-y"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!home.exists(), "delete destroys the home directory");
    let gone = app.client.workspace("dev").await.unwrap_err();
    assert_eq!(gone.status(), Some(StatusCode::NOT_FOUND));
    app.stop().await;
}

const PARAMS_TF: &str = r#"
data "hangar_parameter" "size" {
  name = "size"
  type = "number"
  mutable = true
  validation {
    min = 1
    max = 4
    monotonic = "increasing"
  }
}
data "hangar_parameter" "region" {
  name = "region"
  default = "eu"
  option {
    name = "EU"
    value = "eu"
  }
  option {
    name = "US"
    value = "us"
  }
}
resource "terraform_data" "disk" {
  input = "${data.hangar_parameter.size.value}-${data.hangar_parameter.region.value}"
}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn parameters_are_checked_and_nothing_half_made_is_left() {
    let app = spawn_app().await;
    push_files(&app, "p", &[("main.tf", &format!("{PROVIDER}{PARAMS_TF}"))]).await;

    // Without a terminal a missing parameter names itself and how to pass it.
    let out = app.cli(&["create", "--template=p", "ws"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--parameter size=<value>"),
        "{}",
        stderr(&out)
    );

    let create = |params: &[(&str, &str)]| CreateWorkspaceRequest {
        name: "ws".into(),
        template: "p".into(),
        parameters: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    for (params, needle) in [
        (vec![("size", "big")], "not a number"),
        (vec![("size", "9")], "above the maximum 4"),
        (vec![("size", "0")], "below the minimum 1"),
        (
            vec![("size", "2"), ("region", "mars")],
            "not one of the options: eu, us",
        ),
        (
            vec![("size", "2"), ("colour", "red")],
            "no parameter \"colour\"",
        ),
    ] {
        let err = app
            .client
            .create_workspace(&create(&params))
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::BAD_REQUEST), "{err}");
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    }
    assert!(
        app.client.workspaces(true, "").await.unwrap().is_empty(),
        "no half-made workspace"
    );

    let out = app
        .cli(&[
            "create",
            "--template=p",
            "ws",
            "--parameter",
            "size=2",
            "-y",
        ])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    // Immutable and monotonic rules on a later build.
    let err = app
        .client
        .build_workspace(
            "ws",
            &BuildRequest {
                transition: Some(Transition::Start),
                parameters: [("region".to_string(), "us".to_string())].into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("immutable"), "{err}");
    let err = app
        .client
        .build_workspace(
            "ws",
            &BuildRequest {
                transition: Some(Transition::Start),
                parameters: [("size".to_string(), "1".to_string())].into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("monotonically increasing"),
        "{err}"
    );

    // A new version with a new parameter: update asks only for it (given here by flag).
    push_files(&app, "p", &[("main.tf", &format!("{PROVIDER}{PARAMS_TF}\ndata \"hangar_parameter\" \"shell\" {{\n  name = \"shell\"\n}}\n"))]).await;
    let ws = app.client.workspace("ws").await.unwrap();
    assert!(ws.outdated);
    let out = app.cli(&["update", "ws", "--parameter", "shell=zsh"]).await;
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let ws = app.client.workspace("ws").await.unwrap();
    assert!(
        !ws.outdated && ws.status == WorkspaceStatus::Running,
        "{ws:?}"
    );
    assert_eq!(ws.latest_build.parameters["shell"], "zsh");
    assert_eq!(
        ws.latest_build.parameters["size"], "2",
        "previous values carry over"
    );
    let out = app.cli(&["update", "ws"]).await;
    assert!(
        stdout(&out).contains("Workspace isn't outdated!"),
        "{}",
        stdout(&out)
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_builds_keep_logs_and_state_and_can_be_deleted() {
    let app = spawn_app().await;
    let tf = format!(
        "{PROVIDER}resource \"terraform_data\" \"ok\" {{}}\nresource \"terraform_data\" \"bad\" {{\n  count = data.hangar_workspace.me.start_count\n  depends_on = [terraform_data.ok]\n  provisioner \"local-exec\" {{\n    command = \"echo the-disk-is-full >&2; exit 3\"\n  }}\n}}\n"
    );
    push_files(&app, "bad", &[("main.tf", &tf)]).await;
    let out = app.cli(&["create", "--template=bad", "ws", "-y"]).await;
    assert!(!out.status.success(), "a failed build exits non-zero");
    assert!(stderr(&out).contains("failed"), "{}", stderr(&out));
    let ws = app.client.workspace("ws").await.unwrap();
    assert_eq!(ws.status, WorkspaceStatus::Failed);
    let error = ws.latest_build.job.error.clone().unwrap();
    assert!(
        error.contains("local-exec") || error.contains("exit status 3"),
        "{error}"
    );
    let logs = app
        .client
        .job_logs(&ws.latest_build.job.id, 0, false)
        .await
        .unwrap()
        .logs;
    assert!(
        logs.iter().any(|l| l.text.contains("the-disk-is-full")),
        "terraform's output is in the logs"
    );
    assert_eq!(
        ws.latest_build.job.error_code.as_deref(),
        Some("apply_failed")
    );

    // The failed build kept its state: delete destroys what it made.
    let out = app.cli(&["delete", "ws", "-y"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_build_at_a_time_and_cancel() {
    let app = spawn_app().await;
    // A marker in the environment finds this test's provisioner processes, and only them.
    let marker = format!("cancel-marker-{}", uuid::Uuid::new_v4().simple());
    let tf = format!("{PROVIDER}resource \"terraform_data\" \"slow\" {{\n  count = data.hangar_workspace.me.start_count\n  provisioner \"local-exec\" {{\n    command = \"sleep 30\"\n    environment = {{ HANGAR_TEST_MARKER = \"{marker}\" }}\n  }}\n}}\n");
    push_files(&app, "slow", &[("main.tf", &tf)]).await;
    let ws = app
        .client
        .create_workspace(&CreateWorkspaceRequest {
            name: "ws".into(),
            template: "slow".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let again = app
        .client
        .build_workspace(
            "ws",
            &BuildRequest {
                transition: Some(Transition::Stop),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(again.status(), Some(StatusCode::CONFLICT));
    assert!(again.to_string().contains("already has a build"), "{again}");
    // Wait until terraform is running the provisioner, then cancel.
    for _ in 0..100 {
        let logs = app
            .client
            .job_logs(&ws.latest_build.job.id, 0, false)
            .await
            .unwrap()
            .logs;
        if logs.iter().any(|l| {
            l.text.contains("Provisioning with 'local-exec'") || l.text.contains("local-exec")
        }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.client.cancel_build(&ws.latest_build.id).await.unwrap();
    let started = std::time::Instant::now();
    let w = wait_build(&app, "ws").await;
    assert_eq!(
        w.status,
        WorkspaceStatus::Canceled,
        "{:?}",
        w.latest_build.job
    );
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "cancel stopped terraform"
    );
    assert!(
        !process_running_with(&marker),
        "the interrupted provisioner command was stopped too"
    );
    app.stop().await;
}

/// Whether any process's environment contains `needle` (children inherit it, so this
/// finds a provisioner's whole process tree).
fn process_running_with(needle: &str) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|p| std::fs::read(p.path().join("environ")).ok())
        .any(|cmd| String::from_utf8_lossy(&cmd).contains(needle))
}

#[tokio::test(flavor = "multi_thread")]
async fn terraform_never_sees_the_servers_secrets() {
    std::env::set_var("HANGAR_TEST_CANARY_SECRET", "canary-5f3a");
    let app = spawn_app().await;
    let tf = format!("{PROVIDER}resource \"terraform_data\" \"env\" {{\n  provisioner \"local-exec\" {{\n    command = \"env | sort\"\n  }}\n}}\n");
    push_files(&app, "env", &[("main.tf", &tf)]).await;
    app.client
        .create_workspace(&CreateWorkspaceRequest {
            name: "ws".into(),
            template: "env".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let w = wait_build(&app, "ws").await;
    assert_eq!(w.status, WorkspaceStatus::Running);
    // A taken name is named as the user typed it, never as a Rust value (`Name("ws")`).
    let taken = app
        .client
        .create_workspace(&CreateWorkspaceRequest {
            name: "ws".into(),
            template: "env".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(taken.status(), Some(StatusCode::CONFLICT));
    assert!(
        taken
            .to_string()
            .starts_with("you already have a workspace named \"ws\":"),
        "{taken}"
    );
    let logs = app
        .client
        .job_logs(&w.latest_build.job.id, 0, false)
        .await
        .unwrap()
        .logs;
    let all: String = logs
        .iter()
        .map(|l| l.text.clone())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        all.contains("HANGAR_WORKSPACE_NAME=ws"),
        "the provider contract is there: {all}"
    );
    assert!(
        !all.contains("canary-5f3a") && !all.contains("HANGAR_TEST_CANARY_SECRET"),
        "{all}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn members_see_only_their_own_workspaces() {
    let app = spawn_app().await;
    push_files(
        &app,
        "t",
        &[(
            "main.tf",
            &format!("{PROVIDER}resource \"terraform_data\" \"x\" {{}}\n"),
        )],
    )
    .await;
    let mia = app.user("mia", hangar::model::Role::Member).await;
    mia.create_workspace(&CreateWorkspaceRequest {
        name: "mine".into(),
        template: "t".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    app.client
        .create_workspace(&CreateWorkspaceRequest {
            name: "boss".into(),
            template: "t".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let names: Vec<String> = mia
        .workspaces(true, "")
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(names, ["mine"]);
    assert_eq!(
        mia.workspace("owner/boss").await.unwrap_err().status(),
        Some(StatusCode::NOT_FOUND)
    );
    let all: Vec<String> = app
        .client
        .workspaces(true, "")
        .await
        .unwrap()
        .into_iter()
        .map(|w| format!("{}/{}", w.owner, w.name))
        .collect();
    assert_eq!(all, ["owner/boss", "mia/mine"]);
    let searched = app.client.workspaces(true, "owner:mia").await.unwrap();
    assert_eq!(searched.len(), 1);
    app.stop().await;
}

/// `hangar create OWNER/NAME`: an owner creates a workspace for a member (hers from then
/// on, the owner its first build's initiator); a member cannot do it for anyone else.
#[tokio::test(flavor = "multi_thread")]
async fn owners_create_workspaces_for_other_users() {
    let app = spawn_app().await;
    push_files(
        &app,
        "t",
        &[(
            "main.tf",
            &format!("{PROVIDER}resource \"terraform_data\" \"x\" {{}}\n"),
        )],
    )
    .await;
    let mia = app.user("mia", hangar::model::Role::Member).await;
    let out = app.cli(&["create", "mia/box", "--template", "t"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("mia/box"), "{}", stdout(&out));
    let hers = mia.workspace("box").await.unwrap();
    assert_eq!(hers.owner, "mia");
    assert_eq!(hers.latest_build.initiator, "owner");
    assert_eq!(hers.status, WorkspaceStatus::Running);
    let out = app
        .cli_as(
            mia.token(),
            &["create", "owner/sneaky", "--template", "t"],
            None,
        )
        .await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("needs the owner role"),
        "{}",
        stderr(&out)
    );
    let out = app.cli(&["create", "nobody/box", "--template", "t"]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no active user"), "{}", stderr(&out));
    app.stop().await;
}

/// The list pages and filters in SQL: 33 workspaces (one real, 32 seeded from it), pages
/// of 10, every filter, favorites first, the bounds refused, a member still confined.
#[tokio::test(flavor = "multi_thread")]
async fn workspace_lists_page_and_filter_in_sql() {
    use hangar::wire::workspaces::ListQuery;
    let app = spawn_app().await;
    push_files(
        &app,
        "t",
        &[(
            "main.tf",
            &format!("{PROVIDER}resource \"terraform_data\" \"x\" {{}}\n"),
        )],
    )
    .await;
    let mia = app.user("mia", hangar::model::Role::Member).await;
    app.client
        .create_workspace(&CreateWorkspaceRequest {
            name: "ws-000".into(),
            template: "t".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let real = wait_build(&app, "ws-000").await;
    let owner_id = real.owner_id.clone();
    let mia_id = mia.me().await.unwrap().id;
    let pool = sqlx::AnyPool::connect(&app.db_url).await.unwrap();
    let model = seed::model(&pool, &real.id).await;
    let mut plan: Vec<seed::Planned> = (1..30)
        .map(|i| seed::Planned {
            owner_id: owner_id.clone(),
            name: format!("ws-{i:03}"),
            stopped: i % 6 == 0,
        })
        .collect();
    plan.extend((0..3).map(|i| seed::Planned {
        owner_id: mia_id.clone(),
        name: format!("mia-{i}"),
        stopped: false,
    }));
    seed::seed(&pool, &model, &plan).await;

    let page = |search: &str, limit: i64, offset: i64| {
        let client = app.client.clone();
        let q = ListQuery {
            all: true,
            search: search.into(),
            limit: Some(limit),
            offset: Some(offset),
        };
        async move { client.workspaces_page(&q).await }
    };
    let names = |p: &hangar::wire::workspaces::WorkspacesPage| -> Vec<String> {
        p.workspaces.iter().map(|w| w.name.clone()).collect()
    };
    let first = page("", 10, 0).await.unwrap();
    assert_eq!(first.count, 33);
    assert_eq!(names(&first)[..3], ["mia-0", "mia-1", "mia-2"]);
    assert_eq!(names(&first)[3], "ws-000");
    // Seeded rows read like the real one: resources, template, version.
    let seeded = &first.workspaces[4];
    assert_eq!(seeded.resources.len(), real.resources.len());
    assert_eq!(seeded.template, "t");
    assert_eq!(seeded.template_version, real.template_version);
    let last = page("", 10, 30).await.unwrap();
    assert_eq!(names(&last), ["ws-027", "ws-028", "ws-029"]);
    assert_eq!(last.count, 33);
    let past = page("", 10, 40).await.unwrap();
    assert!(past.workspaces.is_empty());
    assert_eq!(past.count, 33, "past the end the count is still given");
    // The whole list through the client's paging: every name once, in order.
    let all = app.client.workspaces(true, "").await.unwrap();
    assert_eq!(all.len(), 33);

    let stopped = page("status:stopped", 100, 0).await.unwrap();
    assert_eq!(names(&stopped), ["ws-006", "ws-012", "ws-018", "ws-024"]);
    assert!(stopped
        .workspaces
        .iter()
        .all(|w| w.status == WorkspaceStatus::Stopped));
    assert_eq!(page("status:running", 100, 0).await.unwrap().count, 29);
    assert_eq!(page("owner:mia", 100, 0).await.unwrap().count, 3);
    assert_eq!(
        page("owner:mia status:stopped", 100, 0)
            .await
            .unwrap()
            .count,
        0
    );
    assert_eq!(page("template:t", 100, 0).await.unwrap().count, 33);
    assert_eq!(page("template:nope", 100, 0).await.unwrap().count, 0);
    assert_eq!(
        names(&page("ws-01", 100, 0).await.unwrap()).len(),
        10,
        "ws-010 … ws-019"
    );
    assert_eq!(names(&page("name:029", 100, 0).await.unwrap()), ["ws-029"]);
    // LIKE wildcards in a search are literal characters.
    assert_eq!(page("ws_0", 100, 0).await.unwrap().count, 0);
    assert_eq!(page("%", 100, 0).await.unwrap().count, 0);

    // The viewer's favorites come first.
    app.client.set_favorite("ws-029", true).await.unwrap();
    let favored = page("", 2, 0).await.unwrap();
    assert_eq!(names(&favored), ["ws-029", "mia-0"]);
    assert!(favored.workspaces[0].favorite && !favored.workspaces[1].favorite);

    // Bounds and unknown words are 400s that say what is accepted.
    for (search, limit, offset, says) in [
        ("", 0, 0, "limit"),
        ("", 101, 0, "limit"),
        ("", 10, -1, "offset"),
        ("status:sleeping", 10, 0, "running"),
        ("colour:red", 10, 0, "owner:"),
    ] {
        let err = page(search, limit, offset).await.unwrap_err();
        assert_eq!(
            err.status(),
            Some(StatusCode::BAD_REQUEST),
            "{search} {limit} {offset}"
        );
        assert!(err.to_string().contains(says), "{err}");
    }

    // A member asking for everyone's still gets only her own, counted as such.
    let hers = mia
        .workspaces_page(&ListQuery {
            all: true,
            limit: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(hers.count, 3);
    assert_eq!(names(&hers), ["mia-0", "mia-1"]);
    app.stop().await;
}

/// Many jobs, two workers each claiming as fast as it can: every job exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_claims_take_each_job_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = test_database(dir.path()).await;
    let mut ids = Vec::new();
    for _ in 0..60 {
        let id = uuid::Uuid::new_v4().to_string();
        db.insert_job(
            db.pool(),
            &id,
            hangar::model::JobKind::TemplateVersionDryRun,
            "{}",
        )
        .await
        .unwrap();
        ids.push(id);
    }
    let mut workers = Vec::new();
    for w in 0..4 {
        let db = db.clone();
        workers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(job) = db.claim_job(&format!("w{w}")).await.unwrap() {
                got.push(job.id);
            }
            got
        }));
    }
    let mut claimed = Vec::new();
    for w in workers {
        claimed.extend(w.await.unwrap());
    }
    claimed.sort();
    ids.sort();
    assert_eq!(claimed, ids, "each job claimed exactly once");
}

#[tokio::test(flavor = "multi_thread")]
async fn build_logs_stream_as_server_sent_events() {
    let app = spawn_app().await;
    let tf = format!("{PROVIDER}resource \"terraform_data\" \"x\" {{\n  provisioner \"local-exec\" {{\n    command = \"echo streaming-works\"\n  }}\n}}\n");
    push_files(&app, "t", &[("main.tf", &tf)]).await;
    let ws = app
        .client
        .create_workspace(&CreateWorkspaceRequest {
            name: "ws".into(),
            template: "t".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // Opened while the build is queued or running: lines arrive as written, then `end`.
    let body = reqwest::Client::new()
        .get(format!(
            "{}/api/v2/jobs/{}/logs/stream",
            app.url, ws.latest_build.job.id
        ))
        .bearer_auth(app.client.token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(body.headers()["content-type"], "text/event-stream");
    let text = body.text().await.unwrap();
    assert!(
        text.contains("event: log") && text.contains("streaming-works"),
        "{text}"
    );
    assert!(
        text.trim_end()
            .rsplit("\n\n")
            .next()
            .unwrap()
            .contains("event: end"),
        "{text}"
    );
    assert!(text.contains("\"status\":\"succeeded\""), "{text}");

    // `after` resumes behind the lines a client already has (the build page passes its last).
    let lines = app
        .client
        .job_logs(&ws.latest_build.job.id, 0, false)
        .await
        .unwrap()
        .logs;
    let keep = lines.len() / 2;
    let after = lines[keep - 1].id;
    let text = reqwest::Client::new()
        .get(format!(
            "{}/api/v2/jobs/{}/logs/stream?after={after}",
            app.url, ws.latest_build.job.id
        ))
        .bearer_auth(app.client.token().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        text.matches("event: log").count(),
        lines.len() - keep,
        "{text}"
    );
    assert!(!text.contains(&format!("\"id\":{after},")), "{text}");
    assert!(text.contains("event: end"), "{text}");
    app.stop().await;
}

const MULTIHOST_TF: &str = r#"
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
resource "hangar_agent" "db" {
  os   = "linux"
  arch = "arm64"
}
locals {
  # The main host reaches its agent only through this local.
  main_token = hangar_agent.main.token
}
resource "terraform_data" "vm" {
  count = data.hangar_workspace.me.start_count
  input = sha256(local.main_token)
}
resource "terraform_data" "db_host" {
  count = data.hangar_workspace.me.start_count
  input = hangar_agent.db.id
}
# Peripheral: depends on a host, hosts nothing.
resource "terraform_data" "disk_attach" {
  count = data.hangar_workspace.me.start_count
  input = terraform_data.vm[0].id
}
# Persistent volumes, one per key.
resource "terraform_data" "volume" {
  for_each = toset(["a", "b"])
  input    = each.key
}
module "side" {
  source = "./modules/side"
  start  = data.hangar_workspace.me.start_count
}
resource "hangar_metadata" "vm" {
  count       = data.hangar_workspace.me.start_count
  resource_id = terraform_data.vm[0].id
  daily_cost  = 7
  item {
    key   = "size"
    value = "large"
  }
  item {
    key       = "password"
    value     = "hunter2-secret"
    sensitive = true
  }
}
"#;

const SIDE_MODULE_TF: &str = r#"
terraform {
  required_providers {
    hangar = { source = "hangar/hangar" }
  }
}
variable "start" { type = number }
resource "hangar_agent" "side" {
  os   = "linux"
  arch = "amd64"
}
resource "terraform_data" "box" {
  count = var.start
  input = hangar_agent.side.id
}
"#;

/// Rendered per workspace before terraform sees it.
const TERA_TF: &str = "resource \"terraform_data\" \"greeting\" {\n  input = \"hello {{ owner.name }} from {{ workspace.name }} ({{ transition }})\"\n}\n";

#[tokio::test(flavor = "multi_thread")]
async fn multi_host_template_is_classified_and_state_carries_over() {
    let app = spawn_app().await;
    let v = push_files(
        &app,
        "multi",
        &[
            ("main.tf", MULTIHOST_TF),
            ("modules/side/main.tf", SIDE_MODULE_TF),
            ("greeting.tf.tera", TERA_TF),
        ],
    )
    .await;
    assert!(!v.has_external_agent);
    app.client
        .create_workspace(&CreateWorkspaceRequest {
            name: "m".into(),
            template: "multi".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let ws = wait_build(&app, "m").await;
    assert_eq!(
        ws.status,
        WorkspaceStatus::Running,
        "{:?}",
        ws.latest_build.job.error
    );
    let find = |addr: &str| {
        ws.resources
            .iter()
            .find(|r| r.address == addr)
            .unwrap_or_else(|| {
                panic!(
                    "{addr} in {:?}",
                    ws.resources.iter().map(|r| &r.address).collect::<Vec<_>>()
                )
            })
    };
    let label = |addr: &str| {
        let r = find(addr);
        (
            r.kind.as_str().to_string(),
            r.lifetime.as_str().to_string(),
            r.agents.iter().map(|a| a.name.clone()).collect::<Vec<_>>(),
        )
    };
    let s = |x: &str| x.to_string();
    assert_eq!(
        label("terraform_data.vm[0]"),
        (s("computational"), s("ephemeral"), vec![s("main")])
    );
    assert_eq!(
        label("terraform_data.db_host[0]"),
        (s("computational"), s("ephemeral"), vec![s("db")])
    );
    assert_eq!(
        label("module.side.terraform_data.box[0]"),
        (s("computational"), s("ephemeral"), vec![s("side")])
    );
    assert_eq!(
        label("terraform_data.disk_attach[0]"),
        (s("peripheral"), s("ephemeral"), vec![])
    );
    assert_eq!(
        label("terraform_data.volume[\"a\"]"),
        (s("peripheral"), s("persistent"), vec![])
    );
    assert_eq!(
        label("terraform_data.greeting"),
        (s("peripheral"), s("persistent"), vec![])
    );
    assert!(
        ws.resources.iter().all(|r| !r.type_.starts_with("hangar_")),
        "Hangar's own types are not workspace resources"
    );
    // Metadata lands on its resource; sensitive values are masked everywhere.
    let vm = find("terraform_data.vm[0]");
    assert_eq!(vm.daily_cost, 7);
    let shown = serde_json::to_string(&ws).unwrap();
    assert!(
        shown.contains("large") && !shown.contains("hunter2-secret"),
        "{shown}"
    );
    let logs = app
        .client
        .job_logs(&ws.latest_build.job.id, 0, false)
        .await
        .unwrap()
        .logs;
    assert!(
        logs.iter().all(|l| !l.text.contains("hunter2-secret")),
        "build logs redact sensitive values"
    );
    // terraform_data.greeting above exists only because greeting.tf.tera was rendered.
    let out = app.cli(&["show", "m", "-o", "json"]).await;
    assert!(
        stdout(&out).contains("\"daily_cost\": 7"),
        "{}",
        stdout(&out)
    );

    // Stop keeps the persistent volumes (the same instances: state carried over).
    let b = app
        .client
        .build_workspace(
            "m",
            &BuildRequest {
                transition: Some(Transition::Stop),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut created_again = false;
    let job = app
        .client
        .follow_job(&b.job.id, |l| {
            created_again |= l.text.contains("terraform_data.volume[\"a\"]: Creating")
        })
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
    assert!(!created_again, "the volume was kept, not recreated");
    let ws = app.client.workspace("m").await.unwrap();
    let mut left: Vec<&str> = ws.resources.iter().map(|r| r.address.as_str()).collect();
    left.sort();
    assert_eq!(
        left,
        [
            "terraform_data.greeting",
            "terraform_data.volume[\"a\"]",
            "terraform_data.volume[\"b\"]"
        ]
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn orphan_delete_leaves_resources_and_templates_in_use_stay() {
    let app = spawn_app().await;
    push_builtin(&app, "local").await;
    let homes = tempfile::tempdir().unwrap();
    let base = format!("home_base={}", homes.path().display());
    for name in ["keep", "pinned"] {
        let out = app
            .cli(&[
                "create",
                "--template=local",
                name,
                "--parameter",
                &base,
                "-y",
            ])
            .await;
        assert!(out.status.success(), "{}", stderr(&out));
    }

    // Favorites come first; restart is stop then start.
    app.cli(&["favorite", "pinned"]).await;
    let out = app.cli(&["list", "-o", "json"]).await;
    let list: Vec<WorkspaceView> = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        list.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(),
        ["pinned", "keep"]
    );
    let out = app.cli(&["restart", "pinned", "-y"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let builds = app.client.workspace_builds("pinned", 100).await.unwrap();
    let transitions: Vec<Transition> = builds.iter().map(|b| b.transition).collect();
    assert_eq!(
        transitions,
        [Transition::Start, Transition::Stop, Transition::Start]
    );

    // A template in use cannot be deleted.
    let out = app.cli(&["templates", "delete", "local", "-y"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("used by 2 workspace(s)"),
        "{}",
        stderr(&out)
    );

    // --orphan forgets the workspace and leaves what it made.
    let out = app.cli(&["delete", "keep", "--orphan", "-y"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        homes.path().join("owner/keep").is_dir(),
        "orphaned resources stay"
    );
    assert_eq!(
        app.client.workspace("keep").await.unwrap_err().status(),
        Some(StatusCode::NOT_FOUND)
    );
    let pid: i32 = std::fs::read_to_string(homes.path().join("owner/keep/.hangar/agent.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Clean up what the orphan left: its agent process.
    unsafe { libc::kill(-pid, libc::SIGTERM) };

    let out = app.cli(&["delete", "pinned", "-y"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = app.cli(&["templates", "delete", "local", "-y"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_whose_import_failed_cannot_be_used() {
    let app = spawn_app().await;
    // Valid HCL, but terraform rejects it: the import fails with terraform's message.
    let tf = format!("{PROVIDER}resource \"terraform_data\" \"x\" {{\n  input = var.missing\n}}\n");
    let dir = template_dir(&[("main.tf", &tf)]);
    let out = app
        .cli(&[
            "templates",
            "push",
            "broken",
            "-d",
            dir.path().to_str().unwrap(),
        ])
        .await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("undeclared input variable"),
        "{}",
        stderr(&out)
    );
    let v = app.client.template_version("broken", "v1").await.unwrap();
    let job = v.job.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert!(!v.active);
    let logs = app.client.job_logs(&job.id, 0, false).await.unwrap().logs;
    assert!(
        logs.iter().any(|l| l.level == "error"),
        "the import's logs keep terraform's error"
    );
    let err = app
        .client
        .create_workspace(&CreateWorkspaceRequest {
            name: "ws".into(),
            template: "broken".into(),
            template_version: Some("v1".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::CONFLICT));
    assert!(
        err.to_string().contains("its import failed") && err.to_string().contains("missing"),
        "{err}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_build_over_its_time_limit_is_stopped_and_says_so() {
    let app = spawn_app_with(|c| c.job_timeout = Duration::from_secs(3)).await;
    let tf = format!("{PROVIDER}resource \"terraform_data\" \"slow\" {{\n  count = data.hangar_workspace.me.start_count\n  provisioner \"local-exec\" {{\n    command = \"sleep 60\"\n  }}\n}}\n");
    push_files(&app, "slow", &[("main.tf", &tf)]).await;
    app.client
        .create_workspace(&CreateWorkspaceRequest {
            name: "ws".into(),
            template: "slow".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let ws = wait_build(&app, "ws").await;
    assert_eq!(ws.status, WorkspaceStatus::Failed);
    assert_eq!(
        ws.latest_build.job.error_code.as_deref(),
        Some("timeout"),
        "{:?}",
        ws.latest_build.job
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    // The interrupted build kept its state: delete still works.
    let out = app.cli(&["delete", "ws", "-y"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    app.stop().await;
}

/// On a terminal, missing parameters are asked for, and an invalid answer is asked again.
/// `script` (util-linux) gives the CLI a real pseudo-terminal.
#[tokio::test(flavor = "multi_thread")]
async fn create_prompts_on_a_terminal_and_re_asks_on_invalid_input() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app().await;
    push_files(&app, "p", &[("main.tf", &format!("{PROVIDER}{PARAMS_TF}"))]).await;
    let command = format!("{} create --template=p", hangar_bin().display());
    let mut child = tokio::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("HANGAR_URL", &app.url)
        .env("HANGAR_SESSION_TOKEN", app.client.token().unwrap())
        .env("HANGAR_CONFIG_DIR", app.config_dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs the CLI on a pseudo-terminal");
    let mut input = child.stdin.take().unwrap();
    // Name, then an invalid size (above the max), then a valid one.
    for answer in ["ttyws\n", "9\n", "3\n"] {
        tokio::time::sleep(Duration::from_millis(700)).await;
        input.write_all(answer.as_bytes()).await.unwrap();
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the CLI finished")
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(screen.contains("Workspace name:"), "{screen}");
    assert!(
        screen.contains("above the maximum 4; try again"),
        "{screen}"
    );
    let ws = app.client.workspace("ttyws").await.unwrap();
    assert_eq!(ws.latest_build.parameters["size"], "3");
    assert_eq!(
        ws.latest_build.parameters["region"], "eu",
        "defaults are not asked for"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_plans_and_creates_nothing() {
    let app = spawn_app().await;
    push_files(
        &app,
        "multi",
        &[
            ("main.tf", MULTIHOST_TF),
            ("modules/side/main.tf", SIDE_MODULE_TF),
            ("greeting.tf.tera", TERA_TF),
        ],
    )
    .await;
    let out = app
        .cli(&["create", "--template=multi", "would-be", "--dry-run"])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for line in [
        "terraform_data.vm[0]",
        "module.side.terraform_data.box[0]",
        "terraform_data.volume[\"a\"]",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    let vm = text
        .lines()
        .find(|l| l.starts_with("terraform_data.vm[0]"))
        .unwrap();
    assert!(
        vm.contains("computational") && vm.contains("ephemeral"),
        "{vm}"
    );
    assert!(
        app.client.workspaces(true, "").await.unwrap().is_empty(),
        "a dry run creates no workspace"
    );
    // Parameters are checked before anything is queued.
    push_files(&app, "p", &[("main.tf", &format!("{PROVIDER}{PARAMS_TF}"))]).await;
    let err = app
        .client
        .dry_run("p", "v1", [("size".to_string(), "99".to_string())].into())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::BAD_REQUEST));
    app.stop().await;
}

/// Parameters the static parse cannot see (a child module, a rendered `.tf.tera`) come
/// from the import's evaluation, and are enforced like any other.
#[tokio::test(flavor = "multi_thread")]
async fn import_finds_parameters_in_modules_and_tera_files() {
    let app = spawn_app().await;
    let module = r#"
terraform {
  required_providers {
    hangar = { source = "hangar/hangar" }
  }
}
data "hangar_parameter" "disk" {
  name    = "disk_gb"
  type    = "number"
  default = 10
  mutable = true
  validation {
    min = 5
    max = 50
  }
}
output "disk" { value = data.hangar_parameter.disk.value }
"#;
    let tera = "data \"hangar_parameter\" \"{{ template.name }}_flavor\" {\n  name    = \"flavor\"\n  default = \"plain\"\n  option {\n    name  = \"Plain\"\n    value = \"plain\"\n  }\n  option {\n    name  = \"Fancy\"\n    value = \"fancy\"\n  }\n}\n";
    let v = push_files(
        &app,
        "hidden",
        &[
            (
                "main.tf",
                &format!("{PROVIDER}module \"disk\" {{\n  source = \"./modules/disk\"\n}}\n"),
            ),
            ("modules/disk/main.tf", module),
            ("flavor.tf.tera", tera),
        ],
    )
    .await;
    let names: Vec<&str> = v.parameters.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["disk_gb", "flavor"], "{:?}", v.parameters);
    let disk = &v.parameters[0];
    assert_eq!(disk.default.as_deref(), Some("10"));
    assert_eq!(disk.validation.as_ref().and_then(|v| v.max), Some(50.0));
    assert_eq!(v.parameters[1].options.len(), 2);

    let err = app
        .client
        .create_workspace(&CreateWorkspaceRequest {
            name: "ws".into(),
            template: "hidden".into(),
            parameters: [("disk_gb".to_string(), "99".to_string())].into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("above the maximum 50"), "{err}");
    app.client
        .create_workspace(&CreateWorkspaceRequest {
            name: "ws".into(),
            template: "hidden".into(),
            parameters: [("flavor".to_string(), "fancy".to_string())].into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let ws = wait_build(&app, "ws").await;
    assert_eq!(
        ws.status,
        WorkspaceStatus::Running,
        "{:?}",
        ws.latest_build.job.error
    );
    assert_eq!(ws.latest_build.parameters["disk_gb"], "10");
    app.stop().await;
}

/// Several users' builds at once on the in-process provisioners: every one finishes, and
/// the database (one writer on SQLite) never turns a build into an error.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_builds_all_finish() {
    let app = spawn_app().await;
    let tf = format!("{PROVIDER}resource \"terraform_data\" \"x\" {{\n  count = data.hangar_workspace.me.start_count\n  input = data.hangar_workspace.me.name\n}}\nresource \"terraform_data\" \"home\" {{}}\n");
    push_files(&app, "t", &[("main.tf", &tf)]).await;
    let creates = (0..8).map(|i| {
        let client = app.client.clone();
        async move {
            client
                .create_workspace(&CreateWorkspaceRequest {
                    name: format!("ws-{i}"),
                    template: "t".into(),
                    ..Default::default()
                })
                .await
                .unwrap()
        }
    });
    let created = futures::future::join_all(creates).await;
    for ws in &created {
        let job = app
            .client
            .follow_job(&ws.latest_build.job.id, |_| {})
            .await
            .unwrap();
        assert_eq!(
            job.status,
            JobStatus::Succeeded,
            "{}: {:?}",
            ws.name,
            job.error
        );
    }
    // And stop them all at once.
    let stop = BuildRequest {
        transition: Some(Transition::Stop),
        ..Default::default()
    };
    let stops = created
        .iter()
        .map(|ws| app.client.build_workspace(&ws.name, &stop));
    for b in futures::future::join_all(stops).await {
        let job = app
            .client
            .follow_job(&b.unwrap().job.id, |_| {})
            .await
            .unwrap();
        assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
    }
    let list = app.client.workspaces(true, "").await.unwrap();
    assert_eq!(list.len(), 8);
    assert!(list
        .iter()
        .all(|w| w.status == WorkspaceStatus::Stopped && w.resources.len() == 1));
    app.stop().await;
}
