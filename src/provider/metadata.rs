//! `hangar_metadata`: facts about another resource shown with the workspace (cost, type,
//! disk size…). Items marked `sensitive` are hidden by the dashboard.

use tf_provider::schema::{NestedBlock, Schema};
use tf_provider::value::ValueAny;
use tf_provider::Diagnostics;

use super::common::{
    attr_error, block, boolean, computed, get_blocks, get_i64, get_str, number, optional, required,
    schema, string, with_blocks, Obj, ResourceSpec,
};

pub struct Metadata;

impl ResourceSpec for Metadata {
    fn schema(&self) -> Schema {
        let item = block(
            "One key/value shown with the resource.",
            vec![
                ("key", required(string(), "Label.")),
                ("value", optional(string(), "Value.")),
                (
                    "sensitive",
                    optional(boolean(), "Hide the value in the dashboard."),
                ),
                ("is_null", computed(boolean(), "Whether `value` is null.")),
            ],
        );
        schema(with_blocks(
            block(
                "Extra facts about a resource of the workspace.",
                vec![
                    (
                        "resource_id",
                        optional(string(), "The `id` of the resource described. Without it (or when it matches nothing), the nearest resource this one depends on."),
                    ),
                    (
                        "daily_cost",
                        optional(
                            number(),
                            "Cost units per day the resource accrues while it exists.",
                        ),
                    ),
                    (
                        "hide",
                        optional(boolean(), "Hide the resource in the dashboard."),
                    ),
                    ("icon", optional(string(), "URL or path of an icon.")),
                    ("id", computed(string(), "ID of this resource.")),
                ],
            ),
            vec![("item", NestedBlock::List(item))],
        ))
    }

    fn validate(&self, config: &Obj, diags: &mut Diagnostics) {
        if let Some(cost) = get_i64(config, "daily_cost") {
            if cost < 0 {
                attr_error(
                    diags,
                    "daily_cost",
                    format!("daily_cost {cost} must be at least 0"),
                );
            }
        }
        let mut keys = std::collections::HashSet::new();
        for item in get_blocks(config, "item") {
            if let Some(key) = get_str(&item, "key") {
                if !keys.insert(key.to_string()) {
                    attr_error(
                        diags,
                        "item",
                        format!("duplicate metadata item key \"{key}\""),
                    );
                }
            }
        }
    }

    fn force_new(&self) -> &'static [&'static str] {
        &["resource_id", "item"]
    }

    fn normalize(&self, state: &mut Obj) {
        let Some(ValueAny::List(items)) = state.get_mut("item") else {
            return;
        };
        for item in items {
            if let ValueAny::Map(item) = item {
                let is_null = match item.get("value") {
                    Some(ValueAny::Unknown) => ValueAny::Unknown,
                    None | Some(ValueAny::Null) => ValueAny::Bool(true),
                    Some(_) => ValueAny::Bool(false),
                };
                item.insert("is_null".into(), is_null);
            }
        }
    }
}
