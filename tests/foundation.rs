//! Users, sessions, tokens and templates through the real API and the built binary.

mod common;

use common::*;
use hangar::model::Role;
use reqwest::StatusCode;

const PARAM_TF: &str = r#"
data "hangar_parameter" "region" {
  name        = "region"
  description = "Where to run"
  default     = "eu"
  option {
    name  = "Europe"
    value = "eu"
  }
  option {
    name  = "US"
    value = "us"
  }
}
data "hangar_parameter" "cpu" {
  name    = "cpu"
  type    = "number"
  mutable = true
  validation {
    min = 1
    max = 8
  }
}
resource "terraform_data" "home" {}
"#;

fn tar_with(entries: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    entries(&mut b);
    b.into_inner().unwrap()
}

fn raw_entry(
    b: &mut tar::Builder<Vec<u8>>,
    path: &str,
    kind: tar::EntryType,
    link: Option<&str>,
    body: &[u8],
) {
    let mut h = tar::Header::new_gnu();
    // Write the name bytes directly: the tar crate refuses `..` and absolute paths itself.
    let name = &mut h.as_gnu_mut().unwrap().name;
    name[..path.len()].copy_from_slice(path.as_bytes());
    h.set_entry_type(kind);
    h.set_size(body.len() as u64);
    h.set_mode(0o644);
    if let Some(l) = link {
        h.set_link_name(l).unwrap();
    }
    h.set_cksum();
    b.append(&h, body).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn first_user_login_and_roles() {
    let app = spawn_app().await;
    // The first user exists: a second first-user is refused.
    let again = app
        .anon()
        .create_first_user(&hangar::wire::users::CreateUserRequest {
            username: "mallory".into(),
            email: "m@example.com".into(),
            password: PASSWORD.into(),
            full_name: String::new(),
            role: None,
        })
        .await
        .unwrap_err();
    assert_eq!(again.status(), Some(StatusCode::CONFLICT));
    assert!(again.to_string().contains("already exists"), "{again}");

    let me = app.client.me().await.unwrap();
    assert_eq!((me.username.as_str(), me.role), ("owner", Role::Owner));

    let wrong = app
        .anon()
        .login("owner", "nope-nope-nope")
        .await
        .unwrap_err();
    assert_eq!(wrong.status(), Some(StatusCode::UNAUTHORIZED));
    assert_eq!(wrong.to_string(), "incorrect login or password");
    // Login by email works too.
    app.anon()
        .login("owner@example.com", PASSWORD)
        .await
        .unwrap();

    let member = app.user("mia", Role::Member).await;
    let denied = member.users().await.unwrap_err();
    assert_eq!(denied.status(), Some(StatusCode::FORBIDDEN));
    let push = member
        .push_template("t", vec![], None, "", true)
        .await
        .unwrap_err();
    assert_eq!(push.status(), Some(StatusCode::FORBIDDEN));

    // Suspension locks the user out at once.
    app.client.set_user_suspended("mia", true).await.unwrap();
    let locked = member.me().await.unwrap_err();
    assert_eq!(locked.status(), Some(StatusCode::UNAUTHORIZED));
    assert!(locked.to_string().contains("suspended"), "{locked}");
    app.client.set_user_suspended("mia", false).await.unwrap();
    member.me().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_user_input_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let make =
        |username: &str, email: &str, password: &str| hangar::wire::users::CreateUserRequest {
            username: username.into(),
            email: email.into(),
            password: password.into(),
            full_name: String::new(),
            role: None,
        };
    for (req, field) in [
        (make("Bad_Name", "x@example.com", PASSWORD), "username"),
        (make(&"a".repeat(33), "x@example.com", PASSWORD), "username"),
        (make("ok", "not-an-email", PASSWORD), "email"),
        (make("ok", "x@example.com", "short"), "password"),
    ] {
        let err = app.client.create_user(&req).await.unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::BAD_REQUEST), "{err}");
        let hangar::client::ClientError::Api { body, .. } = err else {
            panic!()
        };
        assert_eq!(body.validations[0].field, field);
    }
    app.client
        .create_user(&make("dup", "dup@example.com", PASSWORD))
        .await
        .unwrap();
    let dup = app
        .client
        .create_user(&make("dup", "other@example.com", PASSWORD))
        .await
        .unwrap_err();
    assert_eq!(dup.status(), Some(StatusCode::CONFLICT));
    let names: Vec<String> = app
        .client
        .users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["dup", "owner"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn api_tokens_are_shown_once_hashed_and_revocable() {
    let app = spawn_app().await;
    let created = app.client.create_token("ci", None).await.unwrap();
    let ci = app.anon().with_token(&created.key);
    assert_eq!(ci.me().await.unwrap().username, "owner");
    let listed = app.client.tokens().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        !serde_json::to_string(&listed)
            .unwrap()
            .contains(&created.key),
        "a listing never shows the secret"
    );

    let dup = app.client.create_token("ci", None).await.unwrap_err();
    assert_eq!(dup.status(), Some(StatusCode::CONFLICT));

    // Only the hash is stored.
    let db = std::fs::read(app.data_dir.path().join("hangar.db")).unwrap_or_default();
    if !db.is_empty() {
        assert!(!String::from_utf8_lossy(&db).contains(&created.key));
    }

    app.client.remove_token("ci").await.unwrap();
    let revoked = ci.me().await.unwrap_err();
    assert_eq!(revoked.status(), Some(StatusCode::UNAUTHORIZED));

    let short = app.client.create_token("short", Some(1)).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let expired = app.anon().with_token(&short.key).me().await.unwrap_err();
    assert_eq!(expired.status(), Some(StatusCode::UNAUTHORIZED));
    assert!(expired.to_string().contains("expired"), "{expired}");

    let garbage = app.anon().with_token("not-a-token").me().await.unwrap_err();
    assert_eq!(garbage.status(), Some(StatusCode::UNAUTHORIZED));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn push_records_static_parameters_and_pull_round_trips() {
    let app = spawn_app().await;
    let dir = template_dir(&[("main.tf", PARAM_TF), ("scripts/hello.sh", "echo hi\n")]);
    let archive = hangar::model::archive::pack_dir(dir.path()).unwrap();
    let v1 = app
        .client
        .push_template("demo", archive.clone(), None, "first", false)
        .await
        .unwrap();
    assert_eq!(v1.name, "v1");
    let names: Vec<&str> = v1.parameters.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["cpu", "region"]);
    assert!(v1.parameters[0].required());
    assert_eq!(v1.parameters[1].options.len(), 2);
    let v2 = app
        .client
        .push_template("demo", archive, Some("release-2"), "named", false)
        .await
        .unwrap();
    assert_eq!(v2.name, "release-2");
    let versions = app.client.template_versions("demo").await.unwrap();
    assert_eq!(versions.len(), 2);

    let pulled = tempfile::tempdir().unwrap();
    let out = app
        .cli(&[
            "templates",
            "pull",
            "demo",
            "--version",
            "v1",
            pulled.path().to_str().unwrap(),
        ])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(pulled.path().join("main.tf")).unwrap(),
        PARAM_TF
    );
    assert_eq!(
        std::fs::read_to_string(pulled.path().join("scripts/hello.sh")).unwrap(),
        "echo hi\n"
    );

    let out = app.cli(&["templates", "versions", "list", "demo"]).await;
    let text = stdout(&out);
    assert!(
        text.contains("cpu (required)") && text.contains("region=eu"),
        "{text}"
    );
    let out = app.cli(&["templates", "list", "-o", "json"]).await;
    let list: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(list[0]["name"], "demo");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_archives_and_hcl_get_clear_errors_and_store_nothing() {
    let app = spawn_app().await;
    let tf = b"resource \"terraform_data\" \"x\" {}\n";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "not a tar",
            b"hello, I am not an archive".to_vec(),
            "not a tar",
        ),
        (
            "absolute",
            tar_with(|b| raw_entry(b, "/etc/main.tf", tar::EntryType::Regular, None, tf)),
            "absolute",
        ),
        (
            "dotdot",
            tar_with(|b| raw_entry(b, "../main.tf", tar::EntryType::Regular, None, tf)),
            "..",
        ),
        (
            "link out",
            tar_with(|b| {
                raw_entry(b, "main.tf", tar::EntryType::Regular, None, tf);
                raw_entry(
                    b,
                    "evil",
                    tar::EntryType::Symlink,
                    Some("../../etc/passwd"),
                    b"",
                );
            }),
            "outside",
        ),
        (
            "broken hcl",
            tar_with(|b| {
                raw_entry(
                    b,
                    "main.tf",
                    tar::EntryType::Regular,
                    None,
                    b"resource \"a\" {\n",
                )
            }),
            "main.tf",
        ),
    ];
    for (what, bytes, needle) in cases {
        let err = app
            .client
            .push_template("t", bytes, None, "", true)
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::BAD_REQUEST), "{what}: {err}");
        assert!(err.to_string().contains(needle), "{what}: {err}");
    }
    let big = vec![b'x'; 51 * 1024 * 1024];
    let err = app
        .client
        .push_template(
            "t",
            tar_with(|b| {
                raw_entry(b, "main.tf", tar::EntryType::Regular, None, tf);
                raw_entry(b, "big.bin", tar::EntryType::Regular, None, &big);
            }),
            None,
            "",
            true,
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::PAYLOAD_TOO_LARGE), "{err}");
    let bad_name = app
        .client
        .push_template("Not_OK", vec![], None, "", true)
        .await
        .unwrap_err();
    assert_eq!(bad_name.status(), Some(StatusCode::BAD_REQUEST));
    assert!(
        app.client.templates().await.unwrap().is_empty(),
        "a refused push leaves nothing behind"
    );

    // Broken HCL through the CLI names the file and line.
    let dir = template_dir(&[("main.tf", "resource \"a\" \"b\" {\n  x = \n")]);
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
    let err = stderr(&out);
    assert!(err.contains("main.tf") && err.contains("line"), "{err}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_login_tokens_users_and_errors() {
    let app = spawn_app().await;
    // Non-interactive login stores the session with mode 0600.
    let out = app
        .cli_as(
            None,
            &[
                "login",
                &app.url,
                "--username",
                "owner",
                "--password",
                PASSWORD,
            ],
            None,
        )
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let session = app.config_dir.path().join("session");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&session).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let out = app
        .cli_as(None, &["users", "list", "-o", "json"], None)
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("owner@example.com"));

    let out = app
        .cli(&[
            "users",
            "create",
            "--username",
            "dev",
            "--email",
            "dev@example.com",
            "--password",
            PASSWORD,
        ])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = app
        .cli(&["tokens", "create", "--name", "pipeline", "--lifetime", "1h"])
        .await;
    let key = stdout(&out).trim().to_string();
    assert_eq!(key.len(), 64, "{key}");
    let out = app.cli_as(Some(&key), &["tokens", "list"], None).await;
    assert!(stdout(&out).contains("pipeline"), "{}", stdout(&out));

    let out = app
        .cli_as(Some("bogus"), &["templates", "list"], None)
        .await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not valid"), "{}", stderr(&out));

    // Without a terminal a missing password is an error naming the flag.
    let out = app
        .cli_as(None, &["login", &app.url, "--username", "owner"], None)
        .await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--password"), "{}", stderr(&out));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn templates_init_writes_the_builtins() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("mine");
    let out = std::process::Command::new(hangar_bin())
        .args([
            "templates",
            "init",
            "--id",
            "local",
            target.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(target.join("main.tf").exists());
    let out = std::process::Command::new(hangar_bin())
        .args([
            "templates",
            "init",
            "--id",
            "nope",
            dir.path().join("x").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("local"),
        "lists the choices"
    );
}

/// `hangar login URL` on a new server asks for the first user on the terminal, with the
/// password not echoed; `script` (util-linux) gives it a real pseudo-terminal.
#[tokio::test(flavor = "multi_thread")]
async fn interactive_login_creates_the_first_user_without_echoing_the_password() {
    use tokio::io::AsyncWriteExt;
    let data = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();
    let db = test_database(data.path()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut server_config = hangar::config::Config::new(data.path().to_path_buf(), url.clone());
    server_config.hangar_binary = hangar_bin();
    let server = tokio::spawn(hangar::server::serve(
        listener,
        server_config,
        db,
        std::future::pending(),
    ));

    let mut child = tokio::process::Command::new("script")
        .args([
            "-qec",
            &format!("{} login {url}", hangar_bin().display()),
            "/dev/null",
        ])
        .env("HANGAR_CONFIG_DIR", config.path())
        .env_remove("HANGAR_URL")
        .env_remove("HANGAR_SESSION_TOKEN")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs the CLI on a pseudo-terminal");
    let mut input = child.stdin.take().unwrap();
    for answer in ["alice\n", "alice@example.com\n", "s3cret-passw0rd\n"] {
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        input.write_all(answer.as_bytes()).await.unwrap();
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(
        screen.contains("Username:") && screen.contains("Password:"),
        "{screen}"
    );
    assert!(screen.contains("as alice (owner)"), "{screen}");
    // The terminal echoes what is typed (the email shows), except the password.
    assert!(screen.contains("alice@example.com"), "{screen}");
    assert!(
        !screen.contains("s3cret-passw0rd"),
        "the password is not echoed: {screen}"
    );
    let token = std::fs::read_to_string(config.path().join("session")).unwrap();
    let me = hangar::client::Client::new(&url, Some(token))
        .me()
        .await
        .unwrap();
    assert_eq!(me.username, "alice");
    server.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_log_records_changes_for_owners_only() {
    let app = spawn_app().await;
    let mia = app.user("mia", Role::Member).await;
    mia.create_token("laptop", None).await.unwrap();
    app.client.set_user_suspended("mia", true).await.unwrap();
    let out = app.cli(&["audit", "-o", "json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let entries: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "suspend_user",
            "create_token",
            "create_user",
            "create_first_user"
        ],
        "newest first"
    );
    let text = stdout(&app.cli(&["audit"]).await);
    assert!(
        text.contains("suspend_user") && text.contains("owner"),
        "{text}"
    );
    app.client.set_user_suspended("mia", false).await.unwrap();
    assert_eq!(
        mia.audit(10).await.unwrap_err().status(),
        Some(StatusCode::FORBIDDEN)
    );
    app.stop().await;
}

/// The data dir holds terraform state (with agent tokens) and work dirs: the server makes
/// it private to its user even when it was created open.
#[tokio::test(flavor = "multi_thread")]
async fn the_data_dir_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let mut data = std::path::PathBuf::new();
    let app = spawn_app_with(|c| {
        data = c.data_dir.join("open");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        c.data_dir = data.clone();
    })
    .await;
    let mode = std::fs::metadata(&data).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    app.stop().await;
}
