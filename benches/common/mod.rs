//! What the benchmarks share: a server of this build on SQLite, its first user, pushing a
//! template, and a workspace's life. (Each bench uses part of it.)
#![allow(dead_code)]

use std::time::{Duration, Instant};

use hangar::client::Client;
use hangar::wire::workspaces::{BuildRequest, CreateWorkspaceRequest};

pub fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}

pub fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A server on `address` (`127.0.0.1:0`, or `0.0.0.0:0` for containers to reach) with a
/// logged-in owner `bench`.
pub struct Server {
    pub url: String,
    pub client: Client,
    pub token: String,
    _data: tempfile::TempDir,
}

pub async fn server(address: &str) -> Server {
    server_with(address, |_| {}).await
}

/// [`server`], with its configuration tuned first.
pub async fn server_with(address: &str, tune: impl FnOnce(&mut hangar::config::Config)) -> Server {
    let data = tempfile::tempdir().unwrap();
    let db = hangar::db::Database::open_sqlite(data.path())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let mut config = hangar::config::Config::new(data.path().to_path_buf(), url.clone());
    config.hangar_binary = env!("CARGO_BIN_EXE_hangar").into();
    tune(&mut config);
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
    let token = login.session_token.clone();
    Server {
        client: anon.with_token(&token),
        url,
        token,
        _data: data,
    }
}

/// Pushes the module in `dir` as template `name` and waits for its import.
pub async fn push(client: &Client, name: &str, dir: &std::path::Path) {
    let archive = hangar::model::archive::pack_dir(dir).unwrap();
    let v = client
        .push_template(name, archive, None, "", true)
        .await
        .unwrap();
    client.follow_job(&v.job.unwrap().id, |_| {}).await.unwrap();
}

/// Creates a workspace and returns how long until its agents were healthy.
pub async fn create_until_healthy(
    client: &Client,
    name: &str,
    template: &str,
    parameters: &[(&str, &str)],
) -> Duration {
    let req = CreateWorkspaceRequest {
        name: name.into(),
        template: template.into(),
        parameters: parameters
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    create_request_until_healthy(client, &req).await
}

/// Like [`create_until_healthy`], for any create request (a preset, say).
pub async fn create_request_until_healthy(
    client: &Client,
    req: &CreateWorkspaceRequest,
) -> Duration {
    let name = req.name.as_str();
    let start = Instant::now();
    let ws = client.create_workspace(req).await.unwrap();
    client
        .follow_job(&ws.latest_build.job.id, |_| {})
        .await
        .unwrap();
    for _ in 0..3000 {
        if client.workspace(name).await.unwrap().healthy {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{name} never became healthy");
}

pub async fn delete(client: &Client, name: &str) {
    let b = client
        .build_workspace(
            name,
            &BuildRequest {
                transition: Some(hangar::model::Transition::Delete),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    client.follow_job(&b.job.id, |_| {}).await.unwrap();
}
