//! What an import reads off its start plan besides resources: the parameters as
//! terraform evaluated them, and the version's presets, workspace tags and external auth
//! needs (every data source of those types the plan read, child modules included).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::parameter::{ParamType, Parameter};
use crate::model::preset::{ExternalAuthRequirement, Preset, VersionFacts};

/// The values of every data source of a Hangar/Coder type ending in `suffix` (e.g.
/// `_workspace_preset`) that the plan read, child modules included, in address order.
fn data_sources<'a>(plan: &'a Value, suffix: &str) -> Vec<&'a Value> {
    fn walk<'a>(module: &'a Value, suffix: &str, out: &mut Vec<(&'a str, &'a Value)>) {
        for r in module["resources"].as_array().into_iter().flatten() {
            let t = r["type"].as_str().unwrap_or_default();
            let ours = t.strip_prefix("hangar").or_else(|| t.strip_prefix("coder"));
            if r["mode"] == "data" && ours == Some(suffix) {
                out.push((r["address"].as_str().unwrap_or_default(), &r["values"]));
            }
        }
        for child in module["child_modules"].as_array().into_iter().flatten() {
            walk(child, suffix, out);
        }
    }
    let mut found = Vec::new();
    walk(
        &plan["prior_state"]["values"]["root_module"],
        suffix,
        &mut found,
    );
    found.sort_by(|a, b| a.0.cmp(b.0));
    found.into_iter().map(|(_, v)| v).collect()
}

/// Presets, workspace tags and external auth providers, as the start plan read them;
/// `Err` names what a template must fix (two presets with one name, two defaults).
pub fn version_facts(plan: &Value, params: &[Parameter]) -> Result<VersionFacts, String> {
    let presets: Vec<Preset> = data_sources(plan, "_workspace_preset")
        .into_iter()
        .filter_map(Preset::from_attributes)
        .collect();
    crate::model::preset::check_presets(&presets)?;
    // A preset's values must be values its parameters take (names it sets that the
    // version lacks are allowed, as in Coder).
    for p in &presets {
        let given: BTreeMap<String, String> = p
            .parameters
            .iter()
            .filter(|(k, _)| params.iter().any(|q| &q.name == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Err(problems) = crate::model::parameter::resolve(params, &given, None) {
            let wrong: Vec<String> = problems
                .into_iter()
                .filter(|q| given.contains_key(&q.name))
                .map(|q| q.detail)
                .collect();
            if !wrong.is_empty() {
                return Err(format!(
                    "preset \"{}\" sets a value its parameter does not take: {}",
                    p.name,
                    wrong.join("; ")
                ));
            }
        }
    }
    let mut tags = std::collections::BTreeMap::new();
    for t in data_sources(plan, "_workspace_tags") {
        for (k, v) in t["tags"].as_object().into_iter().flatten() {
            tags.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
        }
    }
    let mut external_auth: Vec<ExternalAuthRequirement> = Vec::new();
    for a in data_sources(plan, "_external_auth") {
        let Some(id) = a["id"].as_str() else { continue };
        let optional = a["optional"].as_bool().unwrap_or(false);
        match external_auth.iter_mut().find(|e| e.id == id) {
            // Required anywhere means required.
            Some(e) => e.optional &= optional,
            None => external_auth.push(ExternalAuthRequirement {
                id: id.to_string(),
                optional,
            }),
        }
    }
    Ok(VersionFacts {
        presets,
        tags,
        external_auth,
    })
}

/// The parameters as terraform evaluated them in the start plan: every `hangar_parameter`
/// data source, also those the static parse cannot see (in child modules, in rendered
/// `*.tf.tera` files, or with computed defaults). An evaluated parameter replaces the
/// static one of the same name; static ones terraform did not read are kept.
pub fn enrich_parameters(params: &mut Vec<Parameter>, plan: &Value) {
    let evaluated = data_sources(plan, "_parameter")
        .into_iter()
        .filter_map(evaluated_parameter);
    for e in evaluated {
        match params.iter_mut().find(|p| p.name == e.name) {
            Some(p) => *p = e,
            None => params.push(e),
        }
    }
    params.sort_by(|a, b| a.order.cmp(&b.order).then_with(|| a.name.cmp(&b.name)));
}

fn evaluated_parameter(v: &Value) -> Option<Parameter> {
    use crate::model::parameter::{ParamOption, Validation};
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    let validation = v["validation"]
        .as_array()
        .and_then(|a| a.first())
        .map(|r| Validation {
            min: r["min"].as_f64(),
            max: r["max"].as_f64(),
            regex: text(&r["regex"]),
            error: text(&r["error"]),
            monotonic: text(&r["monotonic"]),
        });
    Some(Parameter {
        name: v["name"].as_str()?.to_string(),
        display_name: text(&v["display_name"]).unwrap_or_default(),
        description: text(&v["description"]).unwrap_or_default(),
        kind: v["type"]
            .as_str()
            .and_then(ParamType::parse)
            .unwrap_or_default(),
        // An empty default is a default: only a null one makes the parameter required.
        default: v["default"].as_str().map(str::to_string),
        mutable: v["mutable"].as_bool().unwrap_or(false),
        ephemeral: v["ephemeral"].as_bool().unwrap_or(false),
        icon: text(&v["icon"]).unwrap_or_default(),
        order: v["order"].as_i64().unwrap_or(0),
        options: v["option"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| ParamOption {
                name: text(&o["name"]).unwrap_or_default(),
                value: o["value"].as_str().unwrap_or_default().to_string(),
                description: text(&o["description"]).unwrap_or_default(),
                icon: text(&o["icon"]).unwrap_or_default(),
            })
            .collect(),
        validation,
        form_type: text(&v["form_type"]).unwrap_or_default(),
    })
}
