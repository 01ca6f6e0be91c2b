//! `hangar_env`: one environment variable for an agent's sessions and scripts (an
//! alternative to the agent's `env` map that modules can add to).

use tf_provider::schema::Schema;
use tf_provider::Diagnostics;

use tf_provider::value::ValueAny;

use super::common::{
    attr_error, block, computed, defaulted, get_str, optional, required, s, schema, string, Obj,
    ResourceSpec,
};

pub const MERGE_STRATEGIES: &[&str] = &["replace", "append", "prepend", "error"];

pub struct Env;

impl ResourceSpec for Env {
    fn schema(&self) -> Schema {
        schema(block(
            "An environment variable set in an agent's sessions and scripts.",
            vec![
                (
                    "agent_id",
                    required(string(), "The `id` of the `hangar_agent`."),
                ),
                ("name", required(string(), "Variable name.")),
                ("value", optional(string(), "Variable value.")),
                (
                    "merge_strategy",
                    defaulted(string(), "When several `hangar_env` set the same name: `replace` (default; the last by address wins), `append` or `prepend` (joined with `:`, in address order), or `error` (the build fails)."),
                ),
                ("id", computed(string(), "ID of this resource.")),
            ],
        ))
    }

    fn validate(&self, config: &Obj, diags: &mut Diagnostics) {
        if let Some(name) = get_str(config, "name") {
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                attr_error(diags, "name", format!("environment variable name \"{name}\" must be letters, digits and _, not starting with a digit"));
            }
        }
        if let Some(m) = get_str(config, "merge_strategy").filter(|m| !MERGE_STRATEGIES.contains(m))
        {
            attr_error(
                diags,
                "merge_strategy",
                format!(
                    "merge_strategy \"{m}\" is not one of {}",
                    MERGE_STRATEGIES.join(", ")
                ),
            );
        }
    }

    fn force_new(&self) -> &'static [&'static str] {
        &["agent_id", "name", "value", "merge_strategy"]
    }

    fn defaults(&self) -> Vec<(&'static str, ValueAny)> {
        vec![("merge_strategy", s("replace"))]
    }
}
