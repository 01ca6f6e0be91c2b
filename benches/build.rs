//! create→running of the built-in `local` template through Hangar, against bare
//! `terraform init && terraform apply` of the same module in the same process, and the
//! stop/start overhead beyond terraform's own time. Prints medians and ratios: these
//! machines are noisy, so only ratios measured side by side mean anything.

use std::path::Path;
use std::time::{Duration, Instant};

use hangar::client::Client;
use hangar::model::Transition;
use hangar::wire::workspaces::{BuildRequest, CreateWorkspaceRequest};

const RUNS: usize = 7;

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn bare_terraform(module: &Path, mirror_rc: &Path, home_base: &Path) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(module.join("main.tf"), dir.path().join("main.tf")).unwrap();
    let param = hangar::provider::parameter_env_name("home_base");
    let run = |args: &[&str]| {
        let out = std::process::Command::new("terraform")
            .args(args)
            .current_dir(dir.path())
            .env("TF_CLI_CONFIG_FILE", mirror_rc)
            .env("TF_IN_AUTOMATION", "1")
            .env(&param, home_base)
            .env(
                "HANGAR_WORKSPACE_NAME",
                format!("bare-{}", uuid::Uuid::new_v4().simple()),
            )
            .output()
            .expect("terraform must be installed to run this benchmark");
        assert!(
            out.status.success(),
            "terraform {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let start = Instant::now();
    run(&["init", "-input=false"]);
    run(&["apply", "-auto-approve", "-input=false"]);
    let took = start.elapsed();
    run(&["destroy", "-auto-approve", "-input=false"]);
    took
}

async fn wait(client: &Client, job: &str) -> hangar::wire::jobs::Job {
    let job = client.follow_job(job, |_| {}).await.unwrap();
    assert_eq!(
        job.status,
        hangar::model::JobStatus::Succeeded,
        "{:?}",
        job.error
    );
    job
}

fn terraform_ms(job: &hangar::wire::jobs::Job) -> f64 {
    let stage = |name: &str| job.timings.get(name).copied().unwrap_or(0) as f64;
    stage("init_ms") + stage("apply_ms")
}

#[tokio::main]
async fn main() {
    let data = tempfile::tempdir().unwrap();
    let homes = tempfile::tempdir().unwrap();
    let db = hangar::db::Database::open_sqlite(data.path())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut config = hangar::config::Config::new(data.path().to_path_buf(), url.clone());
    config.hangar_binary = env!("CARGO_BIN_EXE_hangar").into();
    tokio::spawn(hangar::server::serve(
        listener,
        config,
        db,
        std::future::pending(),
    ));
    let anon = Client::new(&url, None);
    let login = anon
        .create_first_user(&hangar::wire::users::CreateUserRequest {
            username: "bench".into(),
            email: "b@example.com".into(),
            password: "benchmark-password".into(),
            full_name: String::new(),
            role: None,
        })
        .await
        .unwrap();
    let client = anon.with_token(&login.session_token);
    let module = tempfile::tempdir().unwrap();
    hangar::cli::templates::write_builtin("local", module.path()).unwrap();
    let archive = hangar::model::archive::pack_dir(module.path()).unwrap();
    let v = client
        .push_template("local", archive, None, "", true)
        .await
        .unwrap();
    wait(&client, &v.job.unwrap().id).await;

    let mirror = tempfile::tempdir().unwrap();
    hangar::provider::mirror::install(
        &mirror.path().join("m"),
        Path::new(env!("CARGO_BIN_EXE_hangar")),
    )
    .unwrap();
    let rc = mirror.path().join("terraform.rc");
    std::fs::write(
        &rc,
        hangar::provider::mirror::cli_config(&mirror.path().join("m"), None),
    )
    .unwrap();

    let (mut hangar_create, mut bare, mut stop_over, mut start_over) =
        (vec![], vec![], vec![], vec![]);
    for i in 0..RUNS {
        bare.push(bare_terraform(module.path(), &rc, homes.path()));
        let t = Instant::now();
        let ws = client
            .create_workspace(&CreateWorkspaceRequest {
                name: format!("ws-{i}"),
                template: "local".into(),
                parameters: [("home_base".to_string(), homes.path().display().to_string())].into(),
                ..Default::default()
            })
            .await
            .unwrap();
        wait(&client, &ws.latest_build.job.id).await;
        hangar_create.push(t.elapsed());
        for (transition, out) in [
            (Transition::Stop, &mut stop_over),
            (Transition::Start, &mut start_over),
        ] {
            let t = Instant::now();
            let b = client
                .build_workspace(
                    &ws.name,
                    &BuildRequest {
                        transition: Some(transition),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let job = wait(&client, &b.job.id).await;
            let total = ms(t.elapsed());
            out.push(Duration::from_secs_f64(
                (total - terraform_ms(&job)).max(0.0) / 1000.0,
            ));
        }
    }
    let (h, b) = (median(hangar_create), median(bare));
    println!("create→running (local template), median of {RUNS}:");
    println!("  hangar create + wait        {:8.1} ms", ms(h));
    println!("  bare terraform init && apply {:7.1} ms", ms(b));
    println!("  ratio hangar / bare          {:7.2}x", ms(h) / ms(b));
    println!("overhead beyond terraform's own time (API, queue, DB, classify), median:");
    println!("  stop  {:7.1} ms", ms(median(stop_over)));
    println!("  start {:7.1} ms", ms(median(start_over)));

    // Leave nothing running: each workspace's agent process would outlive the server.
    for i in 0..RUNS {
        let b = client
            .build_workspace(
                &format!("ws-{i}"),
                &BuildRequest {
                    transition: Some(Transition::Delete),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        wait(&client, &b.job.id).await;
    }
}
