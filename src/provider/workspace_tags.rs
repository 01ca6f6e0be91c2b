//! `hangar_workspace_tags`: key/value tags recorded with the template version; they
//! decide which provisioners may run the workspace's builds.

use tf_provider::schema::{AttributeType, Schema};
use tf_provider::value::ValueAny;
use tf_provider::Diagnostics;

use super::common::{attr_error, block, computed, optional, s, schema, string, DataSpec, Obj};

pub struct WorkspaceTags;

impl DataSpec for WorkspaceTags {
    fn schema(&self) -> Schema {
        schema(block(
            "Tags of the workspace's builds: only provisioners with matching tags run them.",
            vec![
                (
                    "tags",
                    optional(
                        AttributeType::Map(Box::new(string())),
                        "Tag names and values; values may use parameters.",
                    ),
                ),
                ("id", computed(string(), "A random ID for this read.")),
            ],
        ))
    }

    fn validate(&self, config: &Obj, diags: &mut Diagnostics) {
        if let Some(ValueAny::Map(tags)) = config.get("tags") {
            for key in tags.keys() {
                if key.is_empty() || key.len() > 128 {
                    attr_error(
                        diags,
                        "tags",
                        format!("tag name \"{key}\" must be 1 to 128 characters"),
                    );
                }
            }
        }
    }

    fn read(&self, state: &mut Obj, _diags: &mut Diagnostics) {
        state.insert("id".into(), s(super::common::new_id()));
    }
}
