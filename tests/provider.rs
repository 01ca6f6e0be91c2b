//! Hangar's Terraform provider, driven by the real terraform (no mocks).
//!
//! Each test lays the built `hangar` binary out as a filesystem mirror in a temp dir and
//! points terraform at it with its own CLI config. Terraform costs ~0.3 s a process here,
//! so tests batch many cases into one module (terraform reports every failing block in
//! one run) and reuse one `terraform init` per test.

use std::path::{Path, PathBuf};
use std::process::Command;

use hangar::provider::{
    agent_script_env_name, mirror, parameter_env_name, previous_parameter_env_name,
};
use serde_json::Value;

const HANGAR_PROVIDER: &str = r#"
terraform {
  required_providers {
    hangar = { source = "hangar/hangar" }
  }
}
"#;

fn terraform_bin() -> PathBuf {
    let candidates = [PathBuf::from("/usr/local/bin/terraform")];
    candidates
        .into_iter()
        .find(|p| p.exists())
        .or_else(|| which::which("terraform").ok())
        .expect(
            "terraform is required for the provider tests and was not found \
             (install it at /usr/local/bin/terraform or on PATH)",
        )
}

/// One terraform working directory with Hangar's provider in a private mirror.
struct Tf {
    _tmp: tempfile::TempDir,
    rc: PathBuf,
    module: PathBuf,
}

impl Tf {
    /// A module with `main.tf`, already `terraform init`ed.
    fn new(main_tf: &str) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mirror_dir = tmp.path().join("mirror");
        mirror::install(&mirror_dir, Path::new(env!("CARGO_BIN_EXE_hangar")))
            .expect("installing the mirror");
        let rc = tmp.path().join("terraform.rc");
        std::fs::write(&rc, mirror::cli_config(&mirror_dir, None)).unwrap();
        let module = tmp.path().join("module");
        std::fs::create_dir(&module).unwrap();
        let tf = Tf {
            _tmp: tmp,
            rc,
            module,
        };
        tf.write(main_tf);
        tf.ok(&["init", "-input=false", "-backend=false"], &[]);
        tf
    }

    fn write(&self, main_tf: &str) {
        std::fs::write(self.module.join("main.tf"), main_tf).unwrap();
    }

    /// Runs terraform with only the given Hangar/Coder variables set (inherited ones are
    /// removed so the developer's shell cannot change results).
    fn run(&self, args: &[&str], env: &[(String, String)]) -> (bool, String) {
        let mut cmd = Command::new(terraform_bin());
        cmd.args(args).current_dir(&self.module);
        for (key, _) in std::env::vars() {
            if key.starts_with("HANGAR_") || key.starts_with("CODER_") || key.starts_with("TF_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("TF_CLI_CONFIG_FILE", &self.rc)
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("CHECKPOINT_DISABLE", "1")
            .env("NO_COLOR", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("running terraform");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn ok(&self, args: &[&str], env: &[(String, String)]) -> String {
        let (ok, text) = self.run(args, env);
        assert!(ok, "terraform {args:?} failed:\n{text}");
        text
    }

    fn fail(&self, args: &[&str], env: &[(String, String)]) -> String {
        let (ok, text) = self.run(args, env);
        assert!(!ok, "terraform {args:?} should have failed:\n{text}");
        text
    }

    fn apply(&self, env: &[(String, String)]) -> String {
        self.ok(
            &["apply", "-auto-approve", "-no-color", "-parallelism=4"],
            env,
        )
    }

    fn outputs(&self) -> Value {
        let text = self.ok(&["output", "-json"], &[]);
        let all: Value = serde_json::from_str(&text).expect("output -json");
        let mut values = serde_json::Map::new();
        for (k, v) in all.as_object().unwrap() {
            values.insert(k.clone(), v["value"].clone());
        }
        Value::Object(values)
    }

    fn state(&self) -> Value {
        let text = std::fs::read_to_string(self.module.join("terraform.tfstate")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Attributes of the first instance of `type.name` in the state.
    fn resource(&self, kind: &str, name: &str) -> Value {
        let state = self.state();
        state["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == kind && r["name"] == name && r["mode"] == "managed")
            .unwrap_or_else(|| panic!("{kind}.{name} not in state: {state:#}"))["instances"][0]
            ["attributes"]
            .clone()
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn param(name: &str, value: &str) -> (String, String) {
    (parameter_env_name(name), value.to_string())
}

fn previous(name: &str, value: &str) -> (String, String) {
    (previous_parameter_env_name(name), value.to_string())
}

fn assert_contains(text: &str, needles: &[&str]) {
    // Terraform wraps long diagnostics; compare with whitespace collapsed.
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in needles {
        let needle = needle.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains(&needle), "expected {needle:?} in:\n{text}");
    }
}

#[test]
fn parameter_values_and_defaults() {
    let tf = Tf::new(&format!(
        r#"{HANGAR_PROVIDER}
data "hangar_parameter" "plain" {{
  name    = "plain"
  default = "fallback"
}}
data "hangar_parameter" "given" {{
  name    = "given"
  default = "fallback"
}}
data "hangar_parameter" "cpu" {{
  name    = "cpu"
  type    = "number"
  default = 2
  validation {{
    min = 1
    max = 8
    monotonic = "increasing"
  }}
}}
data "hangar_parameter" "gpu" {{
  name = "gpu"
  type = "bool"
}}
data "hangar_parameter" "tags" {{
  name    = "tags"
  type    = "list(string)"
  default = jsonencode(["a"])
}}
data "hangar_parameter" "regions" {{
  name = "regions"
  type = "list(string)"
  option {{
    name  = "EU"
    value = "eu"
  }}
  option {{
    name  = "US"
    value = "us"
  }}
}}
data "hangar_parameter" "coder_named" {{
  name = "coder named"
}}
output "plain" {{ value = data.hangar_parameter.plain }}
output "given" {{ value = data.hangar_parameter.given.value }}
output "cpu" {{ value = data.hangar_parameter.cpu.value }}
output "gpu" {{ value = data.hangar_parameter.gpu.value }}
output "tags" {{ value = jsondecode(data.hangar_parameter.tags.value) }}
output "regions" {{ value = jsondecode(data.hangar_parameter.regions.value) }}
output "coder_named" {{ value = data.hangar_parameter.coder_named.value }}
"#
    ));
    let coder_name = parameter_env_name("coder named").replace("HANGAR_", "CODER_");
    tf.apply(&[
        param("given", "chosen"),
        param("cpu", "4"),
        previous("cpu", "3"),
        param("gpu", "true"),
        param("regions", r#"["us","eu"]"#),
        (coder_name, "from coder".into()),
    ]);
    let out = tf.outputs();
    assert_eq!(out["plain"]["value"], "fallback");
    assert_eq!(out["plain"]["type"], "string");
    assert_eq!(out["plain"]["mutable"], false);
    assert_eq!(out["plain"]["ephemeral"], false);
    assert_eq!(out["plain"]["optional"], true);
    assert_eq!(out["given"], "chosen");
    assert_eq!(out["cpu"], "4");
    assert_eq!(out["gpu"], "true");
    assert_eq!(out["tags"], serde_json::json!(["a"]));
    assert_eq!(out["regions"], serde_json::json!(["us", "eu"]));
    assert_eq!(out["coder_named"], "from coder");
}

#[test]
fn parameter_configuration_errors() {
    let tf = Tf::new(&format!(
        r#"{HANGAR_PROVIDER}
data "hangar_parameter" "t" {{
  name = "bad_type"
  type = "float"
}}
data "hangar_parameter" "e1" {{
  name      = "eph_immutable"
  ephemeral = true
  default   = "x"
}}
data "hangar_parameter" "e2" {{
  name      = "eph_no_default"
  ephemeral = true
  mutable   = true
}}
data "hangar_parameter" "o1" {{
  name = "dup_option_name"
  option {{
    name  = "A"
    value = "a"
  }}
  option {{
    name  = "A"
    value = "b"
  }}
}}
data "hangar_parameter" "o2" {{
  name = "dup_option_value"
  option {{
    name  = "A"
    value = "a"
  }}
  option {{
    name  = "B"
    value = "a"
  }}
}}
data "hangar_parameter" "o3" {{
  name = "option_not_number"
  type = "number"
  option {{
    name  = "A"
    value = "many"
  }}
}}
data "hangar_parameter" "v1" {{
  name = "regex_on_number"
  type = "number"
  validation {{
    regex = "^1$"
    error = "e"
  }}
}}
data "hangar_parameter" "v2" {{
  name = "min_on_string"
  validation {{
    min = 1
  }}
}}
data "hangar_parameter" "v3" {{
  name = "bad_monotonic"
  type = "number"
  validation {{
    monotonic = "sideways"
  }}
}}
data "hangar_parameter" "v4" {{
  name = "regex_without_error"
  validation {{
    regex = "^a$"
  }}
}}
data "hangar_parameter" "v5" {{
  name = "broken_regex"
  validation {{
    regex = "(unclosed"
    error = "e"
  }}
}}
data "hangar_parameter" "v6" {{
  name = "min_above_max"
  type = "number"
  validation {{
    min = 5
    max = 1
  }}
}}
data "hangar_parameter" "d1" {{
  name    = "default_not_option"
  default = "c"
  option {{
    name  = "A"
    value = "a"
  }}
}}
data "hangar_parameter" "d2" {{
  name    = "default_not_bool"
  type    = "bool"
  default = "yes"
}}
data "hangar_parameter" "d3" {{
  name    = "default_above_max"
  type    = "number"
  default = 10
  validation {{
    max = 8
  }}
}}
"#
    ));
    let text = tf.fail(&["validate", "-no-color"], &[]);
    assert_contains(
        &text,
        &[
            r#"parameter "bad_type": type "float" is not supported; use one of string, number, bool, list(string)"#,
            r#"parameter "eph_immutable": an ephemeral parameter must be mutable (set mutable = true)"#,
            r#"parameter "eph_no_default": an ephemeral parameter must have a default"#,
            r#"parameter "dup_option_name": option names must be unique: "A" is used twice"#,
            r#"parameter "dup_option_value": option values must be unique: "a" is used twice"#,
            r#"parameter "option_not_number": option "A": "many" is not a number"#,
            r#"parameter "regex_on_number": validation regex applies only to type string, not number"#,
            r#"parameter "min_on_string": validation min, max and monotonic apply only to type number, not string"#,
            r#"parameter "bad_monotonic": validation monotonic must be "increasing" or "decreasing", not "sideways""#,
            r#"parameter "regex_without_error": validation regex needs an error message (validation.error)"#,
            r#"parameter "broken_regex": validation regex "(unclosed" is not a valid regex"#,
            r#"parameter "min_above_max": validation min 5 is greater than max 1"#,
            r#"parameter "default_not_option": default "c" is not one of the options (a)"#,
            r#"parameter "default_not_bool": default "yes" is not a bool (true or false) (type bool)"#,
            r#"parameter "default_above_max": default 10 is greater than the validation max 8"#,
        ],
    );
}

#[test]
fn parameter_value_errors() {
    let tf = Tf::new(&format!(
        r#"{HANGAR_PROVIDER}
data "hangar_parameter" "missing" {{
  name = "missing"
}}
data "hangar_parameter" "region" {{
  name = "region"
  option {{
    name  = "EU"
    value = "eu"
  }}
  option {{
    name  = "US"
    value = "us"
  }}
}}
data "hangar_parameter" "user" {{
  name = "user"
  validation {{
    regex = "^[a-z]+$"
    error = "lowercase letters only, not {{value}}"
  }}
}}
data "hangar_parameter" "small" {{
  name = "small"
  type = "number"
  validation {{
    min   = 2
    error = "between {{min}} and {{max}}"
    max   = 4
  }}
}}
data "hangar_parameter" "big" {{
  name = "big"
  type = "number"
  validation {{
    max = 4
  }}
}}
data "hangar_parameter" "disk" {{
  name = "disk"
  type = "number"
  validation {{
    monotonic = "increasing"
  }}
}}
data "hangar_parameter" "quota" {{
  name = "quota"
  type = "number"
  validation {{
    monotonic = "decreasing"
  }}
}}
data "hangar_parameter" "grows_fine" {{
  name = "grows_fine"
  type = "number"
  validation {{
    monotonic = "increasing"
  }}
}}
data "hangar_parameter" "count" {{
  name = "count"
  type = "number"
}}
data "hangar_parameter" "flag" {{
  name = "flag"
  type = "bool"
}}
data "hangar_parameter" "list" {{
  name = "list"
  type = "list(string)"
}}
data "hangar_parameter" "picks" {{
  name = "picks"
  type = "list(string)"
  option {{
    name  = "A"
    value = "a"
  }}
}}
"#
    ));
    let text = tf.fail(
        &["plan", "-no-color"],
        &[
            param("region", "mars"),
            param("user", "Bob"),
            param("small", "1"),
            param("big", "5"),
            param("disk", "10"),
            previous("disk", "20"),
            param("quota", "30"),
            previous("quota", "20"),
            param("grows_fine", "30"),
            previous("grows_fine", "20"),
            param("count", "lots"),
            param("flag", "yes"),
            param("list", "a,b"),
            param("picks", r#"["a","z"]"#),
        ],
    );
    assert_contains(
        &text,
        &[
            r#"parameter "region": value "mars" is not one of the options (eu, us)"#,
            r#"parameter "user": value "Bob" does not match validation regex "^[a-z]+$": lowercase letters only, not Bob"#,
            r#"parameter "small": value 1 is less than the validation min 2: between 2 and 4"#,
            r#"parameter "big": value 5 is greater than the validation max 4"#,
            r#"parameter "disk": value 10 is less than the previous value 20, but validation monotonic is "increasing""#,
            r#"parameter "quota": value 30 is greater than the previous value 20, but validation monotonic is "decreasing""#,
            r#"parameter "count": value "lots" is not a number (type number)"#,
            r#"parameter "flag": value "yes" is not a bool (true or false) (type bool)"#,
            r#"parameter "list": value "a,b" is not a JSON-encoded list of strings (type list(string))"#,
            r#"parameter "picks": value "z" is not one of the options (a)"#,
        ],
    );
    assert!(
        !text.contains("\"grows_fine\""),
        "a value that grows as required must pass:\n{text}"
    );
    assert!(
        !text.contains("\"missing\""),
        "no value and no default is \"\", as in Coder:\n{text}"
    );
}

#[test]
fn coder_semantics_for_values() {
    let tf = Tf::new(&format!(
        r#"{HANGAR_PROVIDER}
data "hangar_parameter" "missing" {{
  name = "missing"
}}
data "hangar_parameter" "flag" {{
  name = "flag"
  type = "bool"
}}
data "hangar_parameter" "bounded" {{
  name    = "bounded"
  type    = "number"
  default = 3
  validation {{
    min = 1
  }}
}}
output "missing" {{ value = data.hangar_parameter.missing.value }}
output "flag" {{ value = data.hangar_parameter.flag.value }}
output "min_disabled" {{ value = data.hangar_parameter.bounded.validation[0].min_disabled }}
output "max_disabled" {{ value = data.hangar_parameter.bounded.validation[0].max_disabled }}
"#
    ));
    tf.ok(
        &["apply", "-auto-approve", "-no-color"],
        &[param("flag", "True")],
    );
    let out = tf.outputs();
    assert_eq!(out["missing"], "");
    assert_eq!(out["flag"], "True", "Coder accepts Go's bool spellings");
    assert_eq!(out["min_disabled"], false);
    assert_eq!(out["max_disabled"], true);
}

const WORKSPACE_MODULE: &str = r#"
data "hangar_workspace" "me" {}
data "hangar_workspace_owner" "me" {}
resource "terraform_data" "ephemeral" {
  count = data.hangar_workspace.me.start_count
}
output "ws" { value = data.hangar_workspace.me }
# The owner has sensitive attributes (session_token, ssh_private_key); output the rest.
output "owner" {
  value = {
    for k in ["id", "name", "email", "full_name", "groups"] : k => data.hangar_workspace_owner.me[k]
  }
}
output "ephemeral" { value = length(terraform_data.ephemeral) }
"#;

#[test]
fn workspace_and_owner_for_start_and_stop() {
    let tf = Tf::new(&format!("{HANGAR_PROVIDER}{WORKSPACE_MODULE}"));
    let start = env(&[
        ("HANGAR_URL", "https://hangar.example.com"),
        ("HANGAR_WORKSPACE_ID", "ws-1"),
        ("HANGAR_WORKSPACE_NAME", "dev"),
        ("HANGAR_WORKSPACE_TRANSITION", "start"),
        ("HANGAR_WORKSPACE_BUILD_ID", "b-7"),
        ("HANGAR_WORKSPACE_OWNER_ID", "u-1"),
        ("HANGAR_WORKSPACE_OWNER_NAME", "alice"),
        ("HANGAR_WORKSPACE_OWNER_EMAIL", "alice@example.com"),
        ("HANGAR_WORKSPACE_OWNER_FULL_NAME", "Alice Liddell"),
        ("HANGAR_WORKSPACE_OWNER_GROUPS", r#"["devs","ops"]"#),
        ("HANGAR_TEMPLATE_ID", "t-1"),
        ("HANGAR_TEMPLATE_NAME", "local"),
        ("HANGAR_TEMPLATE_VERSION", "v3"),
    ]);
    tf.apply(&start);
    let out = tf.outputs();
    let ws = &out["ws"];
    assert_eq!(ws["id"], "ws-1");
    assert_eq!(ws["name"], "dev");
    assert_eq!(ws["transition"], "start");
    assert_eq!(ws["start_count"], 1);
    assert_eq!(ws["build_id"], "b-7");
    assert_eq!(ws["access_url"], "https://hangar.example.com");
    assert_eq!(ws["access_port"], 443);
    assert_eq!(ws["template_id"], "t-1");
    assert_eq!(ws["template_name"], "local");
    assert_eq!(ws["template_version"], "v3");
    let owner = &out["owner"];
    assert_eq!(owner["id"], "u-1");
    assert_eq!(owner["name"], "alice");
    assert_eq!(owner["email"], "alice@example.com");
    assert_eq!(owner["full_name"], "Alice Liddell");
    assert_eq!(owner["groups"], serde_json::json!(["devs", "ops"]));
    assert_eq!(out["ephemeral"], 1);

    let mut stop = start.clone();
    stop.retain(|(k, _)| k != "HANGAR_WORKSPACE_TRANSITION");
    stop.push(("HANGAR_WORKSPACE_TRANSITION".into(), "stop".into()));
    let text = tf.apply(&stop);
    assert_contains(&text, &["1 destroyed"]);
    let out = tf.outputs();
    assert_eq!(out["ws"]["transition"], "stop");
    assert_eq!(out["ws"]["start_count"], 0);
    assert_eq!(out["ephemeral"], 0);

    // Coder's names work as fallbacks, including its username/full-name quirk; with
    // nothing set, Coder's defaults apply.
    tf.apply(&env(&[
        ("CODER_WORKSPACE_TRANSITION", "delete"),
        ("CODER_WORKSPACE_NAME", "from-coder"),
        ("CODER_WORKSPACE_OWNER", "bob"),
        ("CODER_WORKSPACE_OWNER_NAME", "Bob Builder"),
        ("CODER_AGENT_URL", "http://coder.local:7080"),
        ("CODER_WORKSPACE_TEMPLATE_NAME", "ct"),
    ]));
    let out = tf.outputs();
    assert_eq!(out["ws"]["transition"], "delete");
    assert_eq!(out["ws"]["start_count"], 0);
    assert_eq!(out["ws"]["name"], "from-coder");
    assert_eq!(out["ws"]["access_port"], 7080);
    assert_eq!(out["ws"]["template_name"], "ct");
    assert_eq!(out["owner"]["name"], "bob");
    assert_eq!(out["owner"]["full_name"], "Bob Builder");
    assert_eq!(out["owner"]["email"], "default@example.com");
    assert_eq!(out["owner"]["groups"], serde_json::json!([]));

    let text = tf.fail(
        &["plan", "-no-color"],
        &env(&[("HANGAR_WORKSPACE_OWNER_GROUPS", "devs")]),
    );
    assert_contains(
        &text,
        &["HANGAR_WORKSPACE_OWNER_GROUPS must be a JSON list of strings"],
    );
}

#[test]
fn agent_token_is_fresh_sensitive_and_init_script_comes_from_env() {
    let tf = Tf::new(&format!(
        r#"{HANGAR_PROVIDER}
resource "hangar_agent" "dev" {{
  os   = "linux"
  arch = "arm64"
}}
output "init_script" {{ value = hangar_agent.dev.init_script }}
output "token" {{
  value     = hangar_agent.dev.token
  sensitive = true
}}
"#
    ));
    let script = "curl -fsSL ${ACCESS_URL}bin/agent | AUTH=${AUTH_TYPE} sh";
    let run_env = env(&[
        ("HANGAR_URL", "http://127.0.0.1:7777"),
        (&agent_script_env_name("linux", "arm64"), script),
    ]);
    let first_apply = tf.apply(&run_env);
    let first = tf.resource("hangar_agent", "dev");
    let token = first["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 64, "32 random bytes, hex: {token}");
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        first["init_script"],
        "curl -fsSL http://127.0.0.1:7777/bin/agent | AUTH=token sh"
    );
    assert_eq!(tf.outputs()["token"], token.as_str());
    assert!(
        !first_apply.contains(&token),
        "token leaked:\n{first_apply}"
    );

    // A refresh draws a new token (as Coder's provider does) and plans no action.
    let plan = tf.ok(&["plan", "-no-color"], &run_env);
    assert_contains(
        &plan,
        &[
            "hangar_agent.dev has changed",
            "~ token = (sensitive value)",
        ],
    );
    assert!(
        !plan.contains("will be") && !plan.contains("must be"),
        "{plan}"
    );
    let second_apply = tf.apply(&run_env);
    let second = tf.resource("hangar_agent", "dev");
    let new_token = second["token"].as_str().unwrap();
    assert_ne!(new_token, token, "every build must get a new token");
    assert_eq!(second["id"], first["id"], "a refresh keeps the agent");
    for text in [&plan, &second_apply] {
        assert!(
            !text.contains(&token) && !text.contains(new_token),
            "token leaked:\n{text}"
        );
    }

    // Coder's variable name is a fallback; no script at all gives an empty one.
    tf.apply(&env(&[(
        "CODER_AGENT_SCRIPT_linux_arm64",
        "coder ${AUTH_TYPE}",
    )]));
    assert_eq!(tf.outputs()["init_script"], "coder token");
    tf.apply(&[]);
    assert_eq!(tf.outputs()["init_script"], "");
}

const ALL_RESOURCES: &str = r#"
resource "hangar_agent" "dev" {
  os             = "linux"
  arch           = "amd64"
  dir            = "/home/dev"
  env            = { A = "1" }
  startup_script = "echo STARTUP"
  metadata {
    key      = "load"
    script   = "cat /proc/loadavg"
    interval = 10
  }
  display_apps {
    vscode = false
  }
}
resource "hangar_external_agent" "dev" {
  agent_id = hangar_agent.dev.id
}
resource "hangar_app" "web" {
  agent_id     = hangar_agent.dev.id
  slug         = "web"
  display_name = "APP_NAME"
  url          = "http://localhost:8080"
  healthcheck {
    url       = "http://localhost:8080/healthz"
    interval  = 5
    threshold = 6
  }
}
resource "hangar_metadata" "agent" {
  resource_id = hangar_agent.dev.id
  daily_cost  = 3
  item {
    key   = "size"
    value = "ITEM_VALUE"
  }
}
resource "hangar_script" "hello" {
  agent_id     = hangar_agent.dev.id
  display_name = "hello"
  script       = "echo SCRIPT"
  run_on_start = true
}
resource "hangar_env" "editor" {
  agent_id = hangar_agent.dev.id
  name     = "EDITOR"
  value    = "ENV_VALUE"
}
"#;

#[test]
fn every_resource_round_trips() {
    let tf = Tf::new(&format!("{HANGAR_PROVIDER}{ALL_RESOURCES}"));
    // Create.
    tf.apply(&[]);
    let agent = tf.resource("hangar_agent", "dev");
    let id_of = |kind, name| tf.resource(kind, name)["id"].as_str().unwrap().to_string();
    let ids = [
        id_of("hangar_external_agent", "dev"),
        id_of("hangar_app", "web"),
        id_of("hangar_metadata", "agent"),
        id_of("hangar_script", "hello"),
        id_of("hangar_env", "editor"),
    ];
    assert_eq!(agent["connection_timeout"], 120, "defaults are filled in");
    assert_eq!(agent["auth"], "token");
    assert_eq!(agent["metadata"][0]["key"], "load");
    assert_eq!(agent["display_apps"][0]["vscode"], false);
    assert_eq!(tf.resource("hangar_app", "web")["share"], "owner");
    assert_eq!(
        tf.resource("hangar_app", "web")["healthcheck"][0]["threshold"],
        6
    );
    assert_eq!(tf.resource("hangar_script", "hello")["run_on_stop"], false);
    assert_eq!(
        tf.resource("hangar_external_agent", "dev")["agent_id"],
        agent["id"]
    );
    assert_eq!(tf.resource("hangar_metadata", "agent")["daily_cost"], 3);

    // Read: a refresh finds everything as it was (only the token moves).
    let plan = tf.ok(&["plan", "-no-color", "-detailed-exitcode"], &[]);
    assert_contains(&plan, &["No changes"]);

    // Update in place: same ids, new values (apps and scripts update in place).
    let edited = ALL_RESOURCES
        .replace("APP_NAME", "App 2")
        .replace("echo SCRIPT", "echo changed");
    tf.write(&format!("{HANGAR_PROVIDER}{edited}"));
    let text = tf.apply(&[]);
    assert_contains(&text, &["0 added, 2 changed, 0 destroyed"]);
    assert_eq!(tf.resource("hangar_app", "web")["display_name"], "App 2");
    assert_eq!(
        tf.resource("hangar_script", "hello")["script"],
        "echo changed"
    );
    let after = [
        id_of("hangar_external_agent", "dev"),
        id_of("hangar_app", "web"),
        id_of("hangar_metadata", "agent"),
        id_of("hangar_script", "hello"),
        id_of("hangar_env", "editor"),
    ];
    assert_eq!(ids, after, "updates keep ids");

    // As in Coder, a metadata item or an env value is part of its resource's identity.
    let edited = edited
        .replace("ITEM_VALUE", "big")
        .replace("ENV_VALUE", "vim");
    tf.write(&format!("{HANGAR_PROVIDER}{edited}"));
    let text = tf.apply(&[]);
    assert_contains(&text, &["2 added, 0 changed, 2 destroyed"]);
    assert_eq!(
        tf.resource("hangar_metadata", "agent")["item"][0]["value"],
        "big"
    );
    assert_eq!(tf.resource("hangar_env", "editor")["value"], "vim");
    assert_eq!(tf.resource("hangar_agent", "dev")["id"], agent["id"]);

    // Every agent attribute is identity (as in Coder): a new startup script is a new
    // agent (new id), which replaces everything attached to it.
    tf.write(&format!(
        "{HANGAR_PROVIDER}{}",
        edited.replace("echo STARTUP", "echo started")
    ));
    let text = tf.apply(&[]);
    assert_contains(&text, &["6 added, 0 changed, 6 destroyed"]);
    assert_ne!(tf.resource("hangar_agent", "dev")["id"], agent["id"]);
    assert_eq!(
        tf.resource("hangar_agent", "dev")["startup_script"],
        "echo started"
    );

    // Delete.
    let text = tf.ok(&["destroy", "-auto-approve", "-no-color"], &[]);
    assert_contains(&text, &["6 destroyed"]);
    assert_eq!(tf.state()["resources"], serde_json::json!([]));
}

#[test]
fn resource_configuration_errors() {
    let tf = Tf::new(&format!(
        r#"{HANGAR_PROVIDER}
resource "hangar_agent" "a" {{
  os   = "plan9"
  arch = "mips"
  connection_timeout = -1
  startup_script_behavior = "sometimes"
  metadata {{
    key      = "k"
    script   = "x"
    interval = 1
  }}
  metadata {{
    key      = "k"
    script   = "y"
    interval = 1
  }}
}}
resource "hangar_app" "a" {{
  agent_id = "x"
  slug     = "Bad_Slug"
  url      = "http://x"
  command  = "top"
  share    = "everyone"
}}
resource "hangar_script" "s" {{
  agent_id     = "x"
  display_name = "never"
  script       = "true"
}}
resource "hangar_env" "e" {{
  agent_id = "x"
  name     = "1BAD-NAME"
}}
resource "hangar_metadata" "m" {{
  resource_id = "x"
  daily_cost  = -5
}}
"#
    ));
    let text = tf.fail(&["validate", "-no-color"], &[]);
    assert_contains(
        &text,
        &[
            r#"os "plan9" is not one of linux, darwin, windows"#,
            r#"arch "mips" is not one of amd64, arm64, armv7"#,
            "connection_timeout -1 must be at least 0",
            r#"startup_script_behavior "sometimes" must be "blocking" or "non-blocking""#,
            r#"duplicate agent metadata key "k""#,
            r#"slug "Bad_Slug" must be lowercase letters"#,
            "command conflicts with url",
            r#"share "everyone" is not one of owner, authenticated, public"#,
            "hangar_script: at least one of run_on_start, run_on_stop or cron must be set",
            r#"environment variable name "1BAD-NAME" must be letters, digits and _"#,
            "daily_cost -5 must be at least 0",
        ],
    );
}

#[test]
fn coder_alias_runs_a_coder_module() {
    let tf = Tf::new(
        r#"
terraform {
  required_providers {
    coder = {
      source  = "coder/coder"
      version = ">= 2.0"
    }
  }
}
provider "coder" {
  feature_use_managed_variables = true
  url                           = "http://from-config:2"
}
data "coder_workspace" "me" {}
data "coder_workspace_owner" "me" {}
data "coder_parameter" "size" {
  name    = "size"
  type    = "number"
  default = 1
}
resource "coder_agent" "main" {
  os   = "linux"
  arch = "amd64"
}
resource "coder_app" "app" {
  agent_id = coder_agent.main.id
  slug     = "app"
  command  = "htop"
}
resource "coder_metadata" "m" {
  resource_id = coder_agent.main.id
  item {
    key   = "k"
    value = "v"
  }
}
resource "coder_script" "s" {
  agent_id     = coder_agent.main.id
  display_name = "s"
  script       = "true"
  cron         = "0 0 * * * *"
}
resource "coder_env" "e" {
  agent_id = coder_agent.main.id
  name     = "X"
  value    = "1"
}
resource "coder_external_agent" "x" {
  agent_id = coder_agent.main.id
}
output "start_count" { value = data.coder_workspace.me.start_count }
output "owner" { value = data.coder_workspace_owner.me.name }
output "size" { value = data.coder_parameter.size.value }
output "init" { value = coder_agent.main.init_script }
"#,
    );
    let size = parameter_env_name("size").replace("HANGAR_", "CODER_");
    tf.apply(&env(&[
        ("CODER_WORKSPACE_TRANSITION", "start"),
        ("CODER_WORKSPACE_OWNER", "carol"),
        (&size, "3"),
        ("CODER_AGENT_SCRIPT_linux_amd64", "run ${ACCESS_URL}"),
        ("CODER_AGENT_URL", "http://c:1"),
    ]));
    let out = tf.outputs();
    assert_eq!(out["start_count"], 1);
    assert_eq!(out["owner"], "carol");
    assert_eq!(out["size"], "3");
    // The provider block's url wins over the environment.
    assert_eq!(out["init"], "run http://from-config:2/");
    let token = tf.resource("coder_agent", "main")["token"].clone();
    assert_eq!(token.as_str().map(str::len), Some(64));
    tf.ok(&["destroy", "-auto-approve"], &[]);
}

#[test]
fn built_in_templates_validate_and_the_local_one_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let external = Tf::new(&std::fs::read_to_string(root.join("external/main.tf")).unwrap());
    external.ok(&["validate", "-no-color"], &[]);

    let local = Tf::new(&std::fs::read_to_string(root.join("local/main.tf")).unwrap());
    local.ok(&["validate", "-no-color"], &[]);

    // Start, stop and delete it for real; the init script is empty (no server), which
    // the template must tolerate.
    let base = tempfile::tempdir().unwrap();
    let base_path = base.path().to_str().unwrap();
    let mut run_env = env(&[
        ("HANGAR_WORKSPACE_NAME", "ws"),
        ("HANGAR_WORKSPACE_OWNER_NAME", "alice"),
    ]);
    run_env.push(param("home_base", base_path));
    let home = base.path().join("alice/ws");
    local.apply(&run_env);
    assert!(home.is_dir(), "home directory created");
    assert!(
        !home.join(".hangar/agent.pid").exists(),
        "no agent without a script"
    );

    // With an init script, the agent process runs with the token in its environment.
    let mut with_script = run_env.clone();
    with_script.push((
        agent_script_env_name("linux", "amd64"),
        "echo \"$HANGAR_AGENT_TOKEN\" > token.txt; exec sleep 600".into(),
    ));
    local.apply(&with_script);
    let pid = std::fs::read_to_string(home.join(".hangar/agent.pid")).expect("pidfile");
    let token = local.resource("hangar_agent", "main")["token"].clone();
    let seen = wait_for_file(&home.join("token.txt"));
    assert_eq!(seen.trim(), token.as_str().unwrap());
    assert!(
        Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "agent running"
    );

    let mut stop = with_script.clone();
    stop.push(("HANGAR_WORKSPACE_TRANSITION".into(), "stop".into()));
    local.apply(&stop);
    assert!(home.is_dir(), "the home directory is persistent");
    assert!(
        !home.join(".hangar/agent.pid").exists(),
        "the agent is ephemeral"
    );
    assert!(
        !process_alive(pid.trim()),
        "agent process {pid} was stopped"
    );

    local.ok(&["destroy", "-auto-approve"], &run_env);
    assert!(!home.exists(), "deleting the workspace removes its home");
}

fn process_alive(pid: &str) -> bool {
    // A killed child of an exited parent may linger as a zombie until reaped by init.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z "))
        .unwrap_or(false)
}

fn wait_for_file(path: &Path) -> String {
    // The agent process starts in the background; give it a moment to write.
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.is_empty() {
                return text;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("{} was never written", path.display());
}

#[test]
fn checked_in_schema_is_current() {
    let tf = Tf::new(HANGAR_PROVIDER);
    let text = tf.ok(&["providers", "schema", "-json"], &[]);
    let schema: Value = serde_json::from_str(&text).expect("schema json");
    let fresh = serde_json::to_string_pretty(&schema).unwrap() + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("provider-schemas/hangar.json");
    if std::env::var_os("HANGAR_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == fresh,
        "{} is out of date with the provider's schema.\n\
         Regenerate it with:  HANGAR_UPDATE_SCHEMA=1 cargo test --test provider checked_in_schema_is_current\n\
         and commit the result.",
        path.display()
    );
}

#[test]
fn install_command_lays_out_a_mirror_and_explains_it() {
    let dir = tempfile::tempdir().unwrap();
    let text = hangar::provider::install_command(dir.path()).unwrap();
    let dir = dir.path().canonicalize().unwrap();
    let version = env!("CARGO_PKG_VERSION");
    let platform = mirror::platform();
    let binary = dir.join(format!(
        "registry.terraform.io/hangar/hangar/{version}/{platform}/terraform-provider-hangar_v{version}"
    ));
    assert!(binary.exists(), "{} missing", binary.display());
    assert!(dir
        .join(format!(
            "registry.terraform.io/coder/coder/2.99.0/{platform}/terraform-provider-coder_v2.99.0"
        ))
        .exists());
    assert!(text.contains(&binary.display().to_string()), "{text}");
    assert!(text.contains("filesystem_mirror"), "{text}");
    assert!(text.contains("TF_CLI_CONFIG_FILE"), "{text}");
    let rc = std::fs::read_to_string(dir.join("terraform.rc")).unwrap();
    assert!(
        rc.contains(&format!("{:?}", dir.display().to_string())),
        "{rc}"
    );
}

/// Every type Coder's provider has that Hangar's first wave lacked, written as a Coder
/// template writes them (`coder_…`), read and applied with the build's environment.
#[test]
fn coder_types_added_for_parity() {
    let tf = Tf::new(
        r#"
terraform {
  required_providers {
    coder = { source = "coder/coder" }
  }
}
data "coder_provisioner" "me" {}
data "coder_workspace" "me" {}
data "coder_workspace_owner" "me" {}
data "coder_workspace_tags" "t" {
  tags = { "cluster" = "eu-1", "os" = data.coder_provisioner.me.os }
}
data "coder_external_auth" "github" {
  id       = "github"
  optional = true
}
data "coder_task" "t" {}
data "coder_secret" "npm" {
  env          = "NPM_TOKEN"
  help_message = "Add an npm token"
}
data "coder_workspace_preset" "big" {
  name        = "Big"
  description = "Eight cores"
  default     = true
  parameters  = { "cpu" = "8" }
  prebuilds {
    instances = 2
    expiration_policy { ttl = 86400 }
    scheduling {
      timezone = "UTC"
      schedule {
        cron      = "* 8-18 * * 1-5"
        instances = 3
      }
    }
  }
}
resource "coder_agent" "dev" {
  os            = data.coder_provisioner.me.os
  arch          = data.coder_provisioner.me.arch
  api_key_scope = "no_user_data"
}
resource "coder_app" "chat" {
  agent_id = coder_agent.dev.id
  slug     = "chat"
  url      = "http://localhost:3284"
  tooltip  = "Talk to the **agent**"
}
resource "coder_ai_task" "t" {
  app_id = coder_app.chat.id
}
resource "coder_devcontainer" "dc" {
  agent_id         = coder_agent.dev.id
  workspace_folder = "/workspaces/project"
}
resource "coder_agent_instance" "i" {
  agent_id    = coder_agent.dev.id
  instance_id = "i-123"
}
resource "coder_env" "path1" {
  agent_id       = coder_agent.dev.id
  name           = "PATH"
  value          = "/opt/a/bin"
  merge_strategy = "append"
}
resource "coder_metadata" "m" {
  resource_id = coder_agent.dev.id
  item {
    key = "empty"
  }
  item {
    key   = "full"
    value = "x"
  }
}
output "os" { value = data.coder_provisioner.me.os }
output "provisioner" { value = data.coder_provisioner.me.id }
output "tags" { value = data.coder_workspace_tags.t.tags }
output "token" {
  value     = data.coder_external_auth.github.access_token
  sensitive = true
}
output "task" { value = [data.coder_task.t.enabled, data.coder_task.t.prompt] }
output "secret" {
  value     = data.coder_secret.npm.value
  sensitive = true
}
output "preset" { value = data.coder_workspace_preset.big.id }
output "claim" { value = [data.coder_workspace.me.is_prebuild, data.coder_workspace.me.is_prebuild_claim, data.coder_workspace.me.prebuild_count] }
output "login" { value = data.coder_workspace_owner.me.login_type }
output "roles" { value = data.coder_workspace_owner.me.rbac_roles }
"#,
    );
    let env = |k: &str, v: &str| (k.to_string(), v.to_string());
    let build_env = [
        env("CODER_PROVISIONER_ID", "ignored: Hangar's name wins"),
        env("HANGAR_PROVISIONER_ID", "worker-7"),
        env("CODER_EXTERNAL_AUTH_ACCESS_TOKEN_github", "gho_abc"),
        env("CODER_TASK_ID", "5f1e0c0a-3a6f-4c0e-9a53-0c1d2e3f4a5b"),
        env("CODER_TASK_PROMPT", "fix the bug"),
        env("CODER_SECRET_ENV_NPM_TOKEN", "npm_x"),
        env("CODER_WORKSPACE_IS_PREBUILD_CLAIM", "true"),
        env("CODER_WORKSPACE_IS_PREBUILD", "true"),
        env("CODER_WORKSPACE_OWNER_LOGIN_TYPE", "password"),
        env(
            "CODER_WORKSPACE_OWNER_RBAC_ROLES",
            r#"[{"name":"member","org_id":""}]"#,
        ),
    ];
    tf.ok(&["apply", "-auto-approve", "-no-color"], &build_env);
    let out = tf.outputs();
    assert_eq!(out["os"], std::env::consts::OS);
    assert_eq!(out["provisioner"], "worker-7");
    assert_eq!(out["tags"]["cluster"], "eu-1");
    assert_eq!(out["tags"]["os"], std::env::consts::OS);
    assert_eq!(out["token"], "gho_abc");
    assert_eq!(out["task"], serde_json::json!([true, "fix the bug"]));
    assert_eq!(out["secret"], "npm_x");
    assert_eq!(out["preset"], "Big");
    assert_eq!(
        out["claim"],
        serde_json::json!([false, true, 0]),
        "a claim is never also a prebuild"
    );
    assert_eq!(out["login"], "password");
    assert_eq!(out["roles"][0]["name"], "member");

    let agent = tf.resource("coder_agent", "dev");
    assert_eq!(agent["api_key_scope"], "no_user_data");
    let app = tf.resource("coder_app", "chat");
    assert_eq!(
        app["display_name"], "chat",
        "display_name defaults to the slug"
    );
    assert_eq!(
        (app["hidden"].clone(), app["external"].clone()),
        (false.into(), false.into())
    );
    let task = tf.resource("coder_ai_task", "t");
    assert_eq!(task["app_id"], app["id"]);
    assert_eq!(task["enabled"], true);
    let dc = tf.resource("coder_devcontainer", "dc");
    assert!(dc["subagent_id"].as_str().is_some_and(|s| s.len() == 36));
    assert_eq!(
        tf.resource("coder_env", "path1")["merge_strategy"],
        "append"
    );
    let items = &tf.resource("coder_metadata", "m")["item"];
    assert_eq!(items[0]["is_null"], true);
    assert_eq!(items[1]["is_null"], false);
    // A second plan changes nothing: computed values are stable.
    let plan = tf.ok(&["plan", "-no-color"], &build_env);
    assert!(plan.contains("No changes"), "{plan}");
}

#[test]
fn coder_rules_for_new_types() {
    let tf = Tf::new(&format!(
        r#"{HANGAR_PROVIDER}
data "hangar_workspace_preset" "bad" {{
  name       = "Bad"
  parameters = {{ "cpu" = "" }}
  prebuilds {{
    instances = 1
    expiration_policy {{ ttl = 60 }}
  }}
}}
data "hangar_workspace_preset" "overlap" {{
  name = "Overlap"
  prebuilds {{
    instances = 1
    scheduling {{
      timezone = "Mars/Olympus"
      schedule {{
        cron      = "* 8-12 * * 1-5"
        instances = 1
      }}
    }}
  }}
}}
data "hangar_workspace_preset" "cron" {{
  name = "Cron"
  prebuilds {{
    instances = 1
    scheduling {{
      timezone = "UTC"
      schedule {{
        cron      = "0 8 * * *"
        instances = 1
      }}
    }}
  }}
}}
data "hangar_workspace_preset" "twice" {{
  name = "Twice"
  prebuilds {{
    instances = 1
    scheduling {{
      timezone = "UTC"
      schedule {{
        cron      = "* 8-12 * * 1-5"
        instances = 1
      }}
      schedule {{
        cron      = "* 12-14 * * 5"
        instances = 2
      }}
    }}
  }}
}}
data "hangar_secret" "both" {{
  env          = "A"
  file         = "/a"
  help_message = "x"
}}
data "hangar_secret" "relative" {{
  file         = "a/b"
  help_message = "x"
}}
resource "hangar_agent" "scoped" {{
  os            = "linux"
  arch          = "amd64"
  api_key_scope = "some"
}}
resource "hangar_agent" "a" {{
  os   = "linux"
  arch = "amd64"
}}
resource "hangar_app" "ext" {{
  agent_id = hangar_agent.a.id
  slug     = "ext"
  url      = "https://example.com"
  external = true
  share    = "public"
}}
resource "hangar_app" "cmd" {{
  agent_id  = hangar_agent.a.id
  slug      = "cmd"
  command   = "top"
  subdomain = true
}}
resource "hangar_env" "e" {{
  agent_id       = hangar_agent.a.id
  name           = "X"
  merge_strategy = "sideways"
}}
"#
    ));
    let text = tf.fail(&["plan", "-no-color"], &[]);
    assert_contains(
        &text,
        &[
            r#"parameter "cpu" has an empty value"#,
            "ttl 60 must be 0 or between 3600",
            r#"timezone "Mars/Olympus" is not an IANA time zone"#,
            "the minute field must be *",
            "overlap",
            "exactly one of env and file must be set",
            r#"file "a/b" must start with ~/ or /"#,
            r#"api_key_scope "some" is not one of all, no_user_data"#,
            "external conflicts with share",
            "command conflicts with subdomain",
            r#"merge_strategy "sideways" is not one of replace, append, prepend, error"#,
        ],
    );
}
