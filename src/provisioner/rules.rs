//! Coder's refusals of a template, checked on the import's start plan so a push says what
//! to fix (with the addresses) before any workspace is built: parameter names used twice,
//! agent names Coder does not allow or that collide, two apps with one slug on an agent,
//! two `hangar_metadata` on one resource.

use std::collections::BTreeMap;

use serde_json::Value;

/// Every problem of the plan, one per line; `Ok` when there is none.
pub fn check(plan: &Value) -> Result<(), String> {
    let mut problems = Vec::new();
    problems.extend(duplicate_parameters(plan));
    problems.extend(agent_names(plan));
    problems.extend(shared_by_references(plan, "_app", "agent_id", "slug", |owner, slug, addresses| {
        format!(
            "apps {} share the slug \"{slug}\" on agent {owner}: slugs are unique per agent, so rename one",
            addresses.join(" and ")
        )
    }));
    problems.extend(shared_by_references(
        plan,
        "_metadata",
        "resource_id",
        "",
        |target, _, addresses| {
            format!(
            "{} all describe {target}: a resource takes one metadata block, so merge their items",
            addresses.join(" and ")
        )
        },
    ));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

fn ours(type_: &str, suffix: &str) -> bool {
    type_
        .strip_prefix("hangar")
        .or_else(|| type_.strip_prefix("coder"))
        == Some(suffix)
}

/// Every resource of a module section (`planned_values`/`prior_state.values`
/// `root_module` with its `child_modules`, whose addresses are absolute).
fn walk<'a>(module: &'a Value, out: &mut Vec<&'a Value>) {
    out.extend(module["resources"].as_array().into_iter().flatten());
    for child in module["child_modules"].as_array().into_iter().flatten() {
        walk(child, out);
    }
}

fn resources(module: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    walk(module, &mut out);
    out
}

/// Every configured resource with its module prefix (`module.a.module.b.`): the
/// `configuration` section's addresses and references are relative to their module.
fn configured<'a>(module: &'a Value, prefix: String, out: &mut Vec<(String, &'a Value)>) {
    for r in module["resources"].as_array().into_iter().flatten() {
        out.push((prefix.clone(), r));
    }
    for (name, call) in module["module_calls"].as_object().into_iter().flatten() {
        configured(&call["module"], format!("{prefix}module.{name}."), out);
    }
}

fn duplicate_parameters(plan: &Value) -> Vec<String> {
    let mut by_name: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in resources(&plan["prior_state"]["values"]["root_module"]) {
        if r["mode"] == "data" && ours(r["type"].as_str().unwrap_or_default(), "_parameter") {
            if let Some(name) = r["values"]["name"].as_str() {
                by_name
                    .entry(name)
                    .or_default()
                    .push(r["address"].as_str().unwrap_or_default());
            }
        }
    }
    by_name
        .into_iter()
        .filter(|(_, at)| at.len() > 1)
        .map(|(name, at)| {
            format!(
                "parameter \"{name}\" is declared {} times ({}): parameter names are unique, so rename all but one",
                at.len(),
                at.join(", ")
            )
        })
        .collect()
}

/// Coder's rule for agent names: letters and digits, single hyphens between them.
fn valid_agent_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The agents' names as Hangar gives them (`NAME`, or `NAME-KEY` for one of several
/// instances), checked as Coder does: no underscores, the name rule, and no two alike
/// when case is ignored.
fn agent_names(plan: &Value) -> Vec<String> {
    let agents: Vec<&Value> = resources(&plan["planned_values"]["root_module"])
        .into_iter()
        .filter(|r| {
            r["mode"] == "managed" && ours(r["type"].as_str().unwrap_or_default(), "_agent")
        })
        .collect();
    let mut per_config: BTreeMap<String, usize> = BTreeMap::new();
    for a in &agents {
        *per_config
            .entry(super::classify::strip_keys(
                a["address"].as_str().unwrap_or_default(),
            ))
            .or_default() += 1;
    }
    let mut problems = Vec::new();
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for a in agents {
        let address = a["address"].as_str().unwrap_or_default();
        let base = a["name"].as_str().unwrap_or_default();
        let name = match (
            &a["index"],
            per_config[&super::classify::strip_keys(address)],
        ) {
            (Value::String(k), n) if n > 1 => format!("{base}-{k}"),
            (Value::Number(k), n) if n > 1 => format!("{base}-{k}"),
            _ => base.to_string(),
        };
        if base.contains('_') {
            problems.push(format!(
                "agent name \"{base}\" ({address}) contains underscores, which Coder no longer allows: rename the resource to \"{}\"",
                base.replace('_', "-")
            ));
            continue;
        }
        if !valid_agent_name(&name) {
            problems.push(format!(
                "agent name \"{name}\" ({address}) must be letters and digits joined by single hyphens"
            ));
            continue;
        }
        if let Some(other) = seen.insert(name.to_lowercase(), address) {
            problems.push(format!(
                "agents {other} and {address} are both named \"{name}\" (ignoring case): agent names are unique in a workspace"
            ));
        }
    }
    problems
}

/// Resources of a Hangar type ending in `suffix` that point (`reference`, e.g. `agent_id`)
/// at the same resource instance and share `key` (empty: any): each group of two or more
/// is a problem, described by `say(target, key value, addresses)`.
fn shared_by_references(
    plan: &Value,
    suffix: &str,
    reference: &str,
    key: &str,
    say: impl Fn(&str, &str, &[&str]) -> String,
) -> Vec<String> {
    // What each configured resource's `reference` expression points at.
    let mut config = Vec::new();
    configured(
        &plan["configuration"]["root_module"],
        String::new(),
        &mut config,
    );
    let mut targets: BTreeMap<String, (String, bool)> = BTreeMap::new();
    for (prefix, r) in config {
        let refs: Vec<&str> = r["expressions"][reference]["references"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        // The resource itself is the reference without an attribute (`coder_agent.dev`),
        // listed after `coder_agent.dev.id`.
        let Some(target) = refs
            .iter()
            .rev()
            .find(|r| super::classify::ConfigAddress::parse(r).is_some())
        else {
            continue;
        };
        let per_instance = refs
            .iter()
            .any(|r| r.starts_with("count.") || r.starts_with("each."));
        if let Some(address) = r["address"].as_str() {
            targets.insert(
                format!("{prefix}{address}"),
                (format!("{prefix}{target}"), per_instance),
            );
        }
    }
    let mut groups: BTreeMap<(String, String), Vec<&str>> = BTreeMap::new();
    for r in resources(&plan["planned_values"]["root_module"]) {
        if r["mode"] != "managed" || !ours(r["type"].as_str().unwrap_or_default(), suffix) {
            continue;
        }
        let address = r["address"].as_str().unwrap_or_default();
        // Configuration addresses carry no instance keys.
        let Some((target, per_instance)) =
            targets.get(&super::classify::strip_keys(address)).cloned()
        else {
            continue;
        };
        let instance = if per_instance {
            format!("{target}[{}]", r["index"])
        } else {
            target
        };
        let value = if key.is_empty() {
            String::new()
        } else {
            r["values"][key].as_str().unwrap_or_default().to_string()
        };
        groups.entry((instance, value)).or_default().push(address);
    }
    groups
        .into_iter()
        .filter(|(_, at)| at.len() > 1)
        .map(|((target, value), at)| say(&target, &value, &at))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan(config: Value, planned: Value, prior: Value) -> Value {
        json!({
            "configuration": {"root_module": {"resources": config}},
            "planned_values": {"root_module": {"resources": planned}},
            "prior_state": {"values": {"root_module": {"resources": prior}}},
        })
    }

    fn agent(address: &str, name: &str, index: Value) -> Value {
        json!({"address": address, "mode": "managed", "type": "coder_agent", "name": name, "index": index, "values": {}})
    }

    #[test]
    fn agent_names_follow_coders_rules() {
        let p = plan(
            json!([]),
            json!([
                agent("coder_agent.my_agent", "my_agent", Value::Null),
                agent("coder_agent.Dev", "Dev", Value::Null),
                agent("module.m.coder_agent.dev", "dev", Value::Null),
                agent("coder_agent.box[0]", "box", json!(0)),
                agent("coder_agent.box[1]", "box", json!(1)),
            ]),
            json!([]),
        );
        let err = check(&p).unwrap_err();
        assert!(
            err.contains("\"my_agent\" (coder_agent.my_agent) contains underscores")
                && err.contains("\"my-agent\""),
            "{err}"
        );
        assert!(
            err.contains("coder_agent.Dev and module.m.coder_agent.dev are both named \"dev\""),
            "{err}"
        );
        assert!(
            !err.contains("box"),
            "count instances are box-0 and box-1: {err}"
        );
        assert_eq!(err.lines().count(), 2, "{err}");
    }

    #[test]
    fn slugs_are_unique_per_agent_instance() {
        let app = |address: &str, index: Value| json!({"address": address, "mode": "managed", "type": "coder_app", "name": "a", "index": index, "values": {"slug": "web"}});
        let refs = |r: &[&str]| json!({"agent_id": {"references": r}});
        let p = plan(
            json!([
                {"address": "coder_app.a", "expressions": refs(&["coder_agent.dev", "count.index"])},
                {"address": "coder_app.b", "expressions": refs(&["coder_agent.main.id", "coder_agent.main"])},
                {"address": "coder_app.c", "expressions": refs(&["coder_agent.main.id", "coder_agent.main"])},
            ]),
            json!([
                app("coder_app.a[0]", json!(0)),
                app("coder_app.a[1]", json!(1)),
                app("coder_app.b", Value::Null),
                app("coder_app.c", Value::Null),
            ]),
            json!([]),
        );
        let err = check(&p).unwrap_err();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(
                "apps coder_app.b and coder_app.c share the slug \"web\" on agent coder_agent.main"
            ),
            "{err}"
        );
    }

    #[test]
    fn one_metadata_per_resource_and_unique_parameter_names() {
        let meta = |address: &str| json!({"address": address, "mode": "managed", "type": "coder_metadata", "name": "m", "values": {}});
        let param = |address: &str| json!({"address": address, "mode": "data", "type": "coder_parameter", "values": {"name": "region"}});
        let refs =
            json!({"resource_id": {"references": ["terraform_data.box.id", "terraform_data.box"]}});
        let p = plan(
            json!([
                {"address": "coder_metadata.a", "expressions": refs},
                {"address": "coder_metadata.b", "expressions": refs},
            ]),
            json!([meta("coder_metadata.a"), meta("coder_metadata.b")]),
            json!([
                param("data.coder_parameter.a"),
                param("data.coder_parameter.b")
            ]),
        );
        let err = check(&p).unwrap_err();
        assert!(
            err.contains("coder_metadata.a and coder_metadata.b all describe terraform_data.box"),
            "{err}"
        );
        assert!(err.contains("parameter \"region\" is declared 2 times (data.coder_parameter.a, data.coder_parameter.b)"), "{err}");
        assert!(check(&plan(json!([]), json!([]), json!([]))).is_ok());
    }
}
