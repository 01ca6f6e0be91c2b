//! Coder templates run unchanged: a template in the style of Coder's starters (pinned to
//! an exact `coder/coder` version, with a Terraform variable, presets, tags, external
//! auth, the provisioner, env merging and resource monitoring) imports, and workspaces are
//! created from its presets through the API and the CLI.

mod common;

use std::collections::BTreeMap;

use common::*;
use hangar::client::ClientError;
use hangar::db::Database;
use hangar::model::JobStatus;
use hangar::wire::workspaces::CreateWorkspaceRequest;
use reqwest::StatusCode;

const STARTER: &str = r#"
terraform {
  required_providers {
    coder = {
      source  = "coder/coder"
      version = "2.4.1"
    }
  }
}

variable "region" {
  type        = string
  description = "Where workspaces run; set at push."
}

data "coder_provisioner" "me" {}
data "coder_workspace" "me" {}
data "coder_workspace_owner" "me" {}

data "coder_workspace_tags" "placement" {
  tags = { "region" = var.region }
}

data "coder_external_auth" "github" {
  id       = "github"
  optional = true
}

data "coder_parameter" "cpu" {
  name    = "cpu"
  type    = "number"
  default = 2
  mutable = true
}

data "coder_parameter" "image" {
  name    = "image"
  default = "ubuntu"
}

data "coder_workspace_preset" "big" {
  name        = "Big"
  description = "Eight cores"
  default     = true
  parameters  = { "cpu" = "8", "gone" = "kept for older versions" }
}

data "coder_workspace_preset" "small" {
  name       = "Small"
  parameters = { "cpu" = "1", "image" = "alpine" }
}

resource "coder_agent" "dev" {
  os   = data.coder_provisioner.me.os
  arch = data.coder_provisioner.me.arch
  env  = { "PATH" = "/usr/bin" }
  resources_monitoring {
    memory {
      enabled   = true
      threshold = 90
    }
  }
}

resource "coder_env" "tools" {
  agent_id       = coder_agent.dev.id
  name           = "PATH"
  value          = "/opt/tools/bin"
  merge_strategy = "append"
}

resource "coder_env" "sdk" {
  agent_id       = coder_agent.dev.id
  name           = "PATH"
  value          = "/opt/sdk/bin"
  merge_strategy = "append"
}

resource "terraform_data" "box" {
  count = data.coder_workspace.me.start_count
  input = {
    cpu         = data.coder_parameter.cpu.value
    region      = var.region
    provisioner = data.coder_provisioner.me.id
    roles       = data.coder_workspace_owner.me.rbac_roles[0].name
  }
}
"#;

async fn push_starter(app: &TestApp, variables: &[&str]) -> (bool, String) {
    let dir = template_dir(&[("main.tf", STARTER)]);
    let mut args = vec![
        "templates",
        "push",
        "starter",
        "-d",
        dir.path().to_str().unwrap(),
    ];
    for v in variables {
        args.extend(["--variable", v]);
    }
    let out = app.cli(&args).await;
    (
        out.status.success(),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

fn create(name: &str, preset: Option<&str>, params: &[(&str, &str)]) -> CreateWorkspaceRequest {
    CreateWorkspaceRequest {
        name: name.into(),
        template: "starter".into(),
        preset: preset.map(str::to_string),
        parameters: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_coder_starter_template_runs_unchanged() {
    let app = spawn_app().await;

    // Without its variable, terraform says which one is missing.
    let (ok, text) = push_starter(&app, &[]).await;
    assert!(!ok, "{text}");
    assert!(text.contains("region"), "{text}");

    // With it, the exact pin on coder/coder is served and the import records what the
    // template declares.
    let (ok, text) = push_starter(&app, &["region=eu-1"]).await;
    assert!(ok, "{text}");
    let versions = app.client.template_versions("starter").await.unwrap();
    let v = versions
        .iter()
        .find(|v| v.active)
        .expect("an active version");
    let names: Vec<(&str, bool)> = v
        .presets
        .iter()
        .map(|p| (p.name.as_str(), p.default))
        .collect();
    assert_eq!(names, [("Big", true), ("Small", false)]);
    assert_eq!(v.tags.get("region").map(String::as_str), Some("eu-1"));
    assert_eq!(v.external_auth.len(), 1);
    assert_eq!(
        (v.external_auth[0].id.as_str(), v.external_auth[0].optional),
        ("github", true)
    );
    assert_eq!(v.variables, ["region"], "names only: values may be secret");
    // The first push's init published it (its plan then failed on the variable).
    let mut published = false;
    for pushed in &versions {
        let logs = app
            .client
            .job_logs(&pushed.job.as_ref().unwrap().id, 0, false)
            .await
            .unwrap();
        published |= logs
            .logs
            .iter()
            .any(|l| l.text.contains("need version 2.4.1"));
    }
    assert!(published, "the pinned version was published");

    // A preset's values apply; the rest stay the user's (defaults here).
    let ws = app
        .client
        .create_workspace(&create("small", Some("Small"), &[]))
        .await
        .unwrap();
    let build = app
        .client
        .follow_job(&ws.latest_build.job.id, |_| {})
        .await
        .unwrap();
    assert_eq!(build.status, JobStatus::Succeeded, "{:?}", build.error);
    let ws = app.client.workspace("small").await.unwrap();
    let want: BTreeMap<String, String> = [("cpu", "1"), ("image", "alpine")]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
    assert_eq!(ws.latest_build.parameters, want);

    // Two coder_env appending to PATH give one joined value, after the agent's own.
    let db = Database::connect(&app.db_url).await.unwrap();
    let agents = db.list_agents(&ws.latest_build.id).await.unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&agents[0].manifest).unwrap();
    assert_eq!(
        manifest["env"]["PATH"],
        "/usr/bin:/opt/sdk/bin:/opt/tools/bin"
    );
    assert_eq!(manifest["resources_monitoring"]["memory"]["threshold"], 90);
    db.close().await;

    // A value the preset sets cannot be given differently; an unknown preset is named.
    let err = app
        .client
        .create_workspace(&create("clash", Some("Small"), &[("cpu", "4")]))
        .await
        .unwrap_err();
    let ClientError::Api { status, body } = &err else {
        panic!("{err}")
    };
    assert_eq!(*status, StatusCode::BAD_REQUEST);
    assert_eq!(body.validations[0].field, "parameter.cpu", "{err}");
    let err = app
        .client
        .create_workspace(&create("nope", Some("Huge"), &[]))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("has no preset \"Huge\": it has Big, Small"),
        "{err}"
    );

    // The CLI takes the default preset unless told otherwise.
    let out = app
        .cli(&["create", "-t", "starter", "cli-default", "-y"])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Using preset \"Big\""),
        "{}",
        stderr(&out)
    );
    let ws = app.client.workspace("cli-default").await.unwrap();
    assert_eq!(ws.latest_build.parameters["cpu"], "8");
    let out = app
        .cli(&[
            "create", "-t", "starter", "cli-none", "--preset", "none", "-y",
        ])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let ws = app.client.workspace("cli-none").await.unwrap();
    assert_eq!(ws.latest_build.parameters["cpu"], "2");
    let out = app
        .cli(&[
            "create",
            "-t",
            "starter",
            "cli-small",
            "--preset",
            "Small",
            "-y",
        ])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let ws = app.client.workspace("cli-small").await.unwrap();
    assert_eq!(ws.latest_build.parameters["image"], "alpine");
    // A value given for a parameter the default preset sets: that preset steps aside.
    let out = app
        .cli(&[
            "create",
            "-t",
            "starter",
            "cli-own",
            "--parameter",
            "cpu=4",
            "-y",
        ])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("Not using the template's default preset \"Big\": you set cpu differently"),
        "{}",
        stderr(&out)
    );
    let ws = app.client.workspace("cli-own").await.unwrap();
    assert_eq!(ws.latest_build.parameters["cpu"], "4");
    let list = app.cli(&["templates", "versions", "list", "starter"]).await;
    assert!(
        stdout(&list).contains("Big (default), Small"),
        "{}",
        stdout(&list)
    );

    app.stop().await;
}

#[tokio::test]
async fn refusals_name_the_preset_problem_at_import() {
    let app = spawn_app().await;
    let dir = template_dir(&[(
        "main.tf",
        &format!(
            "{PROVIDER}
data \"hangar_workspace_preset\" \"a\" {{
  name    = \"Same\"
  default = true
}}
data \"hangar_workspace_preset\" \"b\" {{
  name    = \"Same\"
  default = true
}}
"
        ),
    )]);
    let out = app
        .cli(&[
            "templates",
            "push",
            "twice",
            "-d",
            dir.path().to_str().unwrap(),
        ])
        .await;
    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(text.contains("two presets are named \"Same\""), "{text}");
    // A preset value its parameter does not take is refused at push, not at create.
    let dir = template_dir(&[(
        "main.tf",
        &format!(
            "{PROVIDER}
data \"hangar_parameter\" \"size\" {{
  name    = \"size\"
  default = \"small\"
  option {{
    name  = \"Small\"
    value = \"small\"
  }}
}}
data \"hangar_workspace_preset\" \"huge\" {{
  name       = \"Huge\"
  parameters = {{ \"size\" = \"huge\", \"gone\" = \"allowed\" }}
}}
"
        ),
    )]);
    let out = app
        .cli(&[
            "templates",
            "push",
            "huge",
            "-d",
            dir.path().to_str().unwrap(),
        ])
        .await;
    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(
        text.contains("preset \"Huge\" sets a value its parameter does not take")
            && text.contains("huge"),
        "{text}"
    );
    app.stop().await;
}

/// An agent with instance-identity auth is accepted by the provider and refused, with
/// the reason and the fix, when its init script runs.
#[tokio::test]
async fn instance_identity_auth_is_refused_at_connect_with_a_reason() {
    let app = spawn_app().await;
    let (os, arch) = hangar::model::this_platform();
    let script = reqwest::get(format!("{}/api/v2/init-script/{os}/{arch}", app.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        // What the provider does for `auth = "aws-instance-identity"`.
        .replace("${AUTH_TYPE}", "aws-instance-identity");
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env_remove("HANGAR_AGENT_TOKEN")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("agent auth \\\"aws-instance-identity\\\" is not supported on this server")
            && err.contains("set auth = \\\"token\\\""),
        "{err}"
    );
    app.stop().await;
}

/// Coder's refusals come at push, each naming the addresses and the fix.
#[tokio::test]
async fn a_push_names_each_template_mistake() {
    let app = spawn_app().await;
    let dir = template_dir(&[(
        "main.tf",
        &format!(
            "{PROVIDER}
data \"hangar_parameter\" \"a\" {{
  name    = \"region\"
  default = \"eu\"
}}
data \"hangar_parameter\" \"b\" {{
  name    = \"region\"
  default = \"us\"
}}
resource \"hangar_agent\" \"my_box\" {{
  os   = \"linux\"
  arch = \"amd64\"
}}
resource \"hangar_agent\" \"main\" {{
  os   = \"linux\"
  arch = \"amd64\"
}}
resource \"hangar_app\" \"one\" {{
  agent_id = hangar_agent.main.id
  slug     = \"web\"
  url      = \"http://localhost:1\"
}}
resource \"hangar_app\" \"two\" {{
  agent_id = hangar_agent.main.id
  slug     = \"web\"
  url      = \"http://localhost:2\"
}}
resource \"terraform_data\" \"disk\" {{}}
resource \"hangar_metadata\" \"x\" {{
  resource_id = terraform_data.disk.id
  item {{
    key   = \"size\"
    value = \"1\"
  }}
}}
resource \"hangar_metadata\" \"y\" {{
  resource_id = terraform_data.disk.id
  item {{
    key   = \"kind\"
    value = \"ssd\"
  }}
}}
"
        ),
    )]);
    let out = app
        .cli(&[
            "templates",
            "push",
            "wrong",
            "-d",
            dir.path().to_str().unwrap(),
        ])
        .await;
    assert!(!out.status.success());
    let text = stderr(&out);
    for expected in [
        "parameter \"region\" is declared 2 times (data.hangar_parameter.a, data.hangar_parameter.b)",
        "agent name \"my_box\" (hangar_agent.my_box) contains underscores",
        "rename the resource to \"my-box\"",
        "apps hangar_app.one and hangar_app.two share the slug \"web\" on agent hangar_agent.main",
        "hangar_metadata.x and hangar_metadata.y all describe terraform_data.disk",
    ] {
        assert!(text.contains(expected), "{expected:?} missing in:\n{text}");
    }
    app.stop().await;
}

/// Metadata without a `resource_id` describes the resource it depends on, as in Coder.
#[tokio::test]
async fn metadata_without_a_resource_id_describes_what_it_depends_on() {
    let app = spawn_app().await;
    push_files(
        &app,
        "meta",
        &[(
            "main.tf",
            &format!(
                "{PROVIDER}
resource \"terraform_data\" \"disk\" {{
  input = \"10GB\"
}}
resource \"hangar_metadata\" \"about\" {{
  daily_cost = 4
  item {{
    key   = \"size\"
    value = terraform_data.disk.output
  }}
}}
"
            ),
        )],
    )
    .await;
    let ws = create_built(
        &app.client,
        &CreateWorkspaceRequest {
            name: "m".into(),
            template: "meta".into(),
            ..Default::default()
        },
    )
    .await;
    let disk = ws
        .resources
        .iter()
        .find(|r| r.address == "terraform_data.disk")
        .expect("the disk");
    assert_eq!(disk.daily_cost, 4);
    assert_eq!(disk.metadata[0].key, "size");
    assert_eq!(disk.metadata[0].value.as_deref(), Some("10GB"));
    app.stop().await;
}
