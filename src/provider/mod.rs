//! Hangar's Terraform provider, served by this same binary when terraform starts it.
//!
//! Terraform finds the binary through a filesystem mirror ([`mirror`]) under two source
//! addresses: `hangar/hangar` (types `hangar_*`) and `coder/coder` (types `coder_*`, the
//! same implementation), so a Coder template's `coder_…` blocks run unchanged. Which
//! prefix a process serves is decided from the name terraform started it under.
//!
//! The runner talks to the provider only through environment variables, all named in
//! [`contract`]. What is and is not supported is listed in `src/provider/README.md`.
//!
//! Every type is a small "spec" (schema + a few hooks) in its own file; [`common`] adapts
//! specs to `tf-provider`'s traits and keeps the plan/apply rules in one place.

pub mod contract;
pub mod mirror;

mod agent;
mod app;
mod common;
mod devcontainer;
mod env;
mod external_agent;
mod external_auth;
mod metadata;
mod parameter;
mod provisioner;
mod script;
mod secret;
mod task;
mod workspace;
mod workspace_owner;
mod workspace_preset;
mod workspace_tags;

pub use agent::AUTHS as AGENT_AUTHS;
pub use env::MERGE_STRATEGIES;

use std::collections::HashMap;
use std::path::Path;
use std::sync::RwLock;

use anyhow::Context;
use async_trait::async_trait;
use tf_provider::schema::{AttributeType, Block, Description, Schema};
use tf_provider::value::{ValueAny, ValueEmpty};
use tf_provider::{map, Diagnostics, DynamicDataSource, DynamicResource, Provider};

pub use contract::{agent_script_env_name, parameter_env_name, previous_parameter_env_name};

use common::{optional, Data, Res};

/// Set by terraform (go-plugin) when it starts a provider plugin.
pub const MAGIC_COOKIE_ENV: &str = "TF_PLUGIN_MAGIC_COOKIE";

/// Overrides the type prefix (`hangar` or `coder`) a provider process serves; normally
/// it is read from the executable's name (`terraform-provider-<prefix>_v…`).
pub const PREFIX_OVERRIDE_ENV: &str = "HANGAR_PROVIDER_PREFIX";

/// The server URL from the provider block (`provider "hangar" { url = … }`), which wins
/// over the environment. One provider configuration per process, so a global suffices.
static CONFIGURED_URL: RwLock<Option<String>> = RwLock::new(None);

/// Where the Hangar server is, as templates see it in `access_url`.
pub(crate) fn access_url() -> String {
    if let Some(url) = CONFIGURED_URL.read().ok().and_then(|u| u.clone()) {
        return url;
    }
    contract::lookup_non_empty(contract::URL).unwrap_or_else(|| "http://localhost:3000".into())
}

/// The type prefix this process serves: terraform runs the mirror entry
/// `terraform-provider-coder_v2.99.0` for `coder/coder`, and that name survives as argv[0]
/// (the symlink, not its target).
fn served_prefix() -> String {
    if let Ok(prefix) = std::env::var(PREFIX_OVERRIDE_ENV) {
        return prefix;
    }
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let file = Path::new(&argv0)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    if file.starts_with("terraform-provider-coder") {
        "coder".into()
    } else {
        "hangar".into()
    }
}

struct HangarProvider;

#[async_trait]
impl Provider for HangarProvider {
    type Config<'a> = ValueAny;
    type MetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        let mut url = optional(
            AttributeType::String,
            "The URL of the Hangar server. Defaults to HANGAR_URL (or CODER_AGENT_URL).",
        );
        url.description = Description::markdown(
            "The URL of the Hangar server. Defaults to `HANGAR_URL` (or `CODER_AGENT_URL`).",
        );
        let mut managed = optional(
            AttributeType::Bool,
            "Accepted and ignored, so Coder templates that set it still load.",
        );
        managed.deprecated = true;
        Some(Schema {
            version: 1,
            block: Block {
                description: Description::plain(
                    "Hangar's provider: workspace context, parameters and agents.",
                ),
                attributes: map! {
                    "url" => url,
                    "feature_use_managed_variables" => managed,
                },
                ..Default::default()
            },
        })
    }

    async fn configure<'a>(
        &self,
        _diags: &mut Diagnostics,
        _terraform_version: String,
        config: Self::Config<'a>,
    ) -> Option<()> {
        if let ValueAny::Map(config) = config {
            if let Some(ValueAny::String(url)) = config.get("url") {
                if let Ok(mut slot) = CONFIGURED_URL.write() {
                    *slot = Some(url.clone());
                }
            }
        }
        Some(())
    }

    fn get_resources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicResource>>> {
        Some(map! {
            "agent" => Res(agent::Agent),
            "external_agent" => Res(external_agent::ExternalAgent),
            "app" => Res(app::App),
            "metadata" => Res(metadata::Metadata),
            "script" => Res(script::Script),
            "env" => Res(env::Env),
            "devcontainer" => Res(devcontainer::Devcontainer),
            "agent_instance" => Res(devcontainer::AgentInstance),
            "ai_task" => Res(task::AiTask),
        })
    }

    fn get_data_sources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicDataSource>>> {
        Some(map! {
            "workspace" => Data(workspace::Workspace),
            "workspace_owner" => Data(workspace_owner::WorkspaceOwner),
            "parameter" => Data(parameter::Parameter),
            "provisioner" => Data(provisioner::Provisioner),
            "workspace_preset" => Data(workspace_preset::WorkspacePreset),
            "workspace_tags" => Data(workspace_tags::WorkspaceTags),
            "external_auth" => Data(external_auth::ExternalAuth),
            "task" => Data(task::Task),
            "secret" => Data(secret::Secret),
        })
    }
}

/// Serves the provider until terraform is done with it.
pub fn serve_blocking() -> anyhow::Result<()> {
    // tf-provider appends a backtrace to every diagnostic when backtraces are on (a
    // developer's RUST_BACKTRACE=1); template authors should see only the message. Set
    // before any thread exists, so nothing races the environment write.
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    // One thread is plenty: requests are tiny and terraform runs several providers.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the provider's runtime")?;
    runtime
        .block_on(tf_provider::serve(served_prefix(), HangarProvider))
        .context("serving the Terraform plugin protocol")
}

/// `hangar provider install DIR`: lays this binary out as a filesystem mirror in `dir`
/// and returns what to print: where it went and the CLI configuration to use it.
pub fn install_command(dir: &Path) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    let exe = std::env::current_exe().context("locating the running hangar binary")?;
    let made = mirror::install(&dir, &exe)?;
    let mut out = String::from("Installed Hangar's Terraform provider:\n");
    for path in &made {
        out.push_str(&format!("  {}\n", path.display()));
    }
    let config_path = dir.join("terraform.rc");
    let config = mirror::cli_config(&dir, None);
    std::fs::write(&config_path, &config)
        .with_context(|| format!("writing {}", config_path.display()))?;
    out.push_str(&format!(
        "\nTo use it with plain terraform, point TF_CLI_CONFIG_FILE at the config written to\n  {}\n\n  export TF_CLI_CONFIG_FILE={}\n\nor add this to your ~/.terraformrc:\n\n{config}",
        config_path.display(),
        config_path.display(),
    ));
    out.push_str(
        "\nThen declare the provider in your template:\n\n  terraform {\n    required_providers {\n      hangar = { source = \"hangar/hangar\" }\n    }\n  }\n",
    );
    Ok(out)
}
