//! The workspace agent: real `hangar agent` processes against a real server, with the
//! workspace, build and agent rows written through the same `Database` functions the
//! build runner uses.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{fresh_db_url, hangar_bin, PASSWORD};
use hangar::client::Client;
use hangar::config::Config;
use hangar::db::agents::Agent;
use hangar::db::jobs::Completion;
use hangar::db::templates::{Template, TemplateVersion};
use hangar::db::workspaces::{NewBuild, Workspace};
use hangar::db::Database;
use hangar::model::agent::{AgentStatus, Lifecycle};
use hangar::model::secret::{generate_token, hash_token};
use hangar::model::{new_id, now_ms, JobStatus, Transition};
use hangar::server;
use hangar::wire::agents::AgentView;
use reqwest::StatusCode;

// ---- Server log capture: every server in this test binary logs here, at debug level,
// so tests can prove that no token ever reaches a log line.

static LOGS: OnceLock<std::sync::Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct Capture(std::sync::Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    LOGS.get_or_init(|| {
        let buf = std::sync::Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(buf.clone());
        tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        buf
    });
}

fn server_logs() -> String {
    String::from_utf8_lossy(&LOGS.get().expect("logs captured").lock().unwrap()).into_owned()
}

// ---- A server that can be stopped and started again on the same address and database.

struct Server {
    addr: SocketAddr,
    url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    async fn start(addr: SocketAddr, data_dir: &Path, db_url: &str) -> Server {
        let db = Database::connect(db_url)
            .await
            .expect("opening the database");
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("binding the server address");
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}");
        let mut config = Config::new(data_dir.to_path_buf(), url.clone());
        config.hangar_binary = hangar_bin();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(server::serve(listener, config, db, async move {
            let _ = rx.await;
        }));
        Server {
            addr,
            url,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(15), h)
                .await
                .expect("the server stops within 15 s")
                .unwrap()
                .unwrap();
        }
    }
}

struct Fixture {
    server: Server,
    data_dir: tempfile::TempDir,
    db_url: String,
    /// The test's own handle on the server's database, to write what a build would.
    db: Database,
    owner: Client,
    owner_id: String,
}

/// An agent row of a started workspace, and its token.
struct TestAgent {
    workspace_id: String,
    template_version_id: String,
    agent_id: String,
    token: String,
}

async fn fixture() -> Fixture {
    capture_logs();
    let data_dir = tempfile::tempdir().unwrap();
    let db_url = fresh_db_url(data_dir.path()).await;
    let server = Server::start("127.0.0.1:0".parse().unwrap(), data_dir.path(), &db_url).await;
    let db = Database::connect(&db_url).await.unwrap();
    let anon = Client::new(&server.url, None);
    let created = anon
        .create_first_user(&hangar::wire::users::CreateUserRequest {
            username: "owner".into(),
            email: "owner@example.com".into(),
            password: PASSWORD.into(),
            full_name: "The Owner".into(),
            role: None,
        })
        .await
        .unwrap();
    let owner = anon.with_token(&created.session_token);
    let owner_id = owner.me().await.unwrap().id;
    Fixture {
        server,
        data_dir,
        db_url,
        db,
        owner,
        owner_id,
    }
}

impl Fixture {
    /// Runs a queued build's job to success, as a provisioner would.
    async fn finish_build(&self, job_id: &str) {
        let job = self
            .db
            .claim_job("test-provisioner")
            .await
            .unwrap()
            .expect("a pending job");
        assert_eq!(job.id, job_id, "the build's job is the one claimed");
        let done = Completion {
            status: JobStatus::Succeeded,
            error: None,
            error_code: None,
            timings: "{}",
            result: "{}",
        };
        assert!(self
            .db
            .complete_job(self.db.pool(), &job.id, "test-provisioner", &done)
            .await
            .unwrap());
    }

    /// Records an agent for `build_id` with `spec` as its manifest; returns its token.
    async fn insert_agent(&self, build_id: &str, spec: &serde_json::Value) -> (String, String) {
        let token = generate_token().expose().to_string();
        let id = new_id();
        let agent = Agent {
            id: id.clone(),
            build_id: build_id.into(),
            name: "main".into(),
            host_address: None,
            external: false,
            os: "linux".into(),
            arch: "amd64".into(),
            manifest: spec.to_string(),
            lifecycle: hangar::model::agent::Lifecycle::Created,
            version: String::new(),
            hostname: String::new(),
            first_connected_at: None,
            last_connected_at: None,
            disconnected_at: None,
            created_at: now_ms(),
            listening_ports: Vec::new(),
            app_health: Default::default(),
            last_usage: None,
        };
        self.db
            .insert_agents(self.db.pool(), &[(agent, hash_token(&token))])
            .await
            .unwrap();
        (id, token)
    }

    /// A started workspace `name` whose build has one agent with `spec` as manifest.
    async fn started_workspace(&self, name: &str, spec: serde_json::Value) -> TestAgent {
        let now = now_ms();
        let template = Template {
            id: new_id(),
            name: format!("tpl-{name}"),
            description: String::new(),
            active_version_id: None,
            created_by: self.owner_id.clone(),
            created_at: now,
            updated_at: now,
            display_name: String::new(),
            icon: String::new(),
        };
        self.db.insert_template(&template).await.unwrap();
        let version = TemplateVersion {
            id: new_id(),
            template_id: template.id.clone(),
            name: "v1".into(),
            message: String::new(),
            created_by: self.owner_id.clone(),
            created_at: now,
            job_id: None,
            parameters: Vec::new(),
            resources: Vec::new(),
            graph: None,
            has_external_agent: false,
            facts: Default::default(),
            variables: Default::default(),
        };
        self.db
            .insert_template_version(self.db.pool(), &version, b"")
            .await
            .unwrap();
        let ws = Workspace {
            id: new_id(),
            name: name.into(),
            owner_id: self.owner_id.clone(),
            template_id: template.id.clone(),
            favorite: false,
            created_at: now,
            deleted: false,
            last_used_at: None,
        };
        let build = self
            .db
            .create_workspace(
                &ws,
                &NewBuild {
                    workspace_id: &ws.id,
                    transition: Transition::Start,
                    template_version_id: &version.id,
                    initiator_id: &self.owner_id,
                    parameters: "{}",
                    orphan: false,
                    prebuild_claim: false,
                },
            )
            .await
            .unwrap_or_else(|e| panic!("creating the workspace: {e:?}"));
        self.finish_build(&build.job_id).await;
        let (agent_id, token) = self.insert_agent(&build.id, &spec).await;
        TestAgent {
            workspace_id: ws.id,
            template_version_id: version.id,
            agent_id,
            token,
        }
    }

    /// Queues and finishes a build of `transition`; returns the build id.
    async fn build(&self, a: &TestAgent, transition: Transition) -> String {
        let build = self
            .db
            .queue_build(&NewBuild {
                workspace_id: &a.workspace_id,
                transition,
                template_version_id: &a.template_version_id,
                initiator_id: &self.owner_id,
                parameters: "{}",
                orphan: false,
                prebuild_claim: false,
            })
            .await
            .unwrap_or_else(|e| panic!("queueing a {transition} build: {e:?}"));
        self.finish_build(&build.job_id).await;
        build.id
    }

    fn agent_client(&self, token: &str) -> Client {
        Client::new(&self.server.url, Some(token.to_string()))
    }

    async fn view(&self, agent_id: &str) -> AgentView {
        self.owner.agent(agent_id).await.unwrap()
    }
}

/// A running `hangar agent`; killed when dropped. Its stderr goes to a file.
struct AgentProcess {
    child: tokio::process::Child,
    stderr_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl AgentProcess {
    fn spawn(url: &str, token: &str) -> AgentProcess {
        let dir = tempfile::tempdir().unwrap();
        let stderr_path = dir.path().join("agent.stderr");
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let child = tokio::process::Command::new(hangar_bin())
            .arg("agent")
            .env("HANGAR_URL", url)
            .env("HANGAR_AGENT_TOKEN", token)
            .env("HOME", dir.path())
            .env_remove("CODER_AGENT_URL")
            .env_remove("CODER_AGENT_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true)
            .spawn()
            .expect("starting `hangar agent`");
        AgentProcess {
            child,
            stderr_path,
            _dir: dir,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// SIGTERM, then wait (bounded) for the exit status.
    async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("the agent is running") as i32;
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the agent exits after SIGTERM; stderr:\n{}", self.stderr()))
            .unwrap()
    }
}

/// Polls `check` until it returns Some, or fails with `what` after `limit`.
async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_healthy(f: &Fixture, agent_id: &str, agent: &AgentProcess) -> AgentView {
    let start = Instant::now();
    loop {
        let v = f.view(agent_id).await;
        if v.healthy {
            return v;
        }
        if start.elapsed() > Duration::from_secs(20) {
            panic!(
                "the agent did not become healthy: {v:?}\nagent stderr:\n{}",
                agent.stderr()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn log_texts(f: &Fixture, agent_id: &str) -> Vec<String> {
    f.owner
        .agent_logs(agent_id, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|l| format!("{}: {}", l.source, l.text))
        .collect()
}

fn assert_401(err: hangar::client::ClientError, expect: &str) {
    assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED), "{err}");
    assert!(err.to_string().contains(expect), "{err}");
}

#[tokio::test]
async fn agent_connects_runs_its_scripts_reports_metadata_and_shuts_down() {
    let f = fixture().await;
    let home = tempfile::tempdir().unwrap();
    let spec = serde_json::json!({
        "dir": home.path().join("work"),
        "env": { "GREETING": "hello from the template" },
        "startup_script": "#!/bin/sh\necho \"$GREETING in $(pwd)\"\necho to-stderr >&2\necho \"token=[${HANGAR_AGENT_TOKEN:-}${CODER_AGENT_TOKEN:-}]\"",
        "shutdown_script": "echo goodbye from shutdown",
        "scripts": [
            { "display_name": "prep", "script": "echo prep ran", "run_on_start": true },
            { "display_name": "stopper", "script": "echo stop script ran", "run_on_stop": true },
            { "display_name": "ticker", "script": "echo tick", "cron": "* * * * * *" }
        ],
        "metadata": [
            { "key": "answer", "display_name": "The answer", "script": "echo 42", "interval": 1 },
            { "key": "broken", "script": "echo nope >&2; exit 3", "interval": 1, "timeout": 1 }
        ],
        "connection_timeout": 120
    });
    let a = f.started_workspace("dev", spec).await;

    // The manifest the agent gets.
    let m = f.agent_client(&a.token).agent_manifest().await.unwrap();
    assert_eq!(
        (
            m.workspace_name.as_str(),
            m.agent_name.as_str(),
            m.owner_name.as_str()
        ),
        ("dev", "main", "owner")
    );
    assert_eq!(m.spec.metadata.len(), 2);
    assert_eq!(m.access_url, f.server.url);
    let before = f.view(&a.agent_id).await;
    assert_eq!(before.status, AgentStatus::Connecting);
    assert!(!before.healthy);

    let started = Instant::now();
    let mut agent = AgentProcess::spawn(&f.server.url, &a.token);
    let view = wait_healthy(&f, &a.agent_id, &agent).await;
    println!("agent healthy after {:?}", started.elapsed());
    assert_eq!(view.lifecycle, Lifecycle::Ready);
    assert_eq!(view.version, env!("CARGO_PKG_VERSION"));
    assert!(!view.hostname.is_empty());
    assert_eq!(view.os, std::env::consts::OS);

    let logs = log_texts(&f, &a.agent_id).await;
    let work = home.path().join("work");
    let expect = format!(
        "startup_script: hello from the template in {}",
        work.display()
    );
    assert!(logs.contains(&expect), "{logs:#?}");
    assert!(
        logs.contains(&"startup_script: to-stderr".to_string()),
        "{logs:#?}"
    );
    assert!(logs.contains(&"prep: prep ran".to_string()), "{logs:#?}");
    // Scripts are the user's code: the agent's token is not in their environment.
    assert!(
        logs.contains(&"startup_script: token=[]".to_string()),
        "{logs:#?}"
    );
    let tail = f.owner.agent_logs_tail(&a.agent_id, 2).await.unwrap();
    assert_eq!(tail.len(), 2);
    let all = f.owner.agent_logs(&a.agent_id, 0).await.unwrap();
    // The ticker may log between the two reads: the tail is two consecutive lines of
    // the whole, the newest at the time.
    let at = all
        .iter()
        .position(|l| *l == tail[0])
        .expect("the tail is in the whole");
    assert_eq!(all.get(at + 1), Some(&tail[1]), "{tail:?} in {all:?}");
    assert!(all[at + 2..].iter().all(|l| l.id > tail[1].id));

    // The log file in the agent's dir has the same output.
    let file = std::fs::read_to_string(work.join(".hangar-agent.log")).unwrap();
    assert!(file.contains("hello from the template"), "{file}");

    let metadata = eventually(Duration::from_secs(10), "both metadata results", || async {
        let md = f.owner.agent_metadata(&a.agent_id).await.unwrap();
        md.iter().all(|m| m.collected_at.is_some()).then_some(md)
    })
    .await;
    let answer = metadata.iter().find(|m| m.key == "answer").unwrap();
    assert_eq!(
        (
            answer.display_name.as_str(),
            answer.value.as_str(),
            answer.error.as_str()
        ),
        ("The answer", "42", "")
    );
    let broken = metadata.iter().find(|m| m.key == "broken").unwrap();
    assert!(broken.error.contains("nope"), "{broken:?}");

    // The cron script runs every second.
    eventually(Duration::from_secs(5), "two cron runs", || async {
        let logs = log_texts(&f, &a.agent_id).await;
        (logs.iter().filter(|l| *l == "ticker: tick").count() >= 2).then_some(())
    })
    .await;

    // Metadata keeps coming at its interval.
    let first = answer.collected_at.unwrap();
    eventually(
        Duration::from_secs(5),
        "a newer metadata result",
        || async {
            let md = f.owner.agent_metadata(&a.agent_id).await.unwrap();
            md.iter()
                .find(|m| m.key == "answer")
                .and_then(|m| m.collected_at)
                .filter(|t| *t > first)
        },
    )
    .await;

    // SIGTERM: shutdown scripts run, lifecycle ends at `off`, the socket closes.
    let status = agent.terminate().await;
    assert!(status.success(), "{status}\n{}", agent.stderr());
    // The server handles the last messages and the close right after the exit.
    eventually(
        Duration::from_secs(20),
        "lifecycle off and disconnected",
        || async {
            let v = f.view(&a.agent_id).await;
            (v.lifecycle == Lifecycle::Off && v.status == AgentStatus::Disconnected).then_some(())
        },
    )
    .await;
    let logs = log_texts(&f, &a.agent_id).await;
    assert!(
        logs.contains(&"shutdown_script: goodbye from shutdown".to_string()),
        "{logs:#?}"
    );
    assert!(
        logs.contains(&"stopper: stop script ran".to_string()),
        "{logs:#?}"
    );

    // Nobody else's business: a member cannot see the owner's agent.
    let member = {
        f.owner
            .create_user(&hangar::wire::users::CreateUserRequest {
                username: "member".into(),
                email: "member@example.com".into(),
                password: PASSWORD.into(),
                full_name: String::new(),
                role: Some(hangar::model::Role::Member),
            })
            .await
            .unwrap();
        let anon = Client::new(&f.server.url, None);
        let login = anon.login("member", PASSWORD).await.unwrap();
        anon.with_token(&login.session_token)
    };
    let err = member.agent_logs(&a.agent_id, 0).await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND), "{err}");
    assert!(!server_logs().contains(&a.token));
}

#[tokio::test]
async fn agent_reconnects_after_the_server_restarts() {
    let mut f = fixture().await;
    let spec = serde_json::json!({
        "startup_script": "echo started",
        "metadata": [{ "key": "tick", "script": "date +%s%N", "interval": 1 }]
    });
    let a = f.started_workspace("dev", spec).await;
    let agent = AgentProcess::spawn(&f.server.url, &a.token);
    wait_healthy(&f, &a.agent_id, &agent).await;

    f.server.stop().await;
    let view_db =
        f.db.get_agent_with_workspace(&a.agent_id)
            .await
            .unwrap()
            .unwrap();
    assert!(
        view_db.agent.disconnected_at.is_some(),
        "the closing server recorded the disconnect"
    );
    // Down for a while, so the agent is in its backoff when the server returns.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let restarted_at = now_ms();
    let clock = Instant::now();
    f.server = Server::start(f.server.addr, f.data_dir.path(), &f.db_url).await;
    let view = eventually(
        Duration::from_secs(10),
        "the agent to reconnect",
        || async {
            let v = f.view(&a.agent_id).await;
            (v.last_connected_at.is_some_and(|t| t.ms() >= restarted_at) && v.healthy).then_some(v)
        },
    )
    .await;
    println!("reconnected after {:?}", clock.elapsed());
    assert!(clock.elapsed() < Duration::from_secs(10));
    assert_eq!(view.status, AgentStatus::Connected);
    // Its scripts kept running: metadata arrives through the new server.
    eventually(
        Duration::from_secs(5),
        "metadata after the restart",
        || async {
            let md = f.owner.agent_metadata(&a.agent_id).await.unwrap();
            md[0].collected_at.filter(|t| t.ms() >= restarted_at)
        },
    )
    .await;
    f.server.stop().await;
    drop(agent);
}

#[tokio::test]
async fn a_stopped_workspace_refuses_its_token_and_drops_its_agent() {
    let f = fixture().await;
    let a = f.started_workspace("dev", serde_json::json!({})).await;
    let agent = AgentProcess::spawn(&f.server.url, &a.token);
    wait_healthy(&f, &a.agent_id, &agent).await;

    f.build(&a, Transition::Stop).await;
    let err = f.agent_client(&a.token).agent_manifest().await.unwrap_err();
    assert_401(err, "workspace dev is not started");
    // The connected agent is told within a heartbeat interval and disconnected.
    let view = eventually(
        Duration::from_secs(10),
        "the agent to be dropped",
        || async {
            let v = f.view(&a.agent_id).await;
            (v.status == AgentStatus::Disconnected).then_some(v)
        },
    )
    .await;
    assert!(!view.healthy);
    eventually(
        Duration::from_secs(5),
        "the agent to log the refusal",
        || async { agent.stderr().contains("not started").then_some(()) },
    )
    .await;
    assert!(!agent.stderr().contains(&a.token));
    assert!(!server_logs().contains(&a.token));
}

#[tokio::test]
async fn deleted_and_rebuilt_workspaces_refuse_old_tokens() {
    let f = fixture().await;
    let a = f.started_workspace("dev", serde_json::json!({})).await;
    f.agent_client(&a.token).agent_manifest().await.unwrap();

    // A rebuild issues new tokens: the old one dies, the new one works.
    let build = f.build(&a, Transition::Start).await;
    let (new_id, new_token) = f.insert_agent(&build, &serde_json::json!({})).await;
    let err = f.agent_client(&a.token).agent_manifest().await.unwrap_err();
    assert_401(err, "old build of workspace dev");
    let m = f.agent_client(&new_token).agent_manifest().await.unwrap();
    assert_eq!(m.agent_id, new_id);
    let mut agent = AgentProcess::spawn(&f.server.url, &new_token);
    wait_healthy(&f, &new_id, &agent).await;

    // Deleted: refused, and an agent still running (an external one: nothing stops it)
    // exits instead of retrying forever; so does one started afterwards.
    f.build(&a, Transition::Delete).await;
    f.db.mark_workspace_deleted(f.db.pool(), &a.workspace_id)
        .await
        .unwrap();
    let err = f
        .agent_client(&new_token)
        .agent_manifest()
        .await
        .unwrap_err();
    assert_401(err, "deleted workspace");
    let status = tokio::time::timeout(Duration::from_secs(30), agent.child.wait())
        .await
        .unwrap_or_else(|_| panic!("the agent exits; stderr:\n{}", agent.stderr()))
        .unwrap();
    assert!(status.success(), "{}", agent.stderr());
    assert!(
        agent.stderr().contains("workspace was deleted"),
        "{}",
        agent.stderr()
    );
    let mut late = AgentProcess::spawn(&f.server.url, &new_token);
    let status = tokio::time::timeout(Duration::from_secs(30), late.child.wait())
        .await
        .unwrap_or_else(|_| panic!("the agent exits; stderr:\n{}", late.stderr()))
        .unwrap();
    assert!(!status.success());
    assert!(
        late.stderr().contains("deleted workspace: exiting"),
        "{}",
        late.stderr()
    );
}

#[tokio::test]
async fn wrong_and_malformed_tokens_are_refused_and_never_logged() {
    let f = fixture().await;
    let a = f.started_workspace("dev", serde_json::json!({})).await;
    let wrong = generate_token().expose().to_string();
    // The real token with its last digit changed.
    let (head, last) = a.token.split_at(a.token.len() - 1);
    let near_miss = format!("{head}{}", if last == "0" { "1" } else { "0" });
    assert_ne!(near_miss, a.token);
    let bad = [
        wrong.clone(),
        near_miss.clone(),
        "definitely-not-a-token-6f1c".to_string(),
        "x".repeat(5000),
    ];
    for token in &bad {
        let err = f.agent_client(token).agent_manifest().await.unwrap_err();
        assert_401(err, "this agent token is not valid");
    }
    let err = Client::new(&f.server.url, None)
        .agent_manifest()
        .await
        .unwrap_err();
    assert_401(err, "missing agent token");
    // The WebSocket refuses it too, with the same message.
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v2/workspaceagents/me/ws", f.server.url))
        .bearer_auth(&wrong)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // A real agent with a wrong token keeps retrying and says why, without the token.
    let agent = AgentProcess::spawn(&f.server.url, &wrong);
    eventually(
        Duration::from_secs(10),
        "the agent to report the refusal",
        || async {
            agent
                .stderr()
                .contains("this agent token is not valid")
                .then_some(())
        },
    )
    .await;
    // And a real agent with the right token connects (its token crosses every path).
    let good = AgentProcess::spawn(&f.server.url, &a.token);
    wait_healthy(&f, &a.agent_id, &good).await;

    let logs = server_logs();
    assert!(logs.contains("agent connected"), "the capture works");
    for token in bad.iter().chain([&a.token]) {
        assert!(
            !logs.contains(token.as_str()),
            "a token leaked into the server log"
        );
        assert!(!agent.stderr().contains(token.as_str()));
        assert!(!good.stderr().contains(token.as_str()));
    }
}

#[tokio::test]
async fn the_init_script_downloads_and_runs_the_agent() {
    let f = fixture().await;
    let a = f
        .started_workspace(
            "dev",
            serde_json::json!({ "startup_script": "echo started by the init script" }),
        )
        .await;
    assert!(
        which::which("curl").is_ok(),
        "this test needs curl installed (the init script downloads with it)"
    );
    let (os, arch) = hangar::wire::agent::this_platform();
    let script = Client::new(&f.server.url, None)
        .init_script(os, arch)
        .await
        .unwrap();
    assert!(script.contains(&f.server.url));
    assert!(!script.contains(&a.token));

    let tmp = tempfile::tempdir().unwrap();
    let stderr_path = tmp.path().join("init.stderr");
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env("HANGAR_AGENT_TOKEN", &a.token)
        .env("TMPDIR", tmp.path())
        .env("HOME", tmp.path())
        .env_remove("HANGAR_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&stderr_path).unwrap()))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let start = Instant::now();
    loop {
        let v = f.view(&a.agent_id).await;
        if v.healthy {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the init script's agent did not become healthy: {v:?}\n{}",
            stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logs = log_texts(&f, &a.agent_id).await;
    assert!(logs.contains(&"startup_script: started by the init script".to_string()));
    // The script exec'd the agent: the shell's pid is the agent now, and SIGTERM stops it.
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id().unwrap() as i32, libc::SIGTERM);
    }
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}\n{}", stderr());
    eventually(Duration::from_secs(5), "lifecycle off", || async {
        (f.view(&a.agent_id).await.lifecycle == Lifecycle::Off).then_some(())
    })
    .await;
    assert!(!stderr().contains(&a.token));

    // Without a token the script says what is missing.
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env_remove("HANGAR_AGENT_TOKEN")
        .env_remove("CODER_AGENT_TOKEN")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HANGAR_AGENT_TOKEN is not set"));
}

#[tokio::test]
async fn binaries_and_init_scripts_for_other_platforms_are_404_with_a_reason() {
    let f = fixture().await;
    let anon = Client::new(&f.server.url, None);
    let (os, arch) = hangar::wire::agent::this_platform();
    let ours = anon
        .get_bytes(&format!("/bin/hangar-{os}-{arch}"))
        .await
        .unwrap();
    assert_eq!(
        ours.len() as u64,
        std::fs::metadata(hangar_bin()).unwrap().len()
    );
    let other = if arch == "arm64" { "amd64" } else { "arm64" };
    let err = anon
        .get_bytes(&format!("/bin/hangar-{os}-{other}"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
    assert!(
        err.to_string()
            .contains(&format!("serves only hangar-{os}-{arch}")),
        "{err}"
    );
    let err = anon.init_script("windows", "amd64").await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
    assert!(err.to_string().contains("POSIX sh"), "{err}");
}

#[tokio::test]
async fn every_init_script_renders_and_is_valid_sh() {
    use hangar::provisioner::init_script::{render, ARCHES, SCRIPT_OSES};
    let served = hangar::wire::agent::this_platform();
    for os in SCRIPT_OSES {
        for arch in ARCHES {
            let script = render("https://hangar.example.com:8443/it's", os, arch).unwrap();
            if (*os, *arch) != served {
                // No binary here for it: the script says so and stops, no endless retry.
                let out = tokio::process::Command::new("sh")
                    .arg("-c")
                    .arg(&script)
                    .output()
                    .await
                    .unwrap();
                assert_eq!(out.status.code(), Some(1), "{os}/{arch}");
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(
                    err.contains(&format!("no agent binary for {os}/{arch}")),
                    "{err}"
                );
                continue;
            }
            let out = tokio::process::Command::new("sh")
                .arg("-n")
                .arg("-c")
                .arg(&script)
                .output()
                .await
                .expect("running sh -n");
            assert!(
                out.status.success(),
                "{os}/{arch}: {}\n{script}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(script.contains(&format!("/api/v2/bin/hangar-{os}-{arch}")));
        }
    }
}

#[tokio::test]
async fn the_agent_explains_missing_configuration() {
    let out = tokio::process::Command::new(hangar_bin())
        .arg("agent")
        .env_remove("HANGAR_URL")
        .env_remove("CODER_AGENT_URL")
        .env("HANGAR_AGENT_TOKEN", "x")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HANGAR_URL is not set"));
    let out = tokio::process::Command::new(hangar_bin())
        .arg("agent")
        .env("HANGAR_URL", "http://127.0.0.1:9")
        .env_remove("HANGAR_AGENT_TOKEN")
        .env_remove("CODER_AGENT_TOKEN")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HANGAR_AGENT_TOKEN is not set"));
}

/// A startup script that prints without end stores at most the agent's log cap, and the
/// log says where it stopped.
#[tokio::test]
async fn an_agents_stored_log_is_capped_and_says_so() {
    let f = fixture().await;
    let home = tempfile::tempdir().unwrap();
    // 3 MiB in 1 KiB lines, three times the cap.
    let spec = serde_json::json!({
        "dir": home.path(),
        "startup_script": "#!/bin/sh\nhead -c 3145728 /dev/zero | tr '\\0' x | fold -w 1023\necho done-printing",
    });
    let a = f.started_workspace("chatty", spec).await;
    let agent = AgentProcess::spawn(&f.server.url, &a.token);
    wait_healthy(&f, &a.agent_id, &agent).await;
    let notice = eventually(Duration::from_secs(30), "the log-limit notice", || async {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page = f.owner.agent_logs(&a.agent_id, after).await.unwrap();
            let Some(last) = page.last() else { break };
            after = last.id;
            all.extend(page);
        }
        all.iter()
            .any(|l| l.text.contains("reached its limit"))
            .then_some(all)
    })
    .await;
    let bytes: usize = notice.iter().map(|l| l.text.len()).sum();
    assert!(bytes <= 1024 * 1024 + 1024, "{bytes} bytes stored");
    assert!(bytes > 1000 * 1024, "{bytes} bytes stored");
    assert!(!notice.iter().any(|l| l.text.contains("done-printing")));
    let mut f = f;
    f.server.stop().await;
}
