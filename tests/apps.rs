//! Apps through the proxy, for real: a `local` workspace whose agent runs on this machine,
//! an HTTP + WebSocket app server listening on the workspace's loopback, and requests with
//! and without sessions through `/@owner/dev.main/apps/SLUG/`.

mod common;

use std::time::Duration;

use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::routing::{any, get, post};
use common::*;
use futures::{SinkExt, StreamExt};
use hangar::model::Role;
use reqwest::StatusCode;

/// The app in the workspace: echoes the cookies it got, redirects, echoes bodies and
/// WebSocket messages.
async fn start_app() -> u16 {
    let app = axum::Router::new()
        .route(
            "/",
            get(|headers: HeaderMap| async move {
                let cookies = headers
                    .get("cookie")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                format!("hello from the app; cookies: [{cookies}]")
            }),
        )
        .route(
            "/redirect",
            get(|| async { axum::response::Redirect::to("/target") }),
        )
        .route("/echo", post(|body: axum::body::Bytes| async move { body }))
        .route(
            "/ws",
            any(|ws: WebSocketUpgrade| async move {
                ws.on_upgrade(|mut socket| async move {
                    while let Some(Ok(Message::Text(t))) = socket.recv().await {
                        if socket
                            .send(Message::Text(format!("echo {t}")))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                })
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

fn template(port: u16) -> String {
    let local = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/templates/local/main.tf"
    ))
    .unwrap();
    let mut tf = local;
    for (slug, share) in [
        ("mine", "owner"),
        ("team", "authenticated"),
        ("world", "public"),
    ] {
        tf.push_str(&format!(
            "\nresource \"hangar_app\" \"{slug}\" {{\n  agent_id     = hangar_agent.main.id\n  slug         = \"{slug}\"\n  display_name = \"{slug}\"\n  url          = \"http://localhost:{port}/\"\n  share        = \"{share}\"\n}}\n"
        ));
    }
    tf
}

#[tokio::test(flavor = "multi_thread")]
async fn apps_are_proxied_by_share_with_bodies_redirects_and_websockets() {
    let app = spawn_app().await;
    let port = start_app().await;
    push_files(&app, "apps", &[("main.tf", &template(port))]).await;
    let homes = tempfile::tempdir().unwrap();
    create_dev(&app.client, "apps", homes.path()).await;
    let bob = app.user("bob", Role::Member).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let owner_cookie = format!("hangar_session={}; theme=dark", app.client.token().unwrap());
    let bob_cookie = format!("hangar_session={}", bob.token().unwrap());
    let get = |path: &str, cookie: Option<&str>| {
        let mut r = http.get(format!("{}{path}", app.url));
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        r.send()
    };

    // The owner gets the app; the app gets the owner's other cookies, never the session.
    let page = get("/@owner/dev.main/apps/mine/", Some(&owner_cookie))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page
        .headers()
        .get("content-security-policy")
        .is_none_or(|v| !v.to_str().unwrap().contains("sandbox")));
    let body = page.text().await.unwrap();
    assert_eq!(body, "hello from the app; cookies: [theme=dark]");
    // The agent's name may be left out when there is one.
    assert_eq!(
        get("/@owner/dev/apps/mine/", Some(&owner_cookie))
            .await
            .unwrap()
            .status(),
        200
    );
    let bare = get("/@owner/dev.main/apps/mine", Some(&owner_cookie))
        .await
        .unwrap();
    assert_eq!(bare.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(bare.headers()["location"], "/@owner/dev.main/apps/mine/");

    // share = owner: nobody else, whatever they are.
    let anon = get("/@owner/dev.main/apps/mine/", None).await.unwrap();
    assert!(anon.status().is_redirection());
    // To the login, which comes back here afterwards.
    assert_eq!(
        anon.headers()["location"],
        "/login?next=%2F%40owner%2Fdev.main%2Fapps%2Fmine%2F"
    );
    let foreign = get("/@owner/dev.main/apps/mine/", Some(&bob_cookie))
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    assert!(!foreign.text().await.unwrap().contains("hello from the app"));
    // share = authenticated: bob yes (sandboxed), nobody no; share = public: anyone.
    let team = get("/@owner/dev.main/apps/team/", Some(&bob_cookie))
        .await
        .unwrap();
    assert_eq!(team.status(), 200);
    let csp: Vec<String> = team
        .headers()
        .get_all("content-security-policy")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(csp.iter().any(|v| v.contains("sandbox")), "{csp:?}");
    assert!(get("/@owner/dev.main/apps/team/", None)
        .await
        .unwrap()
        .status()
        .is_redirection());
    let world = get("/@owner/dev.main/apps/world/", None).await.unwrap();
    assert_eq!(world.status(), 200);
    assert!(world
        .text()
        .await
        .unwrap()
        .starts_with("hello from the app"));
    assert_eq!(
        get("/@owner/dev.main/apps/nope/", Some(&owner_cookie))
            .await
            .unwrap()
            .status(),
        404
    );

    // Redirects stay under the proxy; bodies stream through unchanged.
    let redirect = get("/@owner/dev.main/apps/mine/redirect", Some(&owner_cookie))
        .await
        .unwrap();
    assert!(redirect.status().is_redirection());
    assert_eq!(
        redirect.headers()["location"],
        "/@owner/dev.main/apps/mine/target"
    );
    let payload: Vec<u8> = (0..1024 * 1024).map(|_| rand::random::<u8>()).collect();
    let echoed = http
        .post(format!("{}/@owner/dev.main/apps/mine/echo", app.url))
        .header("cookie", &owner_cookie)
        .header("origin", &app.url)
        .body(payload.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.status(), 200);
    assert!(echoed.bytes().await.unwrap() == payload);

    // A WebSocket through the proxy.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let ws_url = format!(
        "{}/@owner/dev.main/apps/mine/ws",
        app.url.replace("http://", "ws://")
    );
    // From another site's page, the owner's cookie opens nothing.
    let mut req = ws_url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("cookie", owner_cookie.parse().unwrap());
    req.headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
    let mut req = ws_url.into_client_request().unwrap();
    req.headers_mut()
        .insert("cookie", owner_cookie.parse().unwrap());
    req.headers_mut().insert("origin", app.url.parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    for word in ["one", "two"] {
        socket
            .send(tokio_tungstenite::tungstenite::Message::Text(word.into()))
            .await
            .unwrap();
        let reply = socket.next().await.unwrap().unwrap();
        assert_eq!(reply.into_text().unwrap(), format!("echo {word}"));
    }
    // An app's socket is a session: revoking its token cuts it, and it is audited.
    let short = app.client.create_token("app-ws", None).await.unwrap();
    let mut req = format!(
        "{}/@owner/dev.main/apps/mine/ws",
        app.url.replace("http://", "ws://")
    )
    .into_client_request()
    .unwrap();
    req.headers_mut().insert(
        "cookie",
        format!("hangar_session={}", short.key).parse().unwrap(),
    );
    req.headers_mut().insert("origin", app.url.parse().unwrap());
    let (mut held, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    app.client.remove_token("app-ws").await.unwrap();
    let cut = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(Ok(_)) = held.next().await {}
    })
    .await;
    assert!(cut.is_ok(), "the app's socket outlived its token");
    let audit = app.client.audit(100).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "session_end" && e.detail.contains("app mine websocket")),
        "{audit:?}"
    );

    // Bob cannot open the owner's app's WebSocket either.
    let mut req = format!(
        "{}/@owner/dev.main/apps/mine/ws",
        app.url.replace("http://", "ws://")
    )
    .into_client_request()
    .unwrap();
    req.headers_mut()
        .insert("cookie", bob_cookie.parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
    delete_workspace(&app.client, "dev").await;
    app.stop().await;
}

/// The app's server in the workspace: a `python3 -m http.server` on `port` (a process,
/// so killing it closes its connections as a real app's death does).
async fn serve_on(port: u16) -> tokio::process::Child {
    let child = tokio::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs the app's server");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the app's server never listened on {port}");
}

/// The health `show -o json` reports for the app `slug`.
async fn app_health(app: &TestApp, slug: &str) -> String {
    let ws = app.client.workspace("dev").await.unwrap();
    let agent = ws.agents().next().unwrap();
    let found = agent.apps.iter().find(|a| a.spec.slug == slug).unwrap();
    found.health.to_string()
}

async fn wait_for_health(app: &TestApp, slug: &str, want: &str) {
    for _ in 0..150 {
        if app_health(app, slug).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "{slug} never became {want}: {}",
        app_health(app, slug).await
    );
}

/// Reads a terminal's output until it contains `want`.
async fn read_until(socket: &mut hangar::client::SessionSocket, want: &str) -> String {
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(Ok(msg)) = socket.next().await {
            if let tokio_tungstenite::tungstenite::Message::Binary(b) = msg {
                seen.push_str(&String::from_utf8_lossy(&b));
                if seen.contains(want) {
                    return true;
                }
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "{want:?} never came; got {seen:?}");
    seen
}

fn input(text: &str) -> tokio_tungstenite::tungstenite::Message {
    tokio_tungstenite::tungstenite::Message::Text(serde_json::json!({ "data": text }).to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn health_command_apps_motd_and_last_use() {
    let app = spawn_app().await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut server = serve_on(port).await;
    let local = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/templates/local/main.tf"
    ))
    .unwrap();
    let agent_line = "  dir  = local.home\n";
    assert!(local.contains(agent_line), "the local template changed");
    let mut tf = local.replace(
        agent_line,
        "  dir  = local.home\n  motd_file = \"motd.txt\"\n  display_apps {\n    vscode = false\n  }\n",
    );
    tf.push_str(&format!(
        r#"
resource "hangar_app" "checked" {{
  agent_id = hangar_agent.main.id
  slug     = "checked"
  url      = "http://localhost:{port}/"
  healthcheck {{
    url       = "http://localhost:{port}/healthz"
    interval  = 1
    threshold = 2
  }}
}}

resource "hangar_app" "greet" {{
  agent_id     = hangar_agent.main.id
  slug         = "greet"
  display_name = "Greeter"
  command      = "echo hello-from-$((6*7)); sleep 60"
}}
"#
    ));
    push_files(&app, "apps", &[("main.tf", &tf)]).await;
    let homes = tempfile::tempdir().unwrap();
    create_dev(&app.client, "apps", homes.path()).await;
    let home = homes.path().join("owner/dev");
    std::fs::write(home.join("motd.txt"), "Welcome aboard\nline two\n").unwrap();
    assert!(app
        .client
        .workspace("dev")
        .await
        .unwrap()
        .last_used_at
        .is_none());

    // The healthcheck passes, then the app's server dies and the app turns unhealthy
    // (and the agent and workspace with it), then it comes back.
    wait_for_health(&app, "checked", "healthy").await;
    assert_eq!(app_health(&app, "greet").await, "disabled");
    server.kill().await.unwrap();
    wait_for_health(&app, "checked", "unhealthy").await;
    let ws = app.client.workspace("dev").await.unwrap();
    assert!(
        !ws.healthy,
        "an unhealthy app makes its workspace unhealthy"
    );
    let out = app.cli(&["show", "dev"]).await;
    assert!(
        stdout(&out).contains("app checked") && stdout(&out).contains("[unhealthy]"),
        "{}",
        stdout(&out)
    );
    let out = app.cli(&["list"]).await;
    let row: Vec<String> = stdout(&out)
        .lines()
        .find(|l| l.starts_with("owner/dev"))
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(row[2..4], ["running", "false"], "HEALTHY: {row:?}");
    let mut server = serve_on(port).await;
    wait_for_health(&app, "checked", "healthy").await;
    assert!(app.client.workspace("dev").await.unwrap().healthy);

    // The page shows the health beside the app, the command app opens the terminal,
    // and display_apps turned VS Code off.
    let owner_cookie = format!("hangar_session={}", app.client.token().unwrap());
    let page = reqwest::Client::new()
        .get(format!("{}/@owner/dev", app.url))
        .header("cookie", &owner_cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("id=\"health-main-checked\" title=\"healthy\">healthy"),
        "{page}"
    );
    assert!(page.contains("href=\"/@owner/dev.main/terminal?app=greet\""));
    assert!(!page.contains("vscode://"));
    assert!(page.contains("id=\"terminal-main\""));

    // A command app's terminal runs its command; an unknown app is refused.
    let agent = ws.agents().next().unwrap().id.clone();
    let mut term = app
        .client
        .dial_pty(&agent, "greeter-1", Some("greet"))
        .await
        .unwrap();
    read_until(&mut term, "hello-from-42").await;
    let err = app
        .client
        .dial_pty(&agent, "greeter-2", Some("rm-rf"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND), "{err}");

    // A plain terminal follows resizes.
    let mut term = app.client.dial_pty(&agent, "sized-1", None).await.unwrap();
    let resize = serde_json::json!({ "height": 33, "width": 101 }).to_string();
    term.send(tokio_tungstenite::tungstenite::Message::Text(resize))
        .await
        .unwrap();
    term.send(input("stty size\r")).await.unwrap();
    read_until(&mut term, "33 101").await;

    // An interactive SSH login shows the motd; a command does not.
    let ssh_dir = tempfile::tempdir().unwrap();
    let cfg = ssh_dir.path().join("config").display().to_string();
    let as_owner = |program: &str, args: &[&str]| {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env("HANGAR_URL", &app.url)
            .env("HANGAR_CONFIG_DIR", app.config_dir.path())
            .env("HANGAR_SESSION_TOKEN", app.client.token().unwrap())
            .stdin(std::process::Stdio::piped());
        cmd
    };
    let hangar = hangar_bin().display().to_string();
    let out = as_owner(&hangar, &["config-ssh", "-y", "--ssh-config-file", &cfg])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut login = as_owner("ssh", &["-F", &cfg, "-tt", "hangar.dev"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = login.stdin.take().unwrap();
        stdin.write_all(b"exit\n").await.unwrap();
    }
    let out = tokio::time::timeout(Duration::from_secs(30), login.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Welcome aboard\r\nline two"), "{text}");
    let out = as_owner("ssh", &["-F", &cfg, "hangar.dev", "true"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains("Welcome"), "{}", stdout(&out));

    // Sessions are use: the workspace says when it was last used.
    let used = app.client.workspace("dev").await.unwrap().last_used_at;
    assert!(used.is_some());
    assert!(stdout(&app.cli(&["show", "dev"]).await).contains("last used"));
    server.kill().await.unwrap();
    delete_workspace(&app.client, "dev").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn subdomain_apps_live_at_their_own_host_with_a_token_for_that_host_only() {
    let app = spawn_app_with(|c| {
        c.wildcard =
            Some(hangar::config::Wildcard::parse("*.apps.hangar.test", &c.access_url).unwrap())
    })
    .await;
    let port = start_app().await;
    let mut tf = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/templates/local/main.tf"
    ))
    .unwrap();
    for (slug, share, subdomain) in [
        ("ide", "owner", true),
        ("docs", "public", true),
        ("plain", "owner", false),
    ] {
        tf.push_str(&format!(
            "\nresource \"hangar_app\" \"{slug}\" {{\n  agent_id  = hangar_agent.main.id\n  slug      = \"{slug}\"\n  url       = \"http://localhost:{port}/\"\n  share     = \"{share}\"\n  subdomain = {subdomain}\n}}\n"
        ));
    }
    push_files(&app, "apps", &[("main.tf", &tf)]).await;
    let homes = tempfile::tempdir().unwrap();
    create_dev(&app.client, "apps", homes.path()).await;
    let server_port = app.url.rsplit(':').next().unwrap().to_string();
    let host = |slug: &str| format!("{slug}--main--dev--owner.apps.hangar.test:{server_port}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Requests go to the server's address with the app's Host, as DNS would send them.
    let at = |slug: &str, path: &str, cookie: Option<&str>| {
        let mut r = http
            .get(format!("{}{path}", app.url))
            .header("host", host(slug));
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        r.send()
    };
    let location = |r: &reqwest::Response| r.headers()["location"].to_str().unwrap().to_string();

    // The workspace page links the subdomain app to its host.
    let owner_cookie = format!("hangar_session={}", app.client.token().unwrap());
    let page = http
        .get(format!("{}/@owner/dev", app.url))
        .header("cookie", &owner_cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!("href=\"http://{}/\"", host("ide"))),
        "{page}"
    );

    // No login on this host yet: off to /app-auth on Hangar's origin, which (logged in)
    // sends the browser back with a token, which becomes this host's cookie.
    let first = at("ide", "/some/page?q=1", None).await.unwrap();
    assert!(first.status().is_redirection());
    let to_auth = location(&first);
    assert!(
        to_auth.starts_with(&format!("{}/app-auth?redirect=", app.url)),
        "{to_auth}"
    );
    let anon_auth = http.get(&to_auth).send().await.unwrap();
    assert!(
        location(&anon_auth).starts_with("/login?next=%2Fapp-auth%3Fredirect%3D"),
        "{}",
        location(&anon_auth)
    );
    let minted = http
        .get(&to_auth)
        .header("cookie", &owner_cookie)
        .send()
        .await
        .unwrap();
    assert!(minted.status().is_redirection());
    let back = location(&minted);
    assert!(
        back.starts_with(&format!(
            "http://{}/some/page?q=1&hangar_app_token=",
            host("ide")
        )),
        "{back}"
    );
    let param = |url: &str, name: &str| {
        reqwest::Url::parse(url)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    let token = param(&back, "hangar_app_token");
    let nonce = param(&to_auth, "state");
    assert_eq!(param(&back, "hangar_app_state"), nonce);
    let state_cookie = first.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        state_cookie.starts_with(&format!("hangar_app_state={nonce};")),
        "{state_cookie}"
    );
    let path_back = &back[back.find("/some").unwrap()..];
    // A token link this browser did not start is refused (no login fixation).
    let fixed = at("ide", path_back, None).await.unwrap();
    assert_eq!(fixed.status(), StatusCode::BAD_REQUEST);
    let landed = at("ide", path_back, Some(&format!("hangar_app_state={nonce}")))
        .await
        .unwrap();
    assert_eq!(
        location(&landed),
        format!("http://{}/some/page?q=1", host("ide"))
    );
    let set_cookie = landed.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set_cookie.starts_with(&format!("hangar_app_session={token};"))
            && set_cookie.contains("HttpOnly"),
        "{set_cookie}"
    );
    let app_cookie = format!("hangar_app_session={token}; theme=dark");
    let served = at("ide", "/", Some(&app_cookie)).await.unwrap();
    assert_eq!(served.status(), 200);
    // The app sees its own cookies, never the token.
    assert_eq!(
        served.text().await.unwrap(),
        "hello from the app; cookies: [theme=dark]"
    );

    // The token opens that host only: not the API, not another app's host.
    let api = http
        .get(format!("{}/api/v2/users/me", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    let swapped = http
        .get(format!("{}/api/v2/users/me", app.url))
        .header("cookie", format!("hangar_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(swapped.status(), StatusCode::UNAUTHORIZED);
    let forged = at(
        "docs",
        &format!("/?hangar_app_token={token}&hangar_app_state={nonce}"),
        Some(&format!("hangar_app_state={nonce}")),
    )
    .await
    .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);

    // Someone else gets a token for the host too, but the app is the owner's alone.
    let bob = app.user("bob", Role::Member).await;
    let bob_minted = http
        .get(&to_auth)
        .header("cookie", format!("hangar_session={}", bob.token().unwrap()))
        .send()
        .await
        .unwrap();
    let bob_back = location(&bob_minted);
    let bob_token = param(&bob_back, "hangar_app_token");
    let denied = at("ide", "/", Some(&format!("hangar_app_session={bob_token}")))
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);

    // A public subdomain app needs no login; a path app has no host; other hosts and
    // redirects elsewhere are refused.
    let public = at("docs", "/", None).await.unwrap();
    assert_eq!(public.status(), 200);
    assert_eq!(at("plain", "/", None).await.unwrap().status(), 404);
    let nowhere = http
        .get(format!("{}/", app.url))
        .header(
            "host",
            format!("nope--main--dev--owner.apps.hangar.test:{server_port}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(nowhere.status(), 404);
    let other_port = format!("http://{}/", host("ide").replace(&server_port, "1"));
    let made_up = format!("http://{}/", host("nope"));
    for (evil, status) in [
        ("https://evil.example/", StatusCode::BAD_REQUEST),
        (
            "http://ide--main--dev--owner.apps.hangar.test.evil.example/",
            StatusCode::BAD_REQUEST,
        ),
        ("javascript:alert(1)", StatusCode::BAD_REQUEST),
        // Another port of an app host is someone else's listener.
        (other_port.as_str(), StatusCode::BAD_REQUEST),
        // No token for hosts that are no app.
        (made_up.as_str(), StatusCode::NOT_FOUND),
    ] {
        let r = http
            .get(format!("{}/app-auth", app.url))
            .query(&[("redirect", evil), ("state", nonce.as_str())])
            .header("cookie", &owner_cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{evil}");
    }
    // The app host's sockets open only from its own pages.
    {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = format!("ws://127.0.0.1:{server_port}/ws")
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("host", host("docs").parse().unwrap());
        req.headers_mut()
            .insert("origin", format!("http://{}", host("ide")).parse().unwrap());
        assert!(tokio_tungstenite::connect_async(req).await.is_err());
    }
    // Hangar's own host is still Hangar.
    assert_eq!(
        http.get(format!("{}/api/v2/buildinfo", app.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    delete_workspace(&app.client, "dev").await;
    app.stop().await;
}
