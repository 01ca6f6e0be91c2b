//! The CLI as a new user meets it: the built binary against a real server, real terraform.

mod common;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use hangar::model::WorkspaceStatus;
use hangar::wire::workspaces::CreateWorkspaceRequest;

/// Runs the built `hangar` as the owner in `cwd`, with `stdin` (not a terminal).
async fn hangar_in(app: &TestApp, cwd: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(hangar_bin())
        .args(args)
        .current_dir(cwd)
        .env("HANGAR_URL", &app.url)
        .env("HANGAR_SESSION_TOKEN", app.client.token().unwrap())
        .env("HANGAR_CONFIG_DIR", app.config_dir.path())
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap()
}

/// Runs the built `hangar` as the owner on a pseudo-terminal (util-linux `script`), typing
/// `answer` once it has had time to ask. Returns what the terminal showed.
async fn hangar_on_terminal(app: &TestApp, args: &str, answer: &str) -> (bool, String) {
    use tokio::io::AsyncWriteExt;
    let command = format!("{} {args}", hangar_bin().display());
    let mut child = tokio::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("HANGAR_URL", &app.url)
        .env("HANGAR_SESSION_TOKEN", app.client.token().unwrap())
        .env("HANGAR_CONFIG_DIR", app.config_dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs the CLI on a pseudo-terminal");
    let mut input = child.stdin.take().unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    input.write_all(answer.as_bytes()).await.unwrap();
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the CLI finished")
        .unwrap();
    drop(input);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

/// A template with no resources: its builds are quick.
async fn empty_template(app: &TestApp, name: &str) {
    push_files(app, name, &[("main.tf", PROVIDER)]).await;
}

async fn workspace(app: &TestApp, name: &str, template: &str) {
    let out = app
        .cli(&["create", name, "--template", template, "-y"])
        .await;
    ok(&out);
}

#[tokio::test(flavor = "multi_thread")]
async fn templates_push_accepts_coders_yes_flag() {
    let app = spawn_app().await;
    let dir = template_dir(&[("main.tf", PROVIDER)]);
    let d = dir.path().to_str().unwrap();
    for (flag, name) in [("-y", "short"), ("--yes", "long")] {
        let out = app.cli(&["templates", "push", name, "-d", d, flag]).await;
        let text = ok(&out);
        assert!(text.contains(&format!("Imported {name}@")), "{text}");
        let t = app.client.template(name).await.unwrap();
        assert!(t.active_version.is_some(), "{flag}: pushed and activated");
    }
    app.stop().await;
}

/// `hangar … | head -c1`: a reader that went away ends the CLI quietly (SIGPIPE, or
/// success), never with a panic. The pipe's read end is closed before the CLI starts, so
/// every write fails, whatever the timing.
#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stdout_ends_the_cli_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let app = spawn_app().await;
    empty_template(&app, "t").await;
    let commands: &[&[&str]] = &[
        &["list", "-o", "json"],
        &["templates", "list"],
        &["templates", "versions", "list", "t"],
        &["version"],
        &["completion", "bash"],
        &["--help"],
    ];
    for args in commands {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = tokio::process::Command::new(hangar_bin())
            .args(*args)
            .env("HANGAR_URL", &app.url)
            .env("HANGAR_SESSION_TOKEN", app.client.token().unwrap())
            .env("HANGAR_CONFIG_DIR", app.config_dir.path())
            .stdout(writer)
            .stderr(Stdio::piped())
            // Not `output()`: tokio's would replace stdout with a pipe of its own.
            .spawn()
            .unwrap()
            .wait_with_output()
            .await
            .unwrap();
        let err = stderr(&out);
        assert!(
            out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
            "{args:?}: {:?}\n{err}",
            out.status
        );
        assert!(err.is_empty(), "{args:?} wrote to stderr: {err}");
    }
    // A real pipeline, as the user typed it: the first byte arrives, nothing else is said.
    let out = tokio::process::Command::new("bash")
        .args([
            "-c",
            r#"set -o pipefail; "$0" completion bash | head -c1; echo " status=$?""#,
            hangar_bin().to_str().unwrap(),
        ])
        .output()
        .await
        .unwrap();
    let text = stdout(&out);
    assert!(
        text == "_ status=0\n" || text == "_ status=141\n",
        "{text}\n{}",
        stderr(&out)
    );
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    app.stop().await;
}

/// Messages name things plainly: no `"quoted"` debug strings, no `Name("…")`.
#[tokio::test(flavor = "multi_thread")]
async fn cli_messages_show_plain_names() {
    let app = spawn_app().await;
    push_files(
        &app,
        "p",
        &[(
            "main.tf",
            &format!("{PROVIDER}data \"hangar_parameter\" \"size\" {{\n  name = \"size\"\n  type = \"number\"\n}}\n"),
        )],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["create", "w", "--template", "p", "--parameter", "size"],
            "--parameter size must look like name=value",
        ),
        (
            &["create", "w", "--template", "p"],
            "parameter size is required and there is no terminal",
        ),
        (
            &["templates", "init", "--id", "nope", "x"],
            "no built-in template nope; choose one of:",
        ),
        (
            &["tokens", "create", "--name", "t", "--lifetime", "3w"],
            "duration 3w: unknown unit \"w\"",
        ),
    ];
    for (args, expected) in cases {
        let out = hangar_in(&app, dir.path(), args).await;
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = stderr(&out);
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!err.contains("Name("), "{args:?}: {err}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn templates_versions_promote_makes_a_version_active() {
    let app = spawn_app().await;
    let dir = template_dir(&[("main.tf", PROVIDER)]);
    let d = dir.path().to_str().unwrap();
    ok(&app
        .cli(&["templates", "push", "t", "-d", d, "--version", "one"])
        .await);
    ok(&app
        .cli(&[
            "templates",
            "push",
            "t",
            "-d",
            d,
            "--version",
            "two",
            "--activate=false",
        ])
        .await);
    let active = || async { app.client.template("t").await.unwrap().active_version };
    assert_eq!(active().await.as_deref(), Some("one"));

    let text = ok(&app
        .cli(&["templates", "versions", "promote", "t", "two"])
        .await);
    assert!(
        text.contains("t@two is now the active version of t"),
        "{text}"
    );
    assert_eq!(active().await.as_deref(), Some("two"));
    let listed = ok(&app.cli(&["templates", "versions", "list", "t"]).await);
    let two = listed.lines().find(|l| l.starts_with("two ")).unwrap();
    assert!(two.contains("active"), "{listed}");

    // Coder's flags work too.
    ok(&app
        .cli(&[
            "templates",
            "versions",
            "promote",
            "--template",
            "t",
            "--template-version",
            "one",
        ])
        .await);
    assert_eq!(active().await.as_deref(), Some("one"));

    let out = app
        .cli(&["templates", "versions", "promote", "t", "nine"])
        .await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("nine"), "{}", stderr(&out));
    assert_eq!(active().await.as_deref(), Some("one"));
    let out = app.cli(&["templates", "versions", "promote", "t"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("promote TEMPLATE VERSION"),
        "{}",
        stderr(&out)
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_stops_a_running_build_and_says_when_nothing_runs() {
    let app = spawn_app().await;
    let tf = format!("{PROVIDER}resource \"terraform_data\" \"slow\" {{\n  count = data.hangar_workspace.me.start_count\n  provisioner \"local-exec\" {{\n    command = \"sleep 60\"\n  }}\n}}\n");
    push_files(&app, "slow", &[("main.tf", &tf)]).await;
    let ws = app
        .client
        .create_workspace(&CreateWorkspaceRequest {
            name: "ws".into(),
            template: "slow".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // Wait until terraform runs the provisioner.
    let start = Instant::now();
    loop {
        let logs = app
            .client
            .job_logs(&ws.latest_build.job.id, 0, false)
            .await
            .unwrap()
            .logs;
        if logs.iter().any(|l| l.text.contains("local-exec")) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{logs:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    let text = ok(&app.cli(&["cancel", "ws"]).await);
    assert!(text.contains("Canceling build #1 (start) of ws"), "{text}");
    assert!(text.contains("Build #1 canceled"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(45), "{text}");
    let w = app.client.workspace("ws").await.unwrap();
    assert_eq!(w.status, WorkspaceStatus::Canceled);

    let text = ok(&app.cli(&["cancel", "ws"]).await);
    assert!(
        text.contains("Nothing to cancel: workspace ws has no build pending or running"),
        "{text}"
    );
    let out = app.cli(&["cancel", "nope"]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("nope"), "{}", stderr(&out));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn version_whoami_and_completion() {
    let app = spawn_app().await;
    let out = app.cli(&["version"]).await;
    assert_eq!(ok(&out), format!("hangar {}\n", env!("CARGO_PKG_VERSION")));

    let text = ok(&app.cli(&["whoami"]).await);
    assert_eq!(
        text,
        format!(
            "Logged in to {} as owner (owner@example.com), role owner.\n",
            app.url
        )
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&app.cli(&["whoami", "-o", "json"]).await)).unwrap();
    assert_eq!(json["username"], "owner");
    assert_eq!(json["role"], "owner");
    assert_eq!(json["url"], app.url.as_str());
    let mia = app.user("mia", hangar::model::Role::Member).await;
    let text = ok(&app.cli_as(mia.token(), &["whoami"], None).await);
    assert!(
        text.contains("as mia (mia@example.com), role member"),
        "{text}"
    );
    let out = app.cli_as(None, &["whoami"], None).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not logged in"), "{}", stderr(&out));

    // Completion scripts name the commands; bash's parses.
    let bash = ok(&app.cli(&["completion", "bash"]).await);
    assert!(bash.contains("complete -F _hangar"), "{bash}");
    for command in ["whoami", "completion", "templates", "versions"] {
        assert!(bash.contains(command), "bash completion lacks {command}");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hangar.bash");
    std::fs::write(&file, &bash).unwrap();
    let out = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p hangar", file.display()))
        .output()
        .await
        .unwrap();
    assert!(stdout(&out).contains("_hangar"), "{}", stderr(&out));
    let zsh = ok(&app.cli(&["completion", "zsh"]).await);
    assert!(zsh.starts_with("#compdef hangar"), "{zsh}");
    let fish = ok(&app.cli(&["completion", "--shell", "fish"]).await);
    assert!(fish.contains("complete -c hangar"), "{fish}");
    assert!(fish.contains("whoami"), "{fish}");
    let out = app.cli(&["completion", "tcsh"]).await;
    assert!(!out.status.success());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_asks_on_a_terminal_and_needs_yes_without_one() {
    let app = spawn_app().await;
    empty_template(&app, "t").await;
    workspace(&app, "dev", "t").await;
    let exists = || async { app.client.workspace("dev").await.is_ok() };

    // No terminal, no --yes: refused, and nothing is deleted.
    let out = app.cli(&["delete", "dev"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no terminal to ask on; pass --yes (-y)"),
        "{}",
        stderr(&out)
    );
    assert!(exists().await);

    // A terminal asks; anything but the name or y keeps it.
    let (success, screen) = hangar_on_terminal(&app, "delete dev", "no\n").await;
    assert!(!success, "{screen}");
    assert!(
        screen.contains("Type its name (dev) or y to confirm"),
        "{screen}"
    );
    assert!(screen.contains("Not deleted."), "{screen}");
    assert!(exists().await);

    // Typing its name deletes it.
    let (success, screen) = hangar_on_terminal(&app, "delete dev", "dev\n").await;
    assert!(success, "{screen}");
    assert!(screen.contains("Workspace dev deleted."), "{screen}");
    assert!(!exists().await);

    // --yes needs neither.
    workspace(&app, "ci", "t").await;
    let text = ok(&app.cli(&["delete", "ci", "--yes"]).await);
    assert!(text.contains("Workspace ci deleted."), "{text}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn token_lifetimes_are_durations_and_bad_ones_are_refused() {
    let app = spawn_app().await;
    for (lifetime, why) in [
        ("99999999999d", "too long: at most 36500d (100 years)"),
        ("99999999999999999999999d", "too long"),
        ("0d", "is zero"),
        ("-1d", "write a number and a unit"),
        ("1.5d", "unknown unit"),
    ] {
        // `--lifetime=-1d`: a leading hyphen would otherwise read as a flag.
        let arg = format!("--lifetime={lifetime}");
        let out = app.cli(&["tokens", "create", "--name", "bad", &arg]).await;
        assert!(!out.status.success(), "{lifetime} was accepted");
        assert!(stderr(&out).contains(why), "{lifetime}: {}", stderr(&out));
    }
    let tokens = app.client.tokens().await.unwrap();
    assert!(
        tokens.iter().all(|t| t.name != "bad"),
        "a refused lifetime sent nothing"
    );

    ok(&app
        .cli(&["tokens", "create", "--name", "month", "--lifetime", "30d"])
        .await);
    ok(&app
        .cli(&["tokens", "create", "--name", "week", "--lifetime", "6d12h"])
        .await);
    ok(&app.cli(&["tokens", "create", "--name", "eternal"]).await);
    let list = ok(&app.cli(&["tokens", "list"]).await);
    let row = |name: &str| {
        list.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} not in\n{list}"))
            .to_string()
    };
    assert!(list.starts_with("NAME"), "{list}");
    assert!(list.lines().next().unwrap().contains("LIFETIME"), "{list}");
    let month = row("month");
    assert!(month.contains(" 30d "), "{month}");
    assert!(
        month.ends_with("in 29d 23h") || month.ends_with("in 30d"),
        "{month}"
    );
    let week = row("week");
    assert!(week.contains(" 6d 12h "), "{week}");
    assert!(
        week.ends_with("in 6d 11h") || week.ends_with("in 6d 12h"),
        "{week}"
    );
    let eternal = row("eternal");
    assert!(
        eternal.contains("forever") && eternal.ends_with("never"),
        "{eternal}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn templates_init_suggests_an_unused_name_and_the_push_command() {
    let app = spawn_app().await;
    empty_template(&app, "local").await;
    let cwd = tempfile::tempdir().unwrap();

    // `local` is taken on the server: the suggestion is local-2, in ./local-2.
    let text = ok(&hangar_in(&app, cwd.path(), &["templates", "init"]).await);
    assert!(
        text.contains("Wrote the local template to ./local-2."),
        "{text}"
    );
    assert!(
        text.contains("  hangar templates push local-2 -d ./local-2\n"),
        "{text}"
    );
    assert!(cwd.path().join("local-2/main.tf").is_file());

    // The printed command works as it is, and makes a new template.
    let out = hangar_in(
        &app,
        cwd.path(),
        &["templates", "push", "local-2", "-d", "./local-2"],
    )
    .await;
    ok(&out);
    assert!(app.client.template("local-2").await.is_ok());

    // local-2 is taken now; ./local-3 is free.
    let text = ok(&hangar_in(&app, cwd.path(), &["templates", "init"]).await);
    assert!(
        text.contains("hangar templates push local-3 -d ./local-3"),
        "{text}"
    );

    // A named directory gives the name, made valid.
    let text = ok(&hangar_in(
        &app,
        cwd.path(),
        &["templates", "init", "--id", "external", "My_Agent"],
    )
    .await);
    assert!(
        text.contains("hangar templates push my-agent -d ./My_Agent"),
        "{text}"
    );
    assert!(cwd.path().join("My_Agent/main.tf").is_file());

    // A directory with files in it is refused, with a free one suggested.
    let out = hangar_in(&app, cwd.path(), &["templates", "init", "My_Agent"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("My_Agent is not empty: choose a new directory, e.g. `hangar templates init --id local ./my-agent`"),
        "{}",
        stderr(&out)
    );
    // ./local-3 is there from above.
    let out = hangar_in(&app, cwd.path(), &["templates", "init", "local-2"]).await;
    assert!(
        stderr(&out).contains("local-2 is not empty: choose a new directory, e.g. `hangar templates init --id local ./local-4`"),
        "{}",
        stderr(&out)
    );
    app.stop().await;
}

/// The init script keeps the agent binary in ${XDG_CACHE_HOME}/hangar, named by its
/// checksum, and runs it from there: no new copy in $TMPDIR per start. When the server
/// sends an ETag, a second start is a cache hit (the same file, not a new download).
#[tokio::test(flavor = "multi_thread")]
async fn the_init_script_caches_the_agent_binary() {
    assert!(which::which("curl").is_ok(), "this test needs curl");
    let app = spawn_app().await;
    push_builtin(&app, "external").await;
    ok(&app
        .cli(&[
            "external-workspaces",
            "create",
            "ext",
            "--template=external",
            "-y",
        ])
        .await);
    let i = app.client.agent_instructions("ext", None).await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (os, arch) = hangar::wire::agent::this_platform();
    let name = format!("hangar-{os}-{arch}");
    let dir = cache.path().join("hangar");

    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("init.log");
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut inodes = Vec::new();
    for round in 0..2 {
        let mut agent = tokio::process::Command::new("sh")
            .args(["-c", &i.init_script])
            .env("HANGAR_AGENT_TOKEN", &i.auth_token)
            .env("XDG_CACHE_HOME", cache.path())
            .env("TMPDIR", tmp.path())
            .env_remove("HANGAR_URL")
            .current_dir(tmp.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = agent.id().unwrap();
        let start = Instant::now();
        let exe = loop {
            // The shell execs the agent: then its pid runs the cached binary.
            if let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) {
                if exe.starts_with(&dir) {
                    break exe;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "round {round}: the agent was not started from the cache\n{}",
                log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let current = std::fs::read_to_string(dir.join(format!("{name}.current"))).unwrap();
        assert_eq!(exe, dir.join(format!("{name}-{}", current.trim())));
        assert_eq!(
            std::fs::read(&exe).unwrap(),
            std::fs::read(hangar_bin()).unwrap(),
            "the cached binary is the server's"
        );
        // The cached binary is a working agent.
        let start = Instant::now();
        while round == 0 && !app.client.workspace("ext").await.unwrap().healthy {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the agent did not become healthy\n{}",
                log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        use std::os::unix::fs::MetadataExt;
        inodes.push(std::fs::metadata(&exe).unwrap().ino());
        // SAFETY: signalling the process group of our own child.
        unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
        let _ = agent.wait().await;
    }
    assert!(
        std::fs::read_dir(tmp.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("hangar-agent.")),
        "nothing was downloaded into $TMPDIR"
    );
    let binaries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&name) && !n.ends_with(".etag") && !n.ends_with(".current"))
        .collect();
    assert_eq!(
        binaries.len(),
        1,
        "one binary, however many starts: {binaries:?}"
    );
    let etag = dir.join(format!("{}.etag", binaries[0]));
    assert!(
        etag.exists(),
        "the server sent an ETag and the script kept it"
    );
    assert_eq!(inodes[0], inodes[1], "a cache hit keeps the file");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_and_update_check_values_before_they_stop() {
    let app = spawn_app().await;
    let size = "data \"hangar_parameter\" \"size\" {\n  name = \"size\"\n  type = \"number\"\n  default = \"2\"\n  mutable = true\n  validation {\n    min = 1\n    max = 4\n  }\n}\nresource \"terraform_data\" \"box\" {\n  input = data.hangar_parameter.size.value\n}\n";
    push_files(&app, "sized", &[("main.tf", &format!("{PROVIDER}{size}"))]).await;
    let ws = app
        .client
        .create_workspace(&CreateWorkspaceRequest {
            name: "dev".into(),
            template: "sized".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    app.client
        .follow_job(&ws.latest_build.job.id, |_| {})
        .await
        .unwrap();
    let client = app.client.clone();
    let still_running = |what: &'static str| {
        let client = client.clone();
        async move {
            let ws = client.workspace("dev").await.unwrap();
            assert_eq!(ws.status, WorkspaceStatus::Running, "after {what}");
            let builds = client.workspace_builds("dev", 100).await.unwrap();
            assert_eq!(builds.len(), 1, "{what} queued a build");
        }
    };

    // The API answers 400 to the check and queues nothing.
    let bad = hangar::wire::workspaces::BuildRequest {
        transition: Some(hangar::model::Transition::Start),
        parameters: [("size".to_string(), "9".to_string())].into(),
        ..Default::default()
    };
    let err = app.client.validate_build("dev", &bad).await.unwrap_err();
    assert_eq!(
        err.status(),
        Some(reqwest::StatusCode::BAD_REQUEST),
        "{err}"
    );
    still_running("a validate-only request").await;

    let out = app.cli(&["restart", "dev", "--parameter", "size=9"]).await;
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(stderr(&out).contains("size"), "{}", stderr(&out));
    still_running("restart with a bad value").await;

    // A new version: update with a bad value for it stops nothing either.
    let flavor = "data \"hangar_parameter\" \"flavor\" {\n  name = \"flavor\"\n  option {\n    name = \"Small\"\n    value = \"small\"\n  }\n}\n";
    push_files(
        &app,
        "sized",
        &[("main.tf", &format!("{PROVIDER}{size}{flavor}"))],
    )
    .await;
    let out = app
        .cli(&["update", "dev", "--parameter", "flavor=huge"])
        .await;
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(stderr(&out).contains("flavor"), "{}", stderr(&out));
    still_running("update with a bad value").await;

    // A good value restarts: stop, then start.
    let out = app.cli(&["restart", "dev", "--parameter", "size=3"]).await;
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let ws = app.client.workspace("dev").await.unwrap();
    assert_eq!(ws.status, WorkspaceStatus::Running);
    assert_eq!(ws.latest_build.parameters["size"], "3");
    assert_eq!(
        app.client.workspace_builds("dev", 100).await.unwrap().len(),
        3
    );
    app.stop().await;
}
