//! A headless Chromium driven over the Chrome DevTools Protocol, for the web UI tests.
//! No skipping: a missing browser is a broken test machine, and it says so.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;
use tokio_tungstenite::tungstenite::Message;

pub const CHROMIUM: &str = "/usr/bin/chromium";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A headless Chromium with one page, driven over its DevTools WebSocket. Commands are
/// sent one at a time; events arriving in between are skipped (the test polls instead).
pub struct Browser {
    _child: tokio::process::Child,
    _profile: tempfile::TempDir,
    socket: Socket,
    session: String,
    next_id: u64,
    /// The `Page.javascriptDialogOpening` events seen so far (after `Page.enable`).
    dialogs: Vec<Value>,
}

impl Browser {
    pub async fn launch() -> Browser {
        // No skipping: a missing browser is a broken test machine, and it must say so.
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: install Debian's chromium (test.sh does it through scripts/prereqs.sh)"
        );
        let profile = tempfile::tempdir().unwrap();
        let mut child = tokio::process::Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1200,900",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("starting chromium");
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        let url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return url.trim().to_string();
                }
                seen.push(line);
            }
            panic!("chromium exited before listening:\n{}", seen.join("\n"));
        })
        .await
        .expect("chromium did not print its DevTools address within 30 s");
        // Keep draining stderr so chromium never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("connecting to chromium's DevTools");
        let mut browser = Browser {
            _child: child,
            _profile: profile,
            socket,
            session: String::new(),
            next_id: 0,
            dialogs: Vec::new(),
        };
        let target = browser
            .call("Target.createTarget", json!({ "url": "about:blank" }))
            .await
            .unwrap();
        let attached = browser
            .call(
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await
            .unwrap();
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        browser
    }

    /// One DevTools command (on the page's session once attached) and its result.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.socket
            .send(Message::Text(msg.to_string()))
            .await
            .map_err(|e| e.to_string())?;
        let wait = async {
            while let Some(frame) = self.socket.next().await {
                let Message::Text(text) = frame.map_err(|e| e.to_string())? else {
                    continue;
                };
                let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
                if v["method"] == "Page.javascriptDialogOpening" {
                    self.dialogs.push(v["params"].clone());
                }
                if v["id"] == json!(id) {
                    return match v.get("error") {
                        Some(e) => Err(format!("{method}: {e}")),
                        None => Ok(v["result"].clone()),
                    };
                }
            }
            Err("chromium closed the DevTools socket".to_string())
        };
        tokio::time::timeout(Duration::from_secs(15), wait)
            .await
            .map_err(|_| format!("{method}: no answer within 15 s"))?
    }

    /// Evaluates JavaScript in the page; errors (a page mid-navigation) come back as Err.
    pub async fn eval(&mut self, expression: &str) -> Result<Value, String> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await?;
        if let Some(e) = r.get("exceptionDetails") {
            return Err(format!("{expression}: {e}"));
        }
        Ok(r["result"]["value"].clone())
    }

    /// Evaluates an expression whose value is a promise, waiting for it to settle.
    pub async fn eval_async(&mut self, expression: &str) -> Result<Value, String> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await?;
        if let Some(e) = r.get("exceptionDetails") {
            return Err(format!("{expression}: {e}"));
        }
        Ok(r["result"]["value"].clone())
    }

    /// Makes the page `width` CSS pixels wide (a phone when `mobile`).
    pub async fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        )
        .await
        .unwrap();
    }

    /// A PNG of what the page shows now (the whole page, not only the viewport).
    pub async fn screenshot(&mut self) -> Vec<u8> {
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true }),
            )
            .await
            .unwrap();
        base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            shot["data"].as_str().unwrap(),
        )
        .unwrap()
    }

    /// Logs in through the form as `login`, landing on the workspace list.
    pub async fn log_in(&mut self, url: &str, login: &str, password: &str) {
        self.open(&format!("{url}/login")).await;
        self.wait_for(
            "!!document.querySelector('input[name=login]')",
            "the login form",
            Duration::from_secs(10),
        )
        .await;
        self.eval(&format!(
            "document.querySelector('input[name=login]').value = {login:?};
             document.querySelector('input[name=password]').value = {password:?};
             document.querySelector('form[action=\"/login\"]').submit();"
        ))
        .await
        .unwrap();
        self.wait_for(
            "location.pathname === '/'",
            "the workspace list after logging in",
            Duration::from_secs(10),
        )
        .await;
    }

    /// Polls until `condition` (JavaScript) is true in a fully loaded page.
    pub async fn wait_for(&mut self, condition: &str, what: &str, limit: Duration) {
        let expr = format!("document.readyState === 'complete' && ({condition})");
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.eval(&expr).await == Ok(json!(true)) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let page = self
                    .eval("location.href + '\\n' + document.body.innerText")
                    .await;
                panic!("waited {limit:?} for {what} ({condition}); the page is: {page:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }))
            .await
            .unwrap();
    }

    /// Accepts the dialog the page has open, waiting for it to open first.
    pub async fn accept_dialog(&mut self, limit: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let accepted = self
                .call("Page.handleJavaScriptDialog", json!({ "accept": true }))
                .await;
            match accepted {
                Ok(_) => break,
                Err(e) if tokio::time::Instant::now() > deadline => {
                    panic!("no dialog opened within {limit:?}: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        self.dialogs
            .pop()
            .expect("an accepted dialog announced itself")
    }

    pub async fn text(&mut self, selector: &str) -> String {
        let expr = format!("document.querySelector({selector:?}).innerText");
        match self.eval(&expr).await {
            Ok(Value::String(s)) => s,
            other => panic!("{selector}: {other:?}"),
        }
    }
}

impl Browser {
    /// Types text into the focused element, then Enter, as a keyboard would.
    pub async fn type_line(&mut self, text: &str) {
        self.call("Input.insertText", json!({ "text": text }))
            .await
            .unwrap();
        for kind in ["keyDown", "keyUp"] {
            self.call(
                "Input.dispatchKeyEvent",
                json!({ "type": kind, "key": "Enter", "code": "Enter",
                        "windowsVirtualKeyCode": 13, "text": "\r" }),
            )
            .await
            .unwrap();
        }
    }
}
