//! `hangar_parameter`: a value the workspace owner chooses, checked here so a bad value
//! fails the build with a message naming the parameter and the rule it broke.
//!
//! The value comes from `HANGAR_PARAMETER_<hex sha256(name)>` (see
//! [`super::contract::parameter_env_name`]), else the default. Like Coder, every value is
//! a string: numbers as written, bools as `true`/`false`, `list(string)` JSON-encoded.

use tf_provider::schema::{NestedBlock, Schema};
use tf_provider::value::ValueAny;
use tf_provider::Diagnostics;

use super::common::{
    block, boolean, computed, defaulted, get_blocks, get_bool, get_i64, get_str, is_unknown,
    new_id, number, optional, required, s, schema, string, with_blocks, DataSpec, Obj,
};
use super::contract::{lookup, parameter_env_name, previous_parameter_env_name};

pub struct Parameter;

const TYPES: &[&str] = &["string", "number", "bool", "list(string)"];

impl DataSpec for Parameter {
    fn schema(&self) -> Schema {
        let option = block(
            "One choice; the value must be one of the options when any are given.",
            vec![
                ("name", required(string(), "What the owner sees.")),
                ("value", required(string(), "The value the template gets.")),
                (
                    "description",
                    optional(string(), "Help text for this option."),
                ),
                ("icon", optional(string(), "URL or path of an icon.")),
            ],
        );
        let validation = block(
            "Rules for the value. `regex` is for strings; `min`, `max` and `monotonic` for numbers.",
            vec![
                ("min", optional(number(), "Smallest allowed number.")),
                ("max", optional(number(), "Largest allowed number.")),
                ("min_disabled", computed(boolean(), "Whether `min` is unset.")),
                ("max_disabled", computed(boolean(), "Whether `max` is unset.")),
                (
                    "monotonic",
                    optional(
                        string(),
                        "`increasing` or `decreasing`: the value may only move that way from the previous build's.",
                    ),
                ),
                ("regex", optional(string(), "A regular expression the whole value must match (anchors are up to you, as in Coder).")),
                (
                    "error",
                    optional(
                        string(),
                        "Message shown when a rule fails; `{min}`, `{max}` and `{value}` are replaced. Required with `regex`.",
                    ),
                ),
            ],
        );
        schema(with_blocks(
            block(
                "A workspace parameter: a value the owner picks when creating or updating the workspace.",
                vec![
                    ("id", computed(string(), "A random ID for this read.")),
                    ("name", required(string(), "The parameter's name; the build runner passes its value under this name.")),
                    ("display_name", optional(string(), "Name shown instead of `name`.")),
                    ("description", optional(string(), "Help text (markdown).")),
                    ("icon", optional(string(), "URL or path of an icon.")),
                    (
                        "type",
                        defaulted(string(), "`string` (default), `number`, `bool` or `list(string)`."),
                    ),
                    ("mutable", defaulted(boolean(), "Whether the value may change after the workspace is created. Default false.")),
                    (
                        "ephemeral",
                        defaulted(boolean(), "Whether the value applies to one build only. Needs `mutable` and a `default`. Default false."),
                    ),
                    ("default", optional(string(), "The value when none is given. `list(string)` defaults are JSON (`jsonencode([...])`).")),
                    ("order", optional(number(), "Position in forms; lower first.")),
                    ("form_type", optional(string(), "The form control: `input`, `textarea`, `slider`, `checkbox`, `switch`, `radio`, `dropdown`, `multi-select` or `tag-select`, as Coder's table allows per type and options.")),
                    ("styling", optional(string(), "JSON hints for the form (Coder's `styling`); recorded.")),
                    ("optional", computed(boolean(), "Whether the parameter has a default.")),
                    ("value", computed(string(), "The value for this build.")),
                ],
            ),
            vec![
                ("option", NestedBlock::List(option)),
                ("validation", NestedBlock::Optional(validation)),
            ],
        ))
    }

    fn validate(&self, config: &Obj, diags: &mut Diagnostics) {
        if let Err(rule) = check_config(config) {
            report(diags, config, rule);
        }
    }

    fn read(&self, state: &mut Obj, diags: &mut Diagnostics) {
        if !state.contains_key("type") || matches!(state.get("type"), Some(ValueAny::Null)) {
            state.insert("type".into(), s("string"));
        }
        for flag in ["mutable", "ephemeral"] {
            if get_bool(state, flag).is_none() {
                state.insert(flag.into(), ValueAny::Bool(false));
            }
        }
        let default = get_str(state, "default").map(str::to_string);
        state.insert("optional".into(), ValueAny::Bool(default.is_some()));
        if let Some(ValueAny::List(blocks)) = state.get_mut("validation") {
            for v in blocks.iter_mut() {
                if let ValueAny::Map(v) = v {
                    for bound in ["min", "max"] {
                        let disabled = matches!(v.get(bound), None | Some(ValueAny::Null));
                        v.insert(format!("{bound}_disabled"), ValueAny::Bool(disabled));
                    }
                }
            }
        }
        state.insert("id".into(), s(new_id()));

        let result = check_config(state).and_then(|()| {
            let name = get_str(state, "name").unwrap_or_default();
            let input = lookup(&parameter_env_name(name)).or(default);
            // As in Coder: no value and no default is "", checked only when the
            // parameter has a validation block.
            if input.is_none() && get_blocks(state, "validation").is_empty() {
                return Ok(String::new());
            }
            let value = input.unwrap_or_default();
            check_value(state, &value, "value")?;
            if let Some(previous) = lookup(&previous_parameter_env_name(name)) {
                check_monotonic(state, &value, &previous)?;
            }
            Ok(value)
        });
        match result {
            Ok(value) => {
                state.insert("value".into(), s(value));
            }
            Err(rule) => {
                report(diags, state, rule);
                state.insert("value".into(), ValueAny::Null);
            }
        }
    }
}

fn report(diags: &mut Diagnostics, p: &Obj, rule: String) {
    let name = get_str(p, "name").unwrap_or("?");
    diags.root_error_short(format!("parameter \"{name}\": {rule}"));
}

fn validation(p: &Obj) -> Obj {
    get_blocks(p, "validation")
        .into_iter()
        .next()
        .unwrap_or_default()
}

/// Rules about the block itself (type, flags, options, validation, default).
fn check_config(p: &Obj) -> Result<(), String> {
    // With unknown inputs (e.g. a default from another resource) there is nothing to
    // check yet; terraform validates again once they are known.
    if ["type", "default", "mutable", "ephemeral"]
        .iter()
        .any(|k| is_unknown(p, k))
    {
        return Ok(());
    }
    let kind = get_str(p, "type").unwrap_or("string");
    if !TYPES.contains(&kind) {
        return Err(format!(
            "type \"{kind}\" is not supported; use one of {}",
            TYPES.join(", ")
        ));
    }
    let mutable = get_bool(p, "mutable").unwrap_or(false);
    let ephemeral = get_bool(p, "ephemeral").unwrap_or(false);
    let default = get_str(p, "default");
    if ephemeral && !mutable {
        return Err("an ephemeral parameter must be mutable (set mutable = true)".into());
    }
    if ephemeral && default.is_none() {
        return Err("an ephemeral parameter must have a default".into());
    }

    let options = get_blocks(p, "option");
    if !is_unknown(p, "form_type") {
        if let Some(kind) = crate::model::parameter::ParamType::parse(kind) {
            let specified = get_str(p, "form_type").unwrap_or_default();
            crate::model::parameter::form_type(kind, !options.is_empty(), specified)?;
        }
    }
    let mut names = std::collections::HashSet::new();
    let mut values = std::collections::HashSet::new();
    for option in &options {
        let name = get_str(option, "name").unwrap_or_default();
        let value = get_str(option, "value").unwrap_or_default();
        if !names.insert(name.to_string()) {
            return Err(format!(
                "option names must be unique: \"{name}\" is used twice"
            ));
        }
        if !values.insert(value.to_string()) {
            return Err(format!(
                "option values must be unique: \"{value}\" is used twice"
            ));
        }
        let single = if kind == "list(string)" {
            "string"
        } else {
            kind
        };
        check_type(single, value).map_err(|e| format!("option \"{name}\": {e}"))?;
    }

    let v = validation(p);
    let has_numeric_rule = ["min", "max", "monotonic"]
        .iter()
        .any(|k| !matches!(v.get(*k), None | Some(ValueAny::Null)));
    if has_numeric_rule && kind != "number" {
        return Err(format!(
            "validation min, max and monotonic apply only to type number, not {kind}"
        ));
    }
    if let Some(regex) = get_str(&v, "regex") {
        if kind != "string" {
            return Err(format!(
                "validation regex applies only to type string, not {kind}"
            ));
        }
        regex::Regex::new(regex)
            .map_err(|e| format!("validation regex \"{regex}\" is not a valid regex: {e}"))?;
        if get_str(&v, "error").is_none() {
            return Err("validation regex needs an error message (validation.error)".into());
        }
    }
    if let Some(monotonic) = get_str(&v, "monotonic") {
        if monotonic != "increasing" && monotonic != "decreasing" {
            return Err(format!(
                "validation monotonic must be \"increasing\" or \"decreasing\", not \"{monotonic}\""
            ));
        }
    }
    if let (Some(min), Some(max)) = (get_i64(&v, "min"), get_i64(&v, "max")) {
        if min > max {
            return Err(format!("validation min {min} is greater than max {max}"));
        }
    }
    if let Some(default) = default {
        check_value(p, default, "default")?;
    }
    Ok(())
}

fn check_type(kind: &str, value: &str) -> Result<(), String> {
    match kind {
        "number" if value.trim().parse::<f64>().is_err() => {
            Err(format!("\"{value}\" is not a number"))
        }
        "bool" if crate::model::parameter::parse_bool(value).is_none() => {
            Err(format!("\"{value}\" is not a bool (true or false)"))
        }
        "list(string)" if serde_json::from_str::<Vec<String>>(value).is_err() => {
            Err(format!("\"{value}\" is not a JSON-encoded list of strings"))
        }
        _ => Ok(()),
    }
}

/// Type, options, regex, min and max for a value (`what` is `value` or `default`).
fn check_value(p: &Obj, value: &str, what: &str) -> Result<(), String> {
    let kind = get_str(p, "type").unwrap_or("string");
    check_type(kind, value).map_err(|e| format!("{what} {e} (type {kind})"))?;

    let options: Vec<String> = get_blocks(p, "option")
        .iter()
        .filter_map(|o| get_str(o, "value").map(str::to_string))
        .collect();
    if !options.is_empty() {
        let chosen: Vec<String> = if kind == "list(string)" {
            serde_json::from_str(value).unwrap_or_default()
        } else {
            vec![value.to_string()]
        };
        if let Some(bad) = chosen.iter().find(|c| !options.contains(c)) {
            return Err(format!(
                "{what} \"{bad}\" is not one of the options ({})",
                options.join(", ")
            ));
        }
    }

    let v = validation(p);
    let custom = |default_message: String| -> String {
        match get_str(&v, "error") {
            Some(template) => {
                let fill = |key: &str| get_i64(&v, key).map(|n| n.to_string()).unwrap_or_default();
                let message = template
                    .replace("{min}", &fill("min"))
                    .replace("{max}", &fill("max"))
                    .replace("{value}", value);
                format!("{default_message}: {message}")
            }
            None => default_message,
        }
    };
    if let Some(regex) = get_str(&v, "regex") {
        if let Ok(re) = regex::Regex::new(regex) {
            if !re.is_match(value) {
                return Err(custom(format!(
                    "{what} \"{value}\" does not match validation regex \"{regex}\""
                )));
            }
        }
    }
    if kind == "number" {
        let n: f64 = value.trim().parse().unwrap_or_default();
        if let Some(min) = get_i64(&v, "min") {
            if n < min as f64 {
                return Err(custom(format!(
                    "{what} {value} is less than the validation min {min}"
                )));
            }
        }
        if let Some(max) = get_i64(&v, "max") {
            if n > max as f64 {
                return Err(custom(format!(
                    "{what} {value} is greater than the validation max {max}"
                )));
            }
        }
    }
    Ok(())
}

fn check_monotonic(p: &Obj, value: &str, previous: &str) -> Result<(), String> {
    let v = validation(p);
    let Some(direction) = get_str(&v, "monotonic") else {
        return Ok(());
    };
    let (Ok(now), Ok(before)) = (value.trim().parse::<f64>(), previous.trim().parse::<f64>())
    else {
        // A previous value that is not a number (the type changed) constrains nothing.
        return Ok(());
    };
    let broken = match direction {
        "increasing" => now < before,
        "decreasing" => now > before,
        _ => false,
    };
    if broken {
        let relation = if direction == "increasing" {
            "less"
        } else {
            "greater"
        };
        return Err(format!(
            "value {value} is {relation} than the previous value {previous}, but validation monotonic is \"{direction}\""
        ));
    }
    Ok(())
}
