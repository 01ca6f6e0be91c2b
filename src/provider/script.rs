//! `hangar_script`: a script the agent runs on start, on stop or on a cron schedule.

use tf_provider::schema::Schema;
use tf_provider::value::ValueAny;
use tf_provider::Diagnostics;

use super::common::{
    block, boolean, computed, defaulted, get_bool, get_str, number, optional, required, schema,
    string, Obj, ResourceSpec,
};

pub struct Script;

impl ResourceSpec for Script {
    fn schema(&self) -> Schema {
        schema(block(
            "A script an agent runs at start, at stop or on a schedule.",
            vec![
                (
                    "agent_id",
                    required(string(), "The `id` of the `hangar_agent`."),
                ),
                ("display_name", required(string(), "Name shown in logs.")),
                ("script", required(string(), "The script.")),
                ("icon", optional(string(), "URL or path of an icon.")),
                (
                    "cron",
                    optional(
                        string(),
                        "Six-field cron schedule (with seconds), as Coder.",
                    ),
                ),
                (
                    "log_path",
                    optional(string(), "Where the agent writes the output."),
                ),
                (
                    "run_on_start",
                    defaulted(boolean(), "Run when the agent starts. Default false."),
                ),
                (
                    "run_on_stop",
                    defaulted(boolean(), "Run before the agent stops. Default false."),
                ),
                (
                    "start_blocks_login",
                    defaulted(
                        boolean(),
                        "Logins wait for this start script. Default false.",
                    ),
                ),
                (
                    "timeout",
                    defaulted(
                        number(),
                        "Seconds before the script is killed; 0 means none. Default 0.",
                    ),
                ),
                ("id", computed(string(), "ID of this resource.")),
            ],
        ))
    }

    fn validate(&self, config: &Obj, diags: &mut Diagnostics) {
        let when = ["run_on_start", "run_on_stop"]
            .iter()
            .any(|k| get_bool(config, k) == Some(true))
            || get_str(config, "cron").is_some();
        // Unknown flags might still turn out true; only complain about known configs.
        let unknown = ["run_on_start", "run_on_stop", "cron"]
            .iter()
            .any(|k| super::common::is_unknown(config, k));
        if !when && !unknown {
            diags.root_error_short(
                "hangar_script: at least one of run_on_start, run_on_stop or cron must be set",
            );
        }
        if get_bool(config, "run_on_stop") == Some(true) && get_str(config, "cron").is_some() {
            diags.root_error_short("hangar_script: cron cannot be combined with run_on_stop");
        }
    }

    fn force_new(&self) -> &'static [&'static str] {
        &["agent_id"]
    }

    fn defaults(&self) -> Vec<(&'static str, ValueAny)> {
        vec![
            ("run_on_start", ValueAny::Bool(false)),
            ("run_on_stop", ValueAny::Bool(false)),
            ("start_blocks_login", ValueAny::Bool(false)),
            ("timeout", ValueAny::Number(0)),
        ]
    }
}
