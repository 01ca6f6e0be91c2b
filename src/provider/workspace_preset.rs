//! `hangar_workspace_preset`: a named set of parameter values users pick when creating a
//! workspace, optionally with a pool of prebuilt workspaces kept ready for it.

use tf_provider::schema::{AttributeType, NestedBlock, Schema};
use tf_provider::value::ValueAny;
use tf_provider::Diagnostics;

use super::common::{
    attr_error, block, boolean, computed, defaulted, get_blocks, get_i64, get_str, number,
    optional, required, s, schema, string, with_blocks, DataSpec, Obj,
};
use crate::model::cron;

pub struct WorkspacePreset;

/// Coder's bounds for `expiration_policy.ttl`: 0 (never) or one hour to one year.
const TTL_RANGE: std::ops::RangeInclusive<i64> = 3600..=31_536_000;

impl DataSpec for WorkspacePreset {
    fn schema(&self) -> Schema {
        let expiration = block(
            "When unclaimed prebuilt workspaces are replaced.",
            vec![(
                "ttl",
                required(number(), "Seconds after which an unclaimed prebuilt workspace is replaced: 0 (never) or 3600 to 31536000."),
            )],
        );
        let schedule = block(
            "Hours during which a different number of prebuilt workspaces is kept.",
            vec![
                (
                    "cron",
                    required(
                        string(),
                        "`* HOURS DAYS-OF-MONTH MONTHS DAYS-OF-WEEK` (the minute must be `*`).",
                    ),
                ),
                (
                    "instances",
                    required(
                        number(),
                        "How many to keep while the schedule covers the hour.",
                    ),
                ),
            ],
        );
        let scheduling = with_blocks(
            block(
                "Schedules that change the number of prebuilt workspaces by time of day.",
                vec![(
                    "timezone",
                    required(
                        string(),
                        "IANA time zone the schedules are in, e.g. `Europe/Berlin` or `UTC`.",
                    ),
                )],
            ),
            vec![("schedule", NestedBlock::List(schedule))],
        );
        let prebuilds = with_blocks(
            block(
                "Keep prebuilt workspaces of this preset ready to claim.",
                vec![(
                    "instances",
                    required(number(), "How many prebuilt workspaces to keep."),
                )],
            ),
            vec![
                ("expiration_policy", NestedBlock::Set(expiration)),
                ("scheduling", NestedBlock::List(scheduling)),
            ],
        );
        schema(with_blocks(
            block(
                "A preset: parameter values a user picks by name when creating a workspace.",
                vec![
                    ("id", computed(string(), "The preset's name.")),
                    ("name", required(string(), "Name users pick it by.")),
                    (
                        "description",
                        optional(string(), "What the preset is for (at most 128 characters)."),
                    ),
                    ("icon", optional(string(), "URL or path of an icon.")),
                    (
                        "default",
                        defaulted(
                            boolean(),
                            "Preselect this preset (at most one per template).",
                        ),
                    ),
                    (
                        "parameters",
                        optional(
                            AttributeType::Map(Box::new(string())),
                            "Parameter values the preset sets; the rest stay the user's choice.",
                        ),
                    ),
                ],
            ),
            vec![("prebuilds", NestedBlock::Set(prebuilds))],
        ))
    }

    fn validate(&self, config: &Obj, diags: &mut Diagnostics) {
        if get_str(config, "name") == Some("") {
            attr_error(diags, "name", "a preset needs a name".into());
        }
        if let Some(d) = get_str(config, "description").filter(|d| d.chars().count() > 128) {
            attr_error(
                diags,
                "description",
                format!(
                    "description is {} characters; at most 128",
                    d.chars().count()
                ),
            );
        }
        if let Some(icon) = get_str(config, "icon") {
            if icon.len() > 256 {
                attr_error(diags, "icon", "icon is longer than 256 characters".into());
            }
            if let Some(scheme) = super::common::script_scheme(icon) {
                attr_error(
                    diags,
                    "icon",
                    format!("a {scheme}: icon runs script in the dashboard"),
                );
            }
        }
        if let Some(ValueAny::Map(params)) = config.get("parameters") {
            for (name, value) in params {
                if matches!(value, ValueAny::String(v) if v.is_empty()) {
                    attr_error(
                        diags,
                        "parameters",
                        format!("parameter \"{name}\" has an empty value; leave it out to let users choose"),
                    );
                }
            }
        }
        let prebuilds = get_blocks(config, "prebuilds");
        if prebuilds.len() > 1 {
            attr_error(diags, "prebuilds", "at most one prebuilds block".into());
        }
        for p in &prebuilds {
            if let Err(e) = check_prebuilds(p) {
                attr_error(diags, "prebuilds", e);
            }
        }
    }

    fn read(&self, state: &mut Obj, diags: &mut Diagnostics) {
        // Read again here: validate may have seen unknown values.
        for p in get_blocks(state, "prebuilds") {
            if let Err(e) = check_prebuilds(&p) {
                attr_error(diags, "prebuilds", e);
            }
        }
        if super::common::is_null(state, "default") {
            state.insert("default".into(), ValueAny::Bool(false));
        }
        let name = get_str(state, "name").unwrap_or_default().to_string();
        state.insert("id".into(), s(name));
    }
}

fn check_prebuilds(p: &Obj) -> Result<(), String> {
    if let Some(n) = get_i64(p, "instances").filter(|n| *n < 0) {
        return Err(format!("instances {n} must be at least 0"));
    }
    for e in get_blocks(p, "expiration_policy") {
        if let Some(ttl) = get_i64(&e, "ttl").filter(|t| *t != 0 && !TTL_RANGE.contains(t)) {
            return Err(format!(
                "expiration_policy ttl {ttl} must be 0 or between 3600 (an hour) and 31536000 (a year)"
            ));
        }
    }
    let scheduling = get_blocks(p, "scheduling");
    if scheduling.len() > 1 {
        return Err("at most one scheduling block".into());
    }
    for sch in scheduling {
        if let Some(tz) = get_str(&sch, "timezone") {
            if crate::model::preset::TimeZone::load(tz).is_err() {
                return Err(format!(
                    "timezone \"{tz}\" is not an IANA time zone (e.g. UTC, Europe/Berlin)"
                ));
            }
        }
        let schedules = get_blocks(&sch, "schedule");
        if schedules.is_empty() && !super::common::is_unknown(&sch, "schedule") {
            return Err("scheduling needs at least one schedule block".into());
        }
        let specs: Vec<&str> = schedules
            .iter()
            .filter_map(|s| get_str(s, "cron"))
            .collect();
        cron::check_no_overlap(&specs)?;
        if let Some(n) = schedules
            .iter()
            .filter_map(|s| get_i64(s, "instances"))
            .find(|n| *n < 0)
        {
            return Err(format!("schedule instances {n} must be at least 0"));
        }
    }
    Ok(())
}
