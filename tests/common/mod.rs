//! The typed test app: a real server on 127.0.0.1:0 with a fresh database per test
//! (SQLite in a temp dir, or a new PostgreSQL database when HANGAR_TEST_DB=postgres).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

pub mod browser;
pub mod seed;

use hangar::client::Client;
use hangar::config::Config;
use hangar::db::Database;
use hangar::server;

pub const PASSWORD: &str = "correct-horse-battery";

pub struct TestApp {
    pub url: String,
    /// Logged in as the first user, an owner.
    pub client: Client,
    pub data_dir: tempfile::TempDir,
    pub config_dir: tempfile::TempDir,
    /// The test's own database, to look at it after the server stopped.
    pub db_url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub fn hangar_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hangar"))
}

/// A fresh database URL for one test: SQLite in `data_dir` by default, a new PostgreSQL
/// database when HANGAR_TEST_DB=postgres (test.sh starts the server and sets the URL).
pub async fn fresh_db_url(data_dir: &Path) -> String {
    if std::env::var("HANGAR_TEST_DB").as_deref() == Ok("postgres") {
        let admin_url = std::env::var("HANGAR_TEST_PG_URL")
            .expect("HANGAR_TEST_DB=postgres needs HANGAR_TEST_PG_URL (test.sh starts PostgreSQL and sets it)");
        let name = format!("hangar_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::any::install_default_drivers();
        let admin = sqlx::AnyPool::connect(&admin_url)
            .await
            .expect("connecting to the test PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("creating a test database");
        admin.close().await;
        let (base, _) = admin_url
            .rsplit_once('/')
            .expect("a database URL with a path");
        format!("{base}/{name}")
    } else {
        format!("sqlite://{}?mode=rwc", data_dir.join("hangar.db").display())
    }
}

pub async fn test_database(data_dir: &Path) -> Database {
    Database::connect(&fresh_db_url(data_dir).await)
        .await
        .expect("connecting to the test database")
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tune: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_on("127.0.0.1:0", tune).await
}

/// A server containers reach too: it listens on every interface (the `docker`
/// template's agents dial host.docker.internal), its access URL is loopback's. Set up
/// as `./run.sh` sets one up: as root, terraform runs as the unprivileged user (in the
/// `docker` group), and the workspace image is built beforehand, as root (debootstrap
/// needs root; the template then finds it cached).
pub async fn spawn_app_for_containers() -> TestApp {
    static IMAGE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    IMAGE
        .get_or_init(|| async {
            let out = tokio::process::Command::new("sh")
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/templates/docker/build-image.sh"
                ))
                .arg("hangar-workspace:bookworm-1")
                .output()
                .await
                .unwrap();
            assert!(
                out.status.success(),
                "building the workspace image: {}",
                stderr(&out)
            );
        })
        .await;
    let user = terraform_user().map(|u| u.name);
    spawn_app_on("0.0.0.0:0", |c| c.terraform_user = user).await
}

async fn spawn_app_on(address: &str, tune: impl FnOnce(&mut Config)) -> TestApp {
    let data_dir = tempfile::tempdir().unwrap();
    let config_dir = tempfile::tempdir().unwrap();
    let db_url = fresh_db_url(data_dir.path()).await;
    let db = Database::connect(&db_url)
        .await
        .expect("connecting to the test database");
    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let mut config = Config::new(data_dir.path().to_path_buf(), url.clone());
    config.hangar_binary = hangar_bin();
    tune(&mut config);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(server::serve(listener, config, db, async move {
        let _ = rx.await;
    }));
    let anon = Client::new(&url, None);
    let created = anon
        .create_first_user(&hangar::wire::users::CreateUserRequest {
            username: "owner".into(),
            email: "owner@example.com".into(),
            password: PASSWORD.into(),
            full_name: "The Owner".into(),
            role: None,
        })
        .await
        .expect("creating the first user");
    TestApp {
        client: anon.with_token(&created.session_token),
        url,
        data_dir,
        config_dir,
        db_url,
        shutdown: Some(tx),
        handle: Some(handle),
    }
}

impl TestApp {
    pub fn anon(&self) -> Client {
        Client::new(&self.url, None)
    }

    /// A new user with `role`, logged in.
    pub async fn user(&self, name: &str, role: hangar::model::Role) -> Client {
        self.client
            .create_user(&hangar::wire::users::CreateUserRequest {
                username: name.into(),
                email: format!("{name}@example.com"),
                password: PASSWORD.into(),
                full_name: String::new(),
                role: Some(role),
            })
            .await
            .unwrap();
        let login = self.anon().login(name, PASSWORD).await.unwrap();
        self.anon().with_token(&login.session_token)
    }

    /// Runs the built `hangar` binary as the owner (HANGAR_URL + HANGAR_SESSION_TOKEN).
    pub async fn cli(&self, args: &[&str]) -> Output {
        self.cli_as(self.client.token(), args, None).await
    }

    pub async fn cli_as(&self, token: Option<&str>, args: &[&str], stdin: Option<&str>) -> Output {
        use tokio::io::AsyncWriteExt;
        let mut cmd = tokio::process::Command::new(hangar_bin());
        cmd.args(args)
            .env("HANGAR_URL", &self.url)
            .env("HANGAR_CONFIG_DIR", self.config_dir.path())
            .env_remove("HANGAR_SESSION_TOKEN")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(t) = token {
            cmd.env("HANGAR_SESSION_TOKEN", t);
        }
        let mut child = cmd.spawn().expect("running the hangar binary");
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).await.unwrap();
        }
        drop(input);
        child.wait_with_output().await.unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A template directory with the given files.
pub fn template_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    dir
}

/// Terraform's `required_providers` for Hangar's provider, and `data.hangar_workspace.me`:
/// the head of most test templates.
pub const PROVIDER: &str = "terraform {\n  required_providers {\n    hangar = { source = \"hangar/hangar\" }\n  }\n}\ndata \"hangar_workspace\" \"me\" {}\n";

/// Pushes a template made of `files` and waits for its import, which must succeed.
pub async fn push_files(
    app: &TestApp,
    name: &str,
    files: &[(&str, &str)],
) -> hangar::wire::templates::VersionView {
    let dir = template_dir(files);
    push_dir(app, name, dir.path()).await
}

/// Pushes a built-in template (`local`, `external`) and waits for its import.
pub async fn push_builtin(app: &TestApp, id: &str) -> hangar::wire::templates::VersionView {
    let dir = tempfile::tempdir().unwrap();
    hangar::cli::templates::write_builtin(id, dir.path()).unwrap();
    push_dir(app, id, dir.path()).await
}

async fn push_dir(app: &TestApp, name: &str, dir: &Path) -> hangar::wire::templates::VersionView {
    let archive = hangar::model::archive::pack_dir(dir).unwrap();
    let v = app
        .client
        .push_template(name, archive, None, "", true)
        .await
        .unwrap();
    let job = app
        .client
        .follow_job(&v.job.as_ref().unwrap().id, |_| {})
        .await
        .unwrap();
    assert_eq!(
        job.status,
        hangar::model::JobStatus::Succeeded,
        "import of {name} failed: {:?}",
        job.error
    );
    app.client.template_version(name, &v.name).await.unwrap()
}

/// Deletes a workspace and waits for the build: a `local` workspace's agent is a process
/// on this machine that would otherwise outlive the test, retrying its server forever.
pub async fn delete_workspace(client: &Client, name: &str) {
    let b = client
        .build_workspace(
            name,
            &hangar::wire::workspaces::BuildRequest {
                transition: Some(hangar::model::Transition::Delete),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    client.follow_job(&b.job.id, |_| {}).await.unwrap();
}

/// Creates workspace `dev` from `template` (a `local`-style one) with its homes under
/// `homes`, and waits for its build and then, for up to 30 s, for it to be healthy.
pub async fn create_dev(
    client: &Client,
    template: &str,
    homes: &Path,
) -> hangar::wire::workspaces::WorkspaceView {
    let ws = client
        .create_workspace(&hangar::wire::workspaces::CreateWorkspaceRequest {
            name: "dev".into(),
            template: template.into(),
            parameters: [("home_base".to_string(), homes.display().to_string())].into(),
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .follow_job(&ws.latest_build.job.id, |_| {})
        .await
        .unwrap();
    for _ in 0..150 {
        let ws = client.workspace("dev").await.unwrap();
        if ws.healthy {
            return ws;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    client.workspace("dev").await.unwrap()
}

/// `GET /metrics` of `app`, with `token` as the bearer when given; the status and text.
pub async fn scrape(app: &TestApp, token: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(format!("{}/metrics", app.url));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The value of one sample (`name{labels}` exactly as Prometheus' text format writes it,
/// labels sorted) in a scrape, or None when it is absent.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// A web page of `app` as the owner sees it (their session as the cookie).
pub async fn page_as_owner(app: &TestApp, path: &str) -> String {
    reqwest::Client::new()
        .get(format!("{}{path}", app.url))
        .header(
            "cookie",
            format!("hangar_session={}", app.client.token().unwrap()),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Creates a workspace and follows its first build to the end, whatever the outcome.
pub async fn create_and_follow(
    client: &Client,
    req: &hangar::wire::workspaces::CreateWorkspaceRequest,
) -> hangar::wire::jobs::Job {
    let ws = client.create_workspace(req).await.unwrap();
    client
        .follow_job(&ws.latest_build.job.id, |_| {})
        .await
        .unwrap()
}

/// Creates a workspace, waits for its first build, which must succeed, and returns the
/// workspace as it is then.
pub async fn create_built(
    client: &Client,
    req: &hangar::wire::workspaces::CreateWorkspaceRequest,
) -> hangar::wire::workspaces::WorkspaceView {
    let job = create_and_follow(client, req).await;
    assert_eq!(
        job.status,
        hangar::model::JobStatus::Succeeded,
        "creating {}: {:?}",
        req.name,
        job.error
    );
    client.workspace(&req.name).await.unwrap()
}

/// A temp dir the user terraform runs as may write in: `hangar server` started as root
/// (as tests that run the binary do here) runs terraform as `hangar-terraform`, and the
/// `local` template makes its homes under such a dir.
pub fn dir_for_terraform() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    if let Some(user) = terraform_user() {
        std::os::unix::fs::chown(dir.path(), Some(user.uid), Some(user.gid)).unwrap();
    }
    dir
}

/// The account `hangar server` runs terraform as when the tests run as root (None when
/// they do not: a server that is not root runs terraform as itself).
pub fn terraform_user() -> Option<hangar::unix_user::Account> {
    if hangar::unix_user::effective_uid() != 0 {
        return None;
    }
    let name = hangar::provisioner::terraform::run_as::DEFAULT_USER;
    let account = hangar::unix_user::by_name(name).unwrap().unwrap_or_else(|| {
        panic!("the tests run as root, so `hangar server` runs terraform as {name}, which does not exist: ./test.sh creates it (scripts/prereqs.sh, ensure_terraform_user)")
    });
    Some(account)
}

/// The first user (`owner`, an owner) of a server at `url` started as a separate
/// process: a client logged in as it, and its session token.
pub async fn create_owner(url: &str) -> (Client, String) {
    let anon = Client::new(url, None);
    let login = anon
        .create_first_user(&hangar::wire::users::CreateUserRequest {
            username: "owner".into(),
            email: "o@example.com".into(),
            password: PASSWORD.into(),
            full_name: String::new(),
            role: None,
        })
        .await
        .unwrap();
    (anon.with_token(&login.session_token), login.session_token)
}
