//! `hangar_devcontainer` (a Dev Container the agent starts) and `hangar_agent_instance`
//! (a cloud instance an agent authenticates as): both belong to an agent.

use tf_provider::schema::Schema;
use tf_provider::Diagnostics;

use super::common::{
    attr_error, block, computed, get_str, new_id, optional, required, s, schema, string, Obj,
    ResourceSpec,
};

pub struct Devcontainer;

impl ResourceSpec for Devcontainer {
    fn schema(&self) -> Schema {
        schema(block(
            "A Dev Container the agent starts (with the `devcontainer` CLI and Docker) in `workspace_folder`.",
            vec![
                ("agent_id", required(string(), "The `id` of the `hangar_agent`.")),
                ("workspace_folder", required(string(), "The folder holding the project (and its `.devcontainer`).")),
                ("config_path", optional(string(), "Path of `devcontainer.json`, when not the default.")),
                ("subagent_id", computed(string(), "ID of the agent inside the container, once it runs.")),
                ("id", computed(string(), "ID of this resource.")),
            ],
        ))
    }

    fn validate(&self, config: &Obj, diags: &mut Diagnostics) {
        if get_str(config, "workspace_folder") == Some("") {
            attr_error(
                diags,
                "workspace_folder",
                "workspace_folder must not be empty".into(),
            );
        }
    }

    fn force_new(&self) -> &'static [&'static str] {
        &["agent_id", "workspace_folder", "config_path"]
    }

    fn computed(&self) -> &'static [&'static str] {
        &["id", "subagent_id"]
    }

    fn create(&self, state: &mut Obj) {
        state.insert("id".into(), s(new_id()));
        state.insert("subagent_id".into(), s(new_id()));
    }
}

pub struct AgentInstance;

impl ResourceSpec for AgentInstance {
    fn schema(&self) -> Schema {
        schema(block(
            "Ties an agent to a cloud instance, for agents that authenticate by instance identity.",
            vec![
                (
                    "agent_id",
                    required(string(), "The `id` of the `hangar_agent`."),
                ),
                (
                    "instance_id",
                    required(string(), "The instance's id at its cloud."),
                ),
                ("id", computed(string(), "ID of this resource.")),
            ],
        ))
    }

    fn force_new(&self) -> &'static [&'static str] {
        &["agent_id", "instance_id"]
    }
}
