//! Tasks: `hangar_task` (is this build for a task, and its prompt) and `hangar_ai_task`
//! (the app that is a task's interface, shown in the workspace's sidebar).

use tf_provider::schema::{NestedBlock, Schema};
use tf_provider::value::ValueAny;
use tf_provider::Diagnostics;

use super::common::{
    attr_error, block, boolean, computed, defaulted, get_blocks, get_str, required, s, schema,
    string, with_blocks, DataSpec, Obj, ResourceSpec,
};
use super::contract::{self, lookup, lookup_non_empty};

/// The task context of this build: `(id, prompt, enabled)`. No task means a random id,
/// an empty prompt and `enabled = false`, as in Coder.
fn task_context() -> (String, String, bool) {
    let prompt = lookup(contract::TASK_PROMPT).unwrap_or_default();
    match lookup_non_empty(contract::TASK_ID)
        .filter(|id| id != "00000000-0000-0000-0000-000000000000")
    {
        Some(id) => (id, prompt, true),
        None => (super::common::new_id(), prompt, false),
    }
}

pub struct Task;

impl DataSpec for Task {
    fn schema(&self) -> Schema {
        schema(block(
            "The task this build runs for, if any.",
            vec![
                (
                    "id",
                    computed(string(), "ID of the task; random outside a task."),
                ),
                (
                    "prompt",
                    computed(string(), "The task's prompt; empty outside a task."),
                ),
                (
                    "enabled",
                    computed(boolean(), "Whether this build runs for a task."),
                ),
            ],
        ))
    }

    fn read(&self, state: &mut Obj, _diags: &mut Diagnostics) {
        let (id, prompt, enabled) = task_context();
        state.insert("id".into(), s(id));
        state.insert("prompt".into(), s(prompt));
        state.insert("enabled".into(), ValueAny::Bool(enabled));
    }
}

pub struct AiTask;

impl ResourceSpec for AiTask {
    fn schema(&self) -> Schema {
        let sidebar = block(
            "Deprecated: use `app_id`.",
            vec![("id", required(string(), "The `id` of a `hangar_app`."))],
        );
        schema(with_blocks(
            block(
                "Marks the workspace as able to run AI tasks, with the app that is their interface.",
                vec![
                    ("id", computed(string(), "ID of this resource.")),
                    ("app_id", defaulted(string(), "The `id` of the `hangar_app` that is the task's interface.")),
                    ("prompt", computed(string(), "The task's prompt; empty outside a task.")),
                    ("enabled", computed(boolean(), "Whether this build runs for a task.")),
                ],
            ),
            vec![("sidebar_app", NestedBlock::Set(sidebar))],
        ))
    }

    fn validate(&self, config: &Obj, diags: &mut Diagnostics) {
        let sidebar = get_blocks(config, "sidebar_app");
        if sidebar.len() > 1 {
            attr_error(diags, "sidebar_app", "at most one sidebar_app block".into());
        }
        if !sidebar.is_empty() && get_str(config, "app_id").is_some() {
            attr_error(
                diags,
                "app_id",
                "app_id and sidebar_app cannot both be set; use app_id".into(),
            );
        }
        let ids = sidebar
            .iter()
            .filter_map(|b| get_str(b, "id").map(str::to_string))
            .chain(get_str(config, "app_id").map(str::to_string));
        for id in ids {
            if uuid::Uuid::parse_str(&id).is_err() {
                attr_error(
                    diags,
                    "app_id",
                    format!("\"{id}\" is not an app id (a UUID)"),
                );
            }
        }
    }

    fn force_new(&self) -> &'static [&'static str] {
        &["app_id", "sidebar_app"]
    }

    fn computed(&self) -> &'static [&'static str] {
        &["id", "prompt", "enabled"]
    }

    fn normalize(&self, state: &mut Obj) {
        if super::common::is_null(state, "app_id") {
            let from_sidebar = get_blocks(state, "sidebar_app")
                .first()
                .and_then(|b| b.get("id").cloned());
            state.insert("app_id".into(), from_sidebar.unwrap_or(ValueAny::Null));
        }
    }

    fn refresh(&self, state: &mut Obj) {
        let (_, prompt, enabled) = task_context();
        state.insert("prompt".into(), s(prompt));
        state.insert("enabled".into(), ValueAny::Bool(enabled));
    }
}
