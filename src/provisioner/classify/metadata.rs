//! `hangar_metadata` onto the resources it describes: by `resource_id`, else (as Coder)
//! the nearest resource it depends on.

use std::collections::HashSet;

use serde_json::Value;

use super::{ClassifiedResource, Graph, MetadataItem, Rules, StateResource};

/// The nearest managed, non-Hangar resource `config_address` depends on (ties: the
/// smallest address), walking through locals and variables.
pub(super) fn nearest_dependency(
    graph: &Graph,
    config_address: &str,
    rules: &Rules,
) -> Option<String> {
    let mut seen: HashSet<&str> = HashSet::from([config_address]);
    let mut frontier = vec![config_address];
    while !frontier.is_empty() {
        let mut next = Vec::new();
        let mut found: Vec<&str> = Vec::new();
        for node in frontier {
            for (from, to) in &graph.edges {
                if from != node || !seen.insert(to.as_str()) {
                    continue;
                }
                if rules.is_host_candidate(to) {
                    found.push(to);
                } else {
                    next.push(to.as_str());
                }
            }
        }
        if let Some(best) = found.into_iter().min() {
            return Some(best.to_string());
        }
        frontier = next;
    }
    None
}

pub(super) fn apply(resource: &mut ClassifiedResource, m: &StateResource) {
    let attrs = m.masked_attributes();
    resource.hide |= attrs["hide"].as_bool().unwrap_or(false);
    if resource.icon.is_none() {
        resource.icon = attrs["icon"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string);
    }
    resource.daily_cost += attrs["daily_cost"].as_i64().unwrap_or(0);
    for item in attrs["item"].as_array().into_iter().flatten() {
        let sensitive = item["sensitive"].as_bool().unwrap_or(false);
        let value = if sensitive {
            Some("***".to_string())
        } else if item["is_null"].as_bool().unwrap_or(false) || item["value"].is_null() {
            None
        } else {
            Some(match &item["value"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        };
        resource.metadata.push(MetadataItem {
            key: item["key"].as_str().unwrap_or_default().to_string(),
            value,
            sensitive,
        });
    }
}
