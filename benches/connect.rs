//! Getting into a workspace, measured: `hangar ssh WS true` round trips, the time to the
//! first byte of an app through the proxy against asking the app directly, and the
//! throughput of `hangar port-forward` against a direct loopback TCP copy of the same
//! bytes, in the same run (a `local` workspace, its agent and the server on this machine).
//! Under `cargo test --all-targets` it runs a small smoke version.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A loopback server that reads everything it is sent, then answers with the count.
async fn sink() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 256 * 1024];
                let mut total: u64 = 0;
                loop {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => total += n as u64,
                    }
                }
                let _ = conn.write_all(&total.to_be_bytes()).await;
            });
        }
    });
    port
}

/// Sends `bytes` to `port` and waits for the count to come back: one copy, timed.
async fn copy_through(port: u16, bytes: usize) -> Duration {
    let chunk = vec![7u8; 256 * 1024];
    let start = Instant::now();
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        conn.write_all(&chunk[..n]).await.unwrap();
        left -= n;
    }
    conn.shutdown().await.unwrap();
    let mut ack = [0u8; 8];
    conn.read_exact(&mut ack).await.unwrap();
    assert_eq!(u64::from_be_bytes(ack), bytes as u64, "every byte arrived");
    start.elapsed()
}

/// The app in the workspace: a small HTTP server on loopback.
async fn app_server() -> u16 {
    let app = axum::Router::new().fallback(axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

/// The time until the response's head arrives, on a new connection each time.
async fn ttfb(http: &reqwest::Client, url: &str, cookie: Option<&str>) -> Duration {
    let mut req = http.get(url);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let t = Instant::now();
    let resp = req.send().await.unwrap();
    let took = t.elapsed();
    assert_eq!(resp.status(), 200, "{url}");
    took
}

#[tokio::main]
async fn main() {
    let (runs, mib) = if full() { (7, 256) } else { (2, 4) };
    let homes = tempfile::tempdir().unwrap();
    let s = server("127.0.0.1:0").await;
    let (url, token, client) = (s.url.clone(), s.token.clone(), &s.client);
    let module = tempfile::tempdir().unwrap();
    hangar::cli::templates::write_builtin("local", module.path()).unwrap();
    let app_port = app_server().await;
    let mut tf = std::fs::read_to_string(module.path().join("main.tf")).unwrap();
    tf.push_str(&format!(
        "\nresource \"hangar_app\" \"ttfb\" {{\n  agent_id = hangar_agent.main.id\n  slug     = \"ttfb\"\n  url      = \"http://localhost:{app_port}/\"\n}}\n"
    ));
    std::fs::write(module.path().join("main.tf"), tf).unwrap();
    push(client, "local", module.path()).await;
    let home_base = homes.path().display().to_string();
    create_until_healthy(client, "dev", "local", &[("home_base", home_base.as_str())]).await;
    let hangar = env!("CARGO_BIN_EXE_hangar");
    let config_dir = tempfile::tempdir().unwrap();
    let command = |args: &[&str]| {
        let mut c = tokio::process::Command::new(hangar);
        c.args(args)
            .env("HANGAR_URL", &url)
            .env("HANGAR_SESSION_TOKEN", &token)
            .env("HANGAR_CONFIG_DIR", config_dir.path())
            .stdin(Stdio::null());
        c
    };

    // `hangar ssh dev true`: CLI start, OpenSSH, handshake, a command, its exit status.
    let mut ssh_times = Vec::new();
    let mut local_times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let out = command(&["ssh", "dev", "true"]).output().await.unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        ssh_times.push(t.elapsed());
        let t = Instant::now();
        let out = command(&["version"]).output().await.unwrap();
        assert!(out.status.success());
        local_times.push(t.elapsed());
    }
    println!("hangar ssh dev true, median of {runs}:");
    println!(
        "  hangar ssh dev true           {:8.1} ms",
        ms(median(ssh_times))
    );
    println!(
        "  hangar version (process only) {:8.1} ms",
        ms(median(local_times))
    );

    // An app's first byte: through the proxy (a new tunnel stream per request) against a
    // new connection straight to the app.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let cookie = format!("hangar_session={token}");
    let proxied_url = format!("{url}/@bench/dev.main/apps/ttfb/");
    let direct_url = format!("http://127.0.0.1:{app_port}/");
    let (mut proxied, mut direct) = (Vec::new(), Vec::new());
    for _ in 0..runs * 5 {
        direct.push(ttfb(&http, &direct_url, None).await);
        proxied.push(ttfb(&http, &proxied_url, Some(&cookie)).await);
    }
    let (d, p) = (median(direct), median(proxied));
    println!("app time to first byte, median of {}:", runs * 5);
    println!("  straight to the app           {:8.2} ms", ms(d));
    println!("  through the app proxy         {:8.2} ms", ms(p));

    // port-forward against a direct copy of the same bytes to the same server.
    let target = sink().await;
    let local = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut forward = command(&["port-forward", "dev", "--tcp", &format!("{local}:{target}")])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut first = [0u8; 10];
    forward
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .await
        .unwrap();
    let bytes = mib * 1024 * 1024;
    let (mut direct, mut forwarded) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        direct.push(copy_through(target, bytes).await);
        forwarded.push(copy_through(local, bytes).await);
    }
    let (d, f) = (median(direct), median(forwarded));
    let rate = |t: Duration| mib as f64 / t.as_secs_f64();
    println!("port-forward throughput, {mib} MiB up, median of {runs}:");
    println!("  direct loopback TCP copy      {:8.1} MiB/s", rate(d));
    println!("  through hangar port-forward   {:8.1} MiB/s", rate(f));
    println!("  ratio forwarded / direct      {:8.3}", rate(f) / rate(d));
    forward.kill().await.unwrap();
    delete(client, "dev").await;
}
