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
use hangar::wire::workspaces::CreateWorkspaceRequest;
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
    let ws = app
        .client
        .create_workspace(&CreateWorkspaceRequest {
            name: "dev".into(),
            template: "apps".into(),
            parameters: [("home_base".to_string(), homes.path().display().to_string())].into(),
            ..Default::default()
        })
        .await
        .unwrap();
    app.client
        .follow_job(&ws.latest_build.job.id, |_| {})
        .await
        .unwrap();
    for _ in 0..150 {
        if app.client.workspace("dev").await.unwrap().healthy {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
    assert_eq!(anon.headers()["location"], "/login");
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
    let mut req = ws_url.into_client_request().unwrap();
    req.headers_mut()
        .insert("cookie", owner_cookie.parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    for word in ["one", "two"] {
        socket
            .send(tokio_tungstenite::tungstenite::Message::Text(word.into()))
            .await
            .unwrap();
        let reply = socket.next().await.unwrap().unwrap();
        assert_eq!(reply.into_text().unwrap(), format!("echo {word}"));
    }
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
