//! Getting into a workspace through its agent's tunnel, for real: the `local` template's
//! agent (started by its init script), a real HTTP server in the workspace, the real
//! `hangar port-forward` binary, and the bytes compared end to end.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use hangar::model::Role;
use hangar::wire::workspaces::{CreateWorkspaceRequest, WorkspaceView};
use reqwest::StatusCode;
use tokio::io::{AsyncBufReadExt, BufReader};

async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..150 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for {what}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `python3 -m http.server` serving `dir` on `port`: the workspace's own web server,
/// killed when dropped.
struct HttpServer {
    _child: tokio::process::Child,
}

impl HttpServer {
    async fn start(dir: &std::path::Path, port: u16) -> HttpServer {
        let child = tokio::process::Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs the workspace's HTTP server");
        until("the HTTP server", async || {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
        })
        .await;
        HttpServer { _child: child }
    }
}

/// A running `local` workspace `dev` with a healthy agent, its homes under `homes`.
async fn running_local(app: &TestApp, homes: &std::path::Path) -> WorkspaceView {
    push_builtin(app, "local").await;
    let ws = create_dev(&app.client, "local", homes).await;
    assert!(ws.healthy, "dev never became healthy");
    ws
}

/// Runs a program with the owner's session in its environment (as `hangar ssh`'s
/// ProxyCommand needs it), and returns its output.
async fn run_as_owner(app: &TestApp, program: &str, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(program)
        .args(args)
        .env("HANGAR_URL", &app.url)
        .env("HANGAR_CONFIG_DIR", app.config_dir.path())
        .env("HANGAR_SESSION_TOKEN", app.client.token().unwrap())
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn port_forward_reaches_a_server_in_the_workspace_and_only_for_its_owner() {
    let app = spawn_app().await;
    let homes = tempfile::tempdir().unwrap();
    let ws = running_local(&app, homes.path()).await;
    let agent = ws.agents().next().unwrap().clone();

    // The workspace serves 1 MiB of random bytes over HTTP on a port nobody forwards yet.
    let site = tempfile::tempdir().unwrap();
    let payload: Vec<u8> = (0..1024 * 1024).map(|_| rand::random::<u8>()).collect();
    std::fs::write(site.path().join("blob"), &payload).unwrap();
    let remote = free_port();
    let _server = HttpServer::start(site.path(), remote).await;

    // `hangar port-forward dev --tcp LOCAL:REMOTE`, the real binary, until killed.
    let local = free_port();
    let mut forward = tokio::process::Command::new(hangar_bin())
        .args(["port-forward", "dev", "--tcp", &format!("{local}:{remote}")])
        .env("HANGAR_URL", &app.url)
        .env("HANGAR_CONFIG_DIR", app.config_dir.path())
        .env("HANGAR_SESSION_TOKEN", app.client.token().unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(forward.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("port-forward says what it forwards")
        .unwrap()
        .unwrap_or_default();
    assert!(
        first.contains(&format!("127.0.0.1:{local}")) && first.contains("owner/dev.main"),
        "{first}"
    );
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let got = http
            .get(format!("http://127.0.0.1:{local}/blob"))
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200);
        assert!(got.bytes().await.unwrap() == payload, "identical bytes");
    }
    // Several connections at once, each its own stream in the one tunnel.
    let many = futures::future::join_all((0..8).map(|_| {
        let http = http.clone();
        async move {
            http.get(format!("http://127.0.0.1:{local}/blob"))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        }
    }))
    .await;
    assert!(many.iter().all(|b| *b == payload));
    forward.kill().await.unwrap();

    // A live session ends when its token is revoked (as on suspension or logout), and
    // a client cannot park big text frames on the server.
    let created = app.client.create_token("short", None).await.unwrap();
    let holder = app.client.with_token(&created.key);
    let socket = holder.dial_tcp(&agent.id, remote).await.unwrap();
    let (tx, mut rx) = futures::StreamExt::split(socket);
    app.client.remove_token("short").await.unwrap();
    let cut = std::time::Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(Ok(_)) = futures::StreamExt::next(&mut rx).await {}
    })
    .await;
    assert!(closed.is_ok(), "the session outlived its token");
    assert!(cut.elapsed() < Duration::from_secs(15));
    drop(tx);
    let socket = app.client.dial_tcp(&agent.id, remote).await.unwrap();
    let (mut tx2, mut rx2) = futures::StreamExt::split(socket);
    use futures::SinkExt;
    let big = tokio_tungstenite::tungstenite::Message::Text("x".repeat(1024 * 1024));
    let _ = tx2.send(big).await;
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(_)) = futures::StreamExt::next(&mut rx2).await {}
    })
    .await;
    assert!(refused.is_ok(), "a 1 MiB frame was accepted");
    drop(tx2);

    // The agent reports the port it listens on; show lists it; the owner's browser
    // reaches it through the port proxy, nobody else's does.
    until("the listening port reported", async || {
        let ws = app.client.workspace("dev").await.ok()?;
        let found = ws.agents().any(|a| a.listening_ports.contains(&remote));
        found.then_some(())
    })
    .await;
    let out = app.cli(&["show", "dev"]).await;
    assert!(
        stdout(&out).contains("listening ports:") && stdout(&out).contains(&remote.to_string()),
        "{}",
        stdout(&out)
    );
    let owner_cookie = format!("hangar_session={}", app.client.token().unwrap());
    let through = http
        .get(format!("{}/@owner/dev.main/ports/{remote}/blob", app.url))
        .header("cookie", &owner_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(through.status(), 200);
    assert!(through.bytes().await.unwrap() == payload);
    let carol = app.user("carol", Role::Member).await;
    let denied = http
        .get(format!("{}/@owner/dev.main/ports/{remote}/blob", app.url))
        .header(
            "cookie",
            format!("hangar_session={}", carol.token().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);

    // ping and speedtest go the whole way and back.
    let out = app.cli(&["ping", "dev", "-n", "3"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(
        text.matches("pong from owner/dev.main in").count(),
        3,
        "{text}"
    );
    assert!(text.contains("3 round trips: min"), "{text}");
    let out = app.cli(&["speedtest", "dev", "--mib", "4"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("4 MiB up and 4 MiB down"),
        "{}",
        stdout(&out)
    );

    // Through the API directly: a closed port says so; other users cannot open anything,
    // whatever their role, and are told the agent does not exist.
    let closed = app
        .client
        .dial_tcp(&agent.id, free_port())
        .await
        .unwrap_err();
    assert_eq!(closed.status(), Some(StatusCode::CONFLICT));
    assert!(
        closed
            .to_string()
            .contains("nothing accepts connections on port"),
        "{closed}"
    );
    let bob = app.user("bob", Role::Member).await;
    let tadmin = app.user("tadmin", Role::TemplateAdmin).await;
    for other in [&bob, &tadmin, &app.anon()] {
        let err = other.dial_tcp(&agent.id, remote).await.unwrap_err();
        assert!(
            matches!(
                err.status(),
                Some(StatusCode::NOT_FOUND | StatusCode::UNAUTHORIZED)
            ),
            "{err}"
        );
    }
    // The CLI run as bob cannot even find the workspace.
    let out = app
        .cli_as(
            bob.token(),
            &["port-forward", "owner/dev", "--tcp", "1234"],
            None,
        )
        .await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no workspace"), "{}", stderr(&out));

    // Every session is in the audit log, with its end.
    let audit = app.client.audit(100).await.unwrap();
    let starts = audit.iter().filter(|e| e.action == "session_start").count();
    let ends: Vec<_> = audit.iter().filter(|e| e.action == "session_end").collect();
    assert!(starts >= 13, "{audit:?}");
    assert!(
        ends.iter()
            .any(|e| e.target == "owner/dev.main"
                && e.detail.contains(&format!("tcp port {remote}"))),
        "{ends:?}"
    );

    // Stopped: no agent, no session, and the message says why.
    let b = app
        .client
        .build_workspace(
            "dev",
            &hangar::wire::workspaces::BuildRequest {
                transition: Some(hangar::model::Transition::Stop),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    app.client.follow_job(&b.job.id, |_| {}).await.unwrap();
    let stopped = app.client.dial_tcp(&agent.id, remote).await.unwrap_err();
    assert_eq!(stopped.status(), Some(StatusCode::CONFLICT), "{stopped}");
    let out = app
        .cli(&[
            "port-forward",
            "dev",
            "--tcp",
            "1234",
            "--disable-autostart",
        ])
        .await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("dev is stopped: sessions need it running (`hangar start dev`)"),
        "{}",
        stderr(&out)
    );
    // Without it, a session starts the workspace and waits for its agent, as `coder ssh`.
    let out = app.cli(&["ssh", "dev", "--", "echo up"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "up\n");
    assert!(
        stderr(&out).contains("dev is stopped: starting it"),
        "{}",
        stderr(&out)
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ssh_scp_sftp_and_forwards_through_openssh() {
    let app = spawn_app().await;
    let homes = tempfile::tempdir().unwrap();
    let ws = running_local(&app, homes.path()).await;
    let home = homes.path().join("owner/dev");
    let hangar = hangar_bin().display().to_string();

    // `hangar ssh dev CMD`: stdout, stderr and the exit status come back apart.
    let out = run_as_owner(
        &app,
        &hangar,
        &[
            "ssh",
            "dev",
            "--",
            "echo out-$HANGAR_WORKSPACE_NAME; pwd; echo err >&2; exit 7",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("out-dev\n{}\n", home.display()));
    assert_eq!(stderr(&out), "err\n");
    // The agent's token is not in a session's environment.
    let out = run_as_owner(&app, &hangar, &["ssh", "dev", "env"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stdout(&out)
            .lines()
            .any(|l| l.starts_with("HANGAR_AGENT_TOKEN=")),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("HANGAR_WORKSPACE_OWNER_NAME=owner"));

    // config-ssh writes a block plain OpenSSH uses; a second run changes nothing.
    let ssh_dir = tempfile::tempdir().unwrap();
    let config = ssh_dir.path().join("config");
    std::fs::write(&config, "Host elsewhere\n  User someone\n").unwrap();
    let cfg = config.display().to_string();
    let out = run_as_owner(
        &app,
        &hangar,
        &["config-ssh", "-y", "--ssh-config-file", &cfg],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(
        written.starts_with("Host elsewhere") && written.contains("Host hangar.*"),
        "{written}"
    );
    let out = run_as_owner(
        &app,
        &hangar,
        &["config-ssh", "-y", "--ssh-config-file", &cfg],
    )
    .await;
    assert!(stdout(&out).contains("up to date"), "{}", stdout(&out));

    // A terminal: `ssh -tt` gets a PTY of the size asked for.
    let out = run_as_owner(
        &app,
        "ssh",
        &["-F", &cfg, "-tt", "hangar.dev", "tty; stty size"],
    )
    .await;
    let text = stdout(&out);
    assert!(text.contains("/dev/pts/"), "{text} {}", stderr(&out));

    // scp both ways, 1 MiB of random bytes, identical; sftp lists it.
    let payload: Vec<u8> = (0..1024 * 1024).map(|_| rand::random::<u8>()).collect();
    let local = ssh_dir.path().join("blob");
    std::fs::write(&local, &payload).unwrap();
    let up = run_as_owner(
        &app,
        "scp",
        &[
            "-F",
            &cfg,
            &local.display().to_string(),
            "hangar.dev:blob-up",
        ],
    )
    .await;
    assert!(up.status.success(), "{}", stderr(&up));
    assert!(std::fs::read(home.join("blob-up")).unwrap() == payload);
    let back = ssh_dir.path().join("back");
    // 1 MiB down through a plain command's stdout, too.
    let cat = run_as_owner(&app, "ssh", &["-F", &cfg, "hangar.dev", "cat blob-up"]).await;
    assert!(cat.status.success(), "{}", stderr(&cat));
    assert!(cat.stdout == payload);
    let down = run_as_owner(
        &app,
        "scp",
        &[
            "-F",
            &cfg,
            "hangar.dev:blob-up",
            &back.display().to_string(),
        ],
    )
    .await;
    assert!(down.status.success(), "{}", stderr(&down));
    assert!(std::fs::read(&back).unwrap() == payload);
    let batch = ssh_dir.path().join("batch");
    std::fs::write(&batch, "ls -l blob-up\n").unwrap();
    let listing = run_as_owner(
        &app,
        "sftp",
        &["-F", &cfg, "-b", &batch.display().to_string(), "hangar.dev"],
    )
    .await;
    assert!(listing.status.success(), "{}", stderr(&listing));
    assert!(stdout(&listing).contains("1048576"), "{}", stdout(&listing));
    // rsync over plain ssh.
    let synced = run_as_owner(
        &app,
        "rsync",
        &[
            "-e",
            &format!("ssh -F {cfg}"),
            &local.display().to_string(),
            "hangar.dev:blob-rsync",
        ],
    )
    .await;
    assert!(synced.status.success(), "{}", stderr(&synced));
    assert!(std::fs::read(home.join("blob-rsync")).unwrap() == payload);

    // ssh -L: a server in the workspace reached through OpenSSH's own forward.
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("hello"), "from the workspace").unwrap();
    let remote = free_port();
    let _server = HttpServer::start(site.path(), remote).await;
    let local_port = free_port();
    let mut tunnel = tokio::process::Command::new("ssh")
        .args([
            "-F",
            &cfg,
            "-N",
            "-L",
            &format!("{local_port}:127.0.0.1:{remote}"),
            "hangar.dev",
        ])
        .env("HANGAR_URL", &app.url)
        .env("HANGAR_CONFIG_DIR", app.config_dir.path())
        .env("HANGAR_SESSION_TOKEN", app.client.token().unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let body = until("the ssh -L forward", async || {
        let r = reqwest::get(format!("http://127.0.0.1:{local_port}/hello"))
            .await
            .ok()?;
        r.text().await.ok()
    })
    .await;
    assert_eq!(body, "from the workspace");
    tunnel.kill().await.unwrap();

    // ssh -R: a port in the workspace reaches a server on this side.
    let here = tempfile::tempdir().unwrap();
    std::fs::write(here.path().join("hello"), "from the client's side").unwrap();
    let client_port = free_port();
    let _client_server = HttpServer::start(here.path(), client_port).await;
    let in_workspace = free_port();
    let out = run_as_owner(
        &app,
        "ssh",
        &[
            "-F",
            &cfg,
            "-o",
            "ExitOnForwardFailure=yes",
            "-R",
            &format!("{in_workspace}:127.0.0.1:{client_port}"),
            "hangar.dev",
            &format!("python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{in_workspace}/hello').read().decode())\""),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "from the client's side\n");

    // ssh -A: the workspace's ssh-add sees the key of this side's agent.
    let agent_dir = tempfile::tempdir().unwrap();
    let key = agent_dir.path().join("id");
    let sock = agent_dir.path().join("agent.sock");
    let keygen = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "forwarded-key", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(keygen.success());
    let mut ssh_agent = tokio::process::Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    until("the ssh-agent socket", async || sock.exists().then_some(())).await;
    let added = std::process::Command::new("ssh-add")
        .arg(&key)
        .env("SSH_AUTH_SOCK", &sock)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(added.success());
    let out = tokio::process::Command::new("ssh")
        .args(["-F", &cfg, "-A", "hangar.dev", "ssh-add -l"])
        .env("SSH_AUTH_SOCK", &sock)
        .env("HANGAR_URL", &app.url)
        .env("HANGAR_CONFIG_DIR", app.config_dir.path())
        .env("HANGAR_SESSION_TOKEN", app.client.token().unwrap())
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("forwarded-key"), "{}", stdout(&out));
    ssh_agent.kill().await.unwrap();

    // A login knows who it is, and nothing of the build leaks into it.
    let env = run_as_owner(&app, "ssh", &["-F", &cfg, "hangar.dev", "env"]).await;
    let env = stdout(&env);
    assert!(
        env.lines().any(|l| l.starts_with("USER=") && l.len() > 5),
        "{env}"
    );
    assert!(
        env.lines().any(|l| l.starts_with("SSH_CONNECTION=")),
        "{env}"
    );
    for leaked in [
        "TF_",
        "INIT_SCRIPT=",
        "HANGAR_PARAMETER_",
        "HANGAR_AGENT_SCRIPT_",
    ] {
        assert!(
            !env.lines().any(|l| l.starts_with(leaked)),
            "{leaked} in {env}"
        );
    }

    // Another user cannot get in, through any door.
    let bob = app.user("bob", Role::Member).await;
    let agent = ws.agents().next().unwrap().clone();
    let err = bob.dial_ssh(&agent.id).await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND), "{err}");
    let out = app
        .cli_as(bob.token(), &["ssh", "owner/dev", "true"], None)
        .await;
    assert!(!out.status.success());

    // The agent dies mid-session: the client ends non-zero and says what happened.
    let session = tokio::process::Command::new(&hangar)
        .args(["ssh", "dev", "--", "echo started; sleep 60"])
        .env("HANGAR_URL", &app.url)
        .env("HANGAR_CONFIG_DIR", app.config_dir.path())
        .env("HANGAR_SESSION_TOKEN", app.client.token().unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // While it is open, /metrics counts it and the agent it goes through.
    let (_, scraped) = scrape(&app, None).await;
    assert_eq!(sample(&scraped, "hangar_agents_connected"), Some(1.0));
    assert!(
        sample(&scraped, r#"hangar_sessions_open{kind="ssh"}"#) >= Some(1.0),
        "{scraped}"
    );
    let pid: i32 = std::fs::read_to_string(home.join(".hangar/agent.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: a plain signal to the agent process this test's workspace started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let out = tokio::time::timeout(Duration::from_secs(30), session.wait_with_output())
        .await
        .expect("the session ends when its agent dies")
        .unwrap();
    assert!(!out.status.success());
    assert!(stdout(&out).contains("started"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("closed (its agent disconnected"),
        "{}",
        stderr(&out)
    );
    app.stop().await;
}

/// The server restarts under a running workspace: its agent reconnects on its own and
/// `hangar ssh` works again, with nothing done on the workspace's side.
#[tokio::test(flavor = "multi_thread")]
async fn ssh_works_again_after_a_server_restart() {
    let data = tempfile::tempdir().unwrap();
    let homes = dir_for_terraform();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let db_url = fresh_db_url(data.path()).await;
    let start = || {
        let mut cmd = tokio::process::Command::new(hangar_bin());
        cmd.args([
            "server",
            "--address",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data.path())
        .args(["--provisioners", "1"])
        .env_remove("HANGAR_PG_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
        if std::env::var("HANGAR_TEST_DB").as_deref() == Ok("postgres") {
            cmd.env("HANGAR_PG_URL", &db_url);
        }
        cmd.spawn().unwrap()
    };
    let anon = hangar::client::Client::new(&url, None);
    let up = || async {
        until("the server", async || anon.first_user_exists().await.ok()).await;
    };
    let mut server = start();
    up().await;
    let (client, token) = create_owner(&url).await;
    let module = tempfile::tempdir().unwrap();
    hangar::cli::templates::write_builtin("local", module.path()).unwrap();
    let archive = hangar::model::archive::pack_dir(module.path()).unwrap();
    let v = client
        .push_template("local", archive, None, "", true)
        .await
        .unwrap();
    client.follow_job(&v.job.unwrap().id, |_| {}).await.unwrap();
    let ws = client
        .create_workspace(&CreateWorkspaceRequest {
            name: "dev".into(),
            template: "local".into(),
            parameters: [("home_base".to_string(), homes.path().display().to_string())].into(),
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .follow_job(&ws.latest_build.job.id, |_| {})
        .await
        .unwrap();
    let healthy = || async {
        until("a healthy workspace", async || {
            client.workspace("dev").await.ok()?.healthy.then_some(())
        })
        .await
    };
    healthy().await;
    let config = tempfile::tempdir().unwrap();
    let ssh = |word: &'static str| {
        tokio::process::Command::new(hangar_bin())
            .args(["ssh", "dev", "echo", word])
            .env("HANGAR_URL", &url)
            .env("HANGAR_SESSION_TOKEN", &token)
            .env("HANGAR_CONFIG_DIR", config.path())
            .stdin(Stdio::null())
            .output()
    };
    let out = ssh("before").await.unwrap();
    assert_eq!(stdout(&out), "before\n", "{}", stderr(&out));
    // The agent a template's local-exec started runs as whoever terraform ran as: a root
    // server's unprivileged user, so sessions do too; their home is the workspace's own.
    let run = |command: [&'static str; 2]| {
        tokio::process::Command::new(hangar_bin())
            .args(["ssh", "dev"])
            .args(command)
            .env("HANGAR_URL", &url)
            .env("HANGAR_SESSION_TOKEN", &token)
            .env("HANGAR_CONFIG_DIR", config.path())
            .stdin(Stdio::null())
            .output()
    };
    let out = run(["printenv", "HOME"]).await.unwrap();
    let home = homes.path().join("owner/dev");
    assert_eq!(
        stdout(&out).trim(),
        home.to_str().unwrap(),
        "{}",
        stderr(&out)
    );
    if let Some(user) = terraform_user() {
        let out = run(["id", "-un"]).await.unwrap();
        assert_eq!(stdout(&out).trim(), user.name, "{}", stderr(&out));
    }

    server.kill().await.unwrap();
    let _ = server.wait().await;
    let mut server = start();
    up().await;
    // The agent is back within its reconnect cap (5 s) plus a connect: ssh works again
    // well inside this bound, without anything done in the workspace.
    let restarted = std::time::Instant::now();
    let out = until("ssh after the restart", async || {
        let out = ssh("after").await.ok()?;
        out.status.success().then_some(out)
    })
    .await;
    assert_eq!(stdout(&out), "after\n");
    assert!(restarted.elapsed() < Duration::from_secs(20));

    // Leave no agent behind.
    let b = client
        .build_workspace(
            "dev",
            &hangar::wire::workspaces::BuildRequest {
                transition: Some(hangar::model::Transition::Delete),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    client.follow_job(&b.job.id, |_| {}).await.unwrap();
    server.kill().await.unwrap();
}
