//! The build runner's pieces against the real terraform: work dirs, the allow-listed
//! environment, logs, failures, cancel, the init cache, crash recovery and
//! classification of a multi-host template.

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hangar::model::archive;
use hangar::model::resource::{Kind, Lifetime};
use hangar::provisioner::classify::{self, Graph, Rules};
use hangar::provisioner::terraform::{
    self, InitCache, InitOutcome, LogLevel, LogLine, Stage, Terraform, TerraformEnv, TerraformError,
};
use hangar::provisioner::workdir;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The real terraform, or a loud failure: these tests exist to exercise it.
fn terraform(env: TerraformEnv) -> Terraform {
    Terraform::locate_from(None, std::env::var_os("PATH"))
        .unwrap_or_else(|e| {
            panic!("the runner tests need the real terraform (/usr/local/bin/terraform): {e}")
        })
        .with_env(env)
}

/// A CLI config + provider mirror of the hangar binary under test, as the server makes at
/// start. This also replaces the machine's TF_CLI_CONFIG_FILE (which names a missing file).
fn setup_env(config_dir: &Path) -> TerraformEnv {
    TerraformEnv::setup(config_dir, Path::new(env!("CARGO_BIN_EXE_hangar"))).unwrap()
}

fn ctx() -> serde_json::Value {
    json!({
        "workspace": {"id": "w-1", "name": "dev"},
        "owner": {"name": "alice", "email": "alice@example.com"},
        "template": {"name": "multihost", "version": "v1"},
        "transition": "start",
        "parameters": {},
    })
}

fn archive_of(files: &[(&str, &str)]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    for (path, body) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    archive::pack_dir(dir.path()).unwrap()
}

/// Collects log lines; the closure is what `run` gets as its sink.
#[derive(Default)]
struct Logs(Vec<LogLine>);

impl Logs {
    fn text(&self) -> String {
        self.0
            .iter()
            .map(|l| format!("[{}/{}] {}", l.stage, l.level.as_str(), l.text))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[tokio::test]
async fn multihost_template_is_classified_from_real_terraform() {
    let root = tempfile::tempdir().unwrap();
    let env = setup_env(&root.path().join("config"));
    let tf = terraform(env.clone());
    let cancel = CancellationToken::new();
    let mut logs = Logs::default();
    let mut sink = |l: LogLine| logs.0.push(l);

    let src = tempfile::tempdir().unwrap();
    copy_dir(&fixture("multihost"), src.path());
    // A *.tf.tera file renders with the build context.
    std::fs::write(
        src.path().join("owner.tf.tera"),
        "output \"owner\" {\n  value = \"{{ owner.name }} ({{ transition }})\"\n}\n",
    )
    .unwrap();
    let bytes = archive::pack_dir(src.path()).unwrap();

    let wd = workdir::prepare(&root.path().join("work"), "job-1", &bytes, &ctx(), None).unwrap();
    let dir = wd.path();
    let cache = InitCache::new(root.path().join("init-cache"));
    let key = InitCache::key_for_dir(dir, &tf).unwrap();
    let outcome = tf
        .init_cached(dir, &cache, &key, &mut sink, &cancel)
        .await
        .unwrap();
    assert!(matches!(outcome, InitOutcome::Ran(_)));

    // Import: graph once, then the two dry-run plans give lifetimes.
    let dot = tf.graph(dir, &mut sink, &cancel).await.unwrap();
    let graph = Graph::parse(&dot).unwrap();
    let start = tf.plan_json(dir, false, &mut sink, &cancel).await.unwrap();
    let stop_tf = terraform(env.clone().with_vars([("TF_VAR_start_count", "0")]));
    let stop = stop_tf
        .plan_json(dir, false, &mut sink, &cancel)
        .await
        .unwrap();
    let lifetimes = classify::lifetimes_from_plans(&start.json, &stop.json);

    // Build: one apply, state read from the file.
    tf.apply(dir, false, &mut sink, &cancel).await.unwrap();
    let state_bytes = terraform::read_state(dir)
        .unwrap()
        .expect("apply wrote state");
    let state: serde_json::Value = serde_json::from_slice(&state_bytes).unwrap();
    assert_eq!(state["outputs"]["owner"]["value"], "alice (start)");
    let resources = classify::parse_state(&state_bytes).unwrap();
    let rules = Rules {
        agent_addresses: vec![
            "terraform_data.agent_main".into(),
            "terraform_data.agent_db".into(),
            "module.dev.terraform_data.agent_dev".into(),
        ],
        ..Rules::default()
    };
    let c = classify::classify_with(&graph, &resources, &lifetimes, &rules);

    let labels: HashMap<&str, (Kind, Lifetime)> = c
        .resources
        .iter()
        .map(|r| (r.address.as_str(), (r.kind, r.lifetime)))
        .collect();
    use Kind::*;
    use Lifetime::*;
    let expected = HashMap::from([
        ("terraform_data.vm[0]", (Computational, Ephemeral)),
        ("terraform_data.db_host[0]", (Computational, Ephemeral)),
        ("terraform_data.disk_attach[0]", (Peripheral, Ephemeral)),
        (r#"terraform_data.volume["a"]"#, (Peripheral, Persistent)),
        (r#"terraform_data.volume["b"]"#, (Peripheral, Persistent)),
        (
            r#"module.dev.terraform_data.box["a"]"#,
            (Computational, Persistent),
        ),
        (
            r#"module.dev.terraform_data.box["b"]"#,
            (Computational, Persistent),
        ),
    ]);
    assert_eq!(labels, expected, "{:#?}", c.resources);

    let hosts: HashMap<&str, Option<&str>> = c
        .agents
        .iter()
        .map(|a| (a.name.as_str(), a.host.as_deref()))
        .collect();
    assert_eq!(
        hosts,
        HashMap::from([
            ("agent_main", Some("terraform_data.vm[0]")),
            ("agent_db", Some("terraform_data.db_host[0]")),
            ("agent_dev-a", Some(r#"module.dev.terraform_data.box["a"]"#)),
            ("agent_dev-b", Some(r#"module.dev.terraform_data.box["b"]"#)),
        ])
    );
    assert!(c.agents.iter().all(|a| !a.id.is_empty() && !a.external));

    // Every JSON line became a log line with its stage; none is raw JSON.
    let text = logs.text();
    for stage in [Stage::Init, Stage::Plan, Stage::Apply] {
        assert!(
            logs.0.iter().any(|l| l.stage == stage),
            "no {stage} lines:\n{text}"
        );
    }
    assert!(
        text.contains("[apply/info] terraform_data.vm[0]: Creation complete"),
        "{text}"
    );
    assert!(
        !logs.0.iter().any(|l| l.text.starts_with("{\"@level")),
        "{text}"
    );
}

#[tokio::test]
async fn terraform_sees_only_the_allow_list() {
    const CANARY: &str = "HANGAR_TEST_CANARY_SECRET";
    // SAFETY (edition 2021: set_var is safe, but racy with getenv in other threads):
    // set once, before any process of this test starts; other tests do not read it.
    std::env::set_var(CANARY, "canary-value-8f3a");
    assert_eq!(std::env::var(CANARY).unwrap(), "canary-value-8f3a");

    let root = tempfile::tempdir().unwrap();
    let env = setup_env(&root.path().join("config")).with_vars([("HANGAR_WORKSPACE_NAME", "dev")]);
    let tf = terraform(env);
    let bytes = archive_of(&[(
        "main.tf",
        r#"resource "terraform_data" "env" {
  provisioner "local-exec" {
    command = "env"
  }
}
"#,
    )]);
    let wd = workdir::prepare(&root.path().join("work"), "job-env", &bytes, &ctx(), None).unwrap();
    let mut logs = Logs::default();
    let mut sink = |l: LogLine| logs.0.push(l);
    tf.apply(wd.path(), false, &mut sink, &CancellationToken::new())
        .await
        .unwrap();
    let text = logs.text();
    assert!(
        !text.contains("canary-value-8f3a"),
        "the canary leaked:\n{text}"
    );
    assert!(!text.contains(CANARY), "{text}");
    assert!(text.contains("HANGAR_WORKSPACE_NAME=dev"), "{text}");
    assert!(text.contains("TF_IN_AUTOMATION=1"), "{text}");
    assert!(text.contains("CHECKPOINT_DISABLE=1"), "{text}");
    let config = root.path().join("config/terraform.rc");
    assert!(
        text.contains(&format!("TF_CLI_CONFIG_FILE={}", config.display())),
        "{text}"
    );
    assert!(text.contains("PATH="), "{text}");
}

#[tokio::test]
async fn failures_carry_what_terraform_said_and_keep_partial_state() {
    let root = tempfile::tempdir().unwrap();
    let tf = terraform(setup_env(&root.path().join("config")));
    let cancel = CancellationToken::new();

    let bad_hcl = archive_of(&[(
        "main.tf",
        "resource \"terraform_data\" \"x\" {\n  input = var.nope\n}\n",
    )]);
    let wd =
        workdir::prepare(&root.path().join("work"), "job-bad", &bad_hcl, &ctx(), None).unwrap();
    let mut logs = Logs::default();
    let err = tf
        .apply(wd.path(), false, &mut |l| logs.0.push(l), &cancel)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "apply_failed");
    let msg = err.to_string();
    assert!(
        msg.contains("main.tf:2: Reference to undeclared input variable"),
        "{msg}"
    );
    assert!(msg.contains("\"nope\""), "{msg}");
    assert!(
        logs.0
            .iter()
            .any(|l| l.level == LogLevel::Error && l.text.contains("(main.tf:2)")),
        "{}",
        logs.text()
    );

    let failing = archive_of(&[(
        "main.tf",
        r#"resource "terraform_data" "first" {}
resource "terraform_data" "second" {
  depends_on = [terraform_data.first]
  provisioner "local-exec" {
    command = "echo boom-from-script >&2; exit 3"
  }
}
"#,
    )]);
    let wd = workdir::prepare(
        &root.path().join("work"),
        "job-fail",
        &failing,
        &ctx(),
        None,
    )
    .unwrap();
    let err = tf
        .apply(wd.path(), false, &mut |_| {}, &cancel)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("local-exec provisioner error"), "{msg}");
    assert!(msg.contains("boom-from-script"), "{msg}");
    // What was created before the failure is in the state, for the build to keep.
    let state = terraform::read_state(wd.path()).unwrap().unwrap();
    let addrs: Vec<String> = classify::parse_state(&state)
        .unwrap()
        .into_iter()
        .map(|r| r.address)
        .collect();
    assert!(
        addrs.contains(&"terraform_data.first".to_string()),
        "{addrs:?}"
    );
}

const SLOW_TF: &str = r#"resource "terraform_data" "a" {}
resource "terraform_data" "b" {
  depends_on = [terraform_data.a]
  provisioner "local-exec" {
    command = "sleep 30"
  }
}
"#;

#[tokio::test]
async fn cancel_sends_sigint_and_terraform_stops() {
    let root = tempfile::tempdir().unwrap();
    let tf = terraform(setup_env(&root.path().join("config")));
    let wd = workdir::prepare(
        &root.path().join("work"),
        "job-cancel",
        &archive_of(&[("main.tf", SLOW_TF)]),
        &ctx(),
        None,
    )
    .unwrap();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let mut logs = Logs::default();
    let mut sink = |l: LogLine| {
        if l.text.contains("Provisioning with 'local-exec'") {
            trigger.cancel();
        }
        logs.0.push(l);
    };
    let started = Instant::now();
    let err = tf
        .apply(wd.path(), false, &mut sink, &cancel)
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(
            err,
            TerraformError::Canceled {
                stage: Stage::Apply
            }
        ),
        "{err}"
    );
    assert_eq!(err.kind(), "canceled");
    // Terraform stopped on SIGINT itself, well within the 10 s grace and the 30 s sleep.
    assert!(
        took < Duration::from_secs(8),
        "took {took:?}\n{}",
        logs.text()
    );
    let state = terraform::read_state(wd.path()).unwrap().unwrap();
    assert!(String::from_utf8_lossy(&state).contains("\"name\": \"a\""));
}

/// A stand-in terraform that ignores SIGINT and leaves a child: only the group SIGKILL
/// after the grace period ends it.
fn stubborn_terraform(dir: &Path) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("terraform");
    let pid_file = dir.join("child.pid");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ntrap '' INT\nsleep 30 &\necho $! > {}\necho started\nwait\n",
            pid_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, pid_file)
}

fn is_gone(pid: i32) -> bool {
    // A killed orphan may linger briefly as a zombie until init reaps it.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.split_whitespace().nth(2) == Some("Z"),
    }
}

#[tokio::test]
async fn cancel_kills_the_process_group_after_the_grace_period() {
    let bin = tempfile::tempdir().unwrap();
    let (script, pid_file) = stubborn_terraform(bin.path());
    let mut tf = Terraform::at(&script);
    tf.grace = Duration::from_millis(300);
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let started = Instant::now();
    let err = tf
        .run(
            bin.path(),
            Stage::Apply,
            &[],
            &mut |l| {
                if l.text == "started" {
                    trigger.cancel();
                }
            },
            &cancel,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, TerraformError::Canceled { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let child: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while !is_gone(child) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        is_gone(child),
        "the sleep child {child} survived the group kill"
    );

    // The per-run timeout takes the same path.
    let (script, _) = stubborn_terraform(bin.path());
    let mut tf = Terraform::at(&script);
    tf.grace = Duration::from_millis(100);
    tf.timeout = Duration::from_millis(300);
    let err = tf
        .run(
            bin.path(),
            Stage::Apply,
            &[],
            &mut |_| {},
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, TerraformError::TimedOut { .. }), "{err}");
    assert_eq!(err.kind(), "timeout");
}

#[tokio::test]
async fn init_cache_skips_init_for_the_same_configuration() {
    let root = tempfile::tempdir().unwrap();
    let tf = terraform(setup_env(&root.path().join("config")));
    let cache = InitCache::new(root.path().join("init-cache"));
    let cancel = CancellationToken::new();
    // Hangar's own provider from the mirror (installed, not started: it is not served yet
    // on this branch) plus a local child module.
    let bytes = archive_of(&[
        (
            "main.tf",
            r#"terraform {
  required_providers {
    hangar = { source = "hangar/hangar" }
    coder  = { source = "coder/coder" }
  }
}
module "m" {
  source = "./m"
}
"#,
        ),
        ("m/main.tf", "resource \"terraform_data\" \"x\" {}\n"),
    ]);
    let work = root.path().join("work");
    let first = workdir::prepare(&work, "job-a", &bytes, &ctx(), None).unwrap();
    let key = InitCache::key_for_dir(first.path(), &tf).unwrap();
    let t = Instant::now();
    let outcome = tf
        .init_cached(first.path(), &cache, &key, &mut |_| {}, &cancel)
        .await
        .unwrap();
    let miss = t.elapsed();
    assert!(matches!(outcome, InitOutcome::Ran(_)));
    assert!(first
        .path()
        .join(".terraform/providers/registry.terraform.io/hangar/hangar")
        .exists());

    let second = workdir::prepare(&work, "job-b", &bytes, &ctx(), None).unwrap();
    assert_eq!(InitCache::key_for_dir(second.path(), &tf).unwrap(), key);
    let t = Instant::now();
    let outcome = tf
        .init_cached(second.path(), &cache, &key, &mut |_| {}, &cancel)
        .await
        .unwrap();
    let hit = t.elapsed();
    assert!(matches!(outcome, InitOutcome::CacheHit), "{outcome:?}");
    let lock = std::fs::read_to_string(second.path().join(".terraform.lock.hcl")).unwrap();
    assert!(
        lock.contains("registry.terraform.io/hangar/hangar"),
        "{lock}"
    );
    assert!(lock.contains("registry.terraform.io/coder/coder"), "{lock}");
    assert!(second
        .path()
        .join(".terraform/providers/registry.terraform.io/coder/coder/2.99.0")
        .exists());
    assert!(second
        .path()
        .join(".terraform/modules/modules.json")
        .exists());
    eprintln!("init cache: miss (terraform init) {miss:?}, hit {hit:?}");
    assert!(hit < miss, "hit {hit:?} vs miss {miss:?}");

    // A different configuration gets a different key.
    let other = workdir::prepare(
        &work,
        "job-c",
        &archive_of(&[("main.tf", "# other\n")]),
        &ctx(),
        None,
    )
    .unwrap();
    assert_ne!(InitCache::key_for_dir(other.path(), &tf).unwrap(), key);
}

#[tokio::test]
async fn cached_init_is_usable_by_plan_and_apply() {
    let root = tempfile::tempdir().unwrap();
    let tf = terraform(setup_env(&root.path().join("config")));
    let cache = InitCache::new(root.path().join("init-cache"));
    let cancel = CancellationToken::new();
    let bytes = archive::pack_dir(&fixture("multihost")).unwrap();
    let work = root.path().join("work");
    let first = workdir::prepare(&work, "job-1", &bytes, &ctx(), None).unwrap();
    let key = InitCache::key_for_dir(first.path(), &tf).unwrap();
    tf.init_cached(first.path(), &cache, &key, &mut |_| {}, &cancel)
        .await
        .unwrap();
    let second = workdir::prepare(&work, "job-2", &bytes, &ctx(), None).unwrap();
    let outcome = tf
        .init_cached(second.path(), &cache, &key, &mut |_| {}, &cancel)
        .await
        .unwrap();
    assert!(matches!(outcome, InitOutcome::CacheHit));
    // The child module resolves through the cached .terraform.
    let t = Instant::now();
    tf.apply(second.path(), false, &mut |_| {}, &cancel)
        .await
        .unwrap();
    eprintln!("apply of multihost after a cache hit: {:?}", t.elapsed());
    let state = terraform::read_state(second.path()).unwrap().unwrap();
    assert_eq!(classify::parse_state(&state).unwrap().len(), 11);
}

#[tokio::test]
async fn state_survives_a_kill_9_and_the_next_build_adopts_it() {
    let root = tempfile::tempdir().unwrap();
    let env = setup_env(&root.path().join("config"));
    let tf = terraform(env.clone());
    let work = root.path().join("work");
    let bytes = archive_of(&[("main.tf", SLOW_TF)]);
    let wd = workdir::prepare(&work, "job-crash", &bytes, &ctx(), None).unwrap();
    // The runner's process dies with terraform mid-apply: nothing graceful happens.
    let mut child = std::process::Command::new(tf.binary())
        .args(["apply", "-auto-approve", "-input=false", "-json"])
        .current_dir(wd.path())
        .env_clear()
        .envs(env.vars())
        .stdout(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let state_file = wd.path().join(workdir::STATE_FILE);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&state_file)
        .map(|s| s.contains("\"name\": \"a\""))
        .unwrap_or(false)
    {
        assert!(
            Instant::now() < deadline,
            "terraform never wrote state for a"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGKILL);
    }
    child.wait().unwrap();
    let leftover_path = wd.keep(); // what a dead process leaves behind

    // Next start: find the dir by job id, recover the state, wipe the rest.
    let found = workdir::find_leftover(&work, "job-crash").unwrap();
    assert_eq!(found, leftover_path);
    let recovered = workdir::read_leftover_state(&found).unwrap();
    let before = classify::parse_state(&recovered).unwrap();
    assert_eq!(before.len(), 1);
    let a_id = before[0].attributes["id"].clone();
    assert_eq!(workdir::wipe_leftovers(&work).unwrap(), 1);

    // The next build starts from the recovered state: `a` is kept, not created twice.
    let fast = archive_of(&[(
        "main.tf",
        "resource \"terraform_data\" \"a\" {}\nresource \"terraform_data\" \"b\" {\n  depends_on = [terraform_data.a]\n}\n",
    )]);
    let wd = workdir::prepare(&work, "job-next", &fast, &ctx(), Some(&recovered)).unwrap();
    let mut logs = Logs::default();
    tf.apply(
        wd.path(),
        false,
        &mut |l| logs.0.push(l),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(
        logs.text()
            .contains("Resources: 1 added, 0 changed, 0 destroyed"),
        "{}",
        logs.text()
    );
    let after = classify::parse_state(&terraform::read_state(wd.path()).unwrap().unwrap()).unwrap();
    let a = after.iter().find(|r| r.name == "a").unwrap();
    assert_eq!(a.attributes["id"], a_id);
}

#[tokio::test]
async fn validate_reports_configuration_errors() {
    let root = tempfile::tempdir().unwrap();
    let tf = terraform(setup_env(&root.path().join("config")));
    let wd = workdir::prepare(
        &root.path().join("work"),
        "job-v",
        &archive_of(&[(
            "main.tf",
            "resource \"terraform_data\" \"x\" {\n  bogus = 1\n}\n",
        )]),
        &ctx(),
        None,
    )
    .unwrap();
    let err = tf
        .validate(wd.path(), &mut |_| {}, &CancellationToken::new())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("main.tf:2: Unsupported argument"), "{msg}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dst = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dst);
        } else {
            std::fs::copy(entry.path(), dst).unwrap();
        }
    }
}
