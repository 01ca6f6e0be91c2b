//! Presets: named parameter values of a template version (`hangar_workspace_preset`),
//! and the prebuilt workspaces kept ready for them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Preset {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub icon: String,
    /// Preselected in the create form.
    #[serde(default)]
    pub default: bool,
    /// Values it sets; parameters it leaves out stay the user's choice. May name
    /// parameters a version no longer has (Coder allows it; they are ignored).
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prebuilds: Option<Prebuilds>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Prebuilds {
    pub instances: u32,
    /// Seconds after which an unclaimed prebuilt workspace is replaced; 0 never.
    #[serde(default)]
    pub ttl_secs: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<Scheduling>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Scheduling {
    pub timezone: String,
    pub schedules: Vec<Schedule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Schedule {
    pub cron: String,
    pub instances: u32,
}

impl Preset {
    /// A preset from the attributes of a `hangar_workspace_preset` in a state or plan
    /// (`None` for anything that is not one: a name is required).
    pub fn from_attributes(a: &serde_json::Value) -> Option<Preset> {
        let name = a["name"].as_str().filter(|n| !n.is_empty())?.to_string();
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        let count = |v: &serde_json::Value| v.as_u64().unwrap_or(0).min(u32::MAX as u64) as u32;
        let parameters = a["parameters"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let prebuilds = a["prebuilds"].as_array().and_then(|p| p.first()).map(|p| {
            let scheduling =
                p["scheduling"]
                    .as_array()
                    .and_then(|s| s.first())
                    .map(|s| Scheduling {
                        timezone: text(&s["timezone"]),
                        schedules: s["schedule"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|e| Schedule {
                                cron: text(&e["cron"]),
                                instances: count(&e["instances"]),
                            })
                            .collect(),
                    });
            Prebuilds {
                instances: count(&p["instances"]),
                ttl_secs: p["expiration_policy"]
                    .as_array()
                    .and_then(|e| e.first())
                    .and_then(|e| e["ttl"].as_u64())
                    .unwrap_or(0),
                scheduling,
            }
        });
        Some(Preset {
            name,
            description: text(&a["description"]),
            icon: text(&a["icon"]),
            default: a["default"].as_bool().unwrap_or(false),
            parameters,
            prebuilds,
        })
    }
}

/// Checks a version's presets together: unique names, at most one default.
pub fn check_presets(presets: &[Preset]) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for p in presets {
        if !seen.insert(p.name.as_str()) {
            return Err(format!(
                "two presets are named \"{}\"; names must be unique",
                p.name
            ));
        }
    }
    let defaults: Vec<&str> = presets
        .iter()
        .filter(|p| p.default)
        .map(|p| p.name.as_str())
        .collect();
    if defaults.len() > 1 {
        return Err(format!(
            "presets {} are all marked default; at most one may be",
            defaults.join(", ")
        ));
    }
    Ok(())
}

/// An IANA time zone name this machine knows (its tz database), or UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeZone(pub String);

impl TimeZone {
    pub fn load(name: &str) -> Result<TimeZone, String> {
        if matches!(name, "UTC" | "Etc/UTC" | "GMT") {
            return Ok(TimeZone(name.to_string()));
        }
        let safe = !name.is_empty()
            && !name.starts_with('/')
            && !name
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c));
        if !safe {
            return Err(format!("\"{name}\" is not a time zone name"));
        }
        let path = std::path::Path::new("/usr/share/zoneinfo").join(name);
        let mut magic = [0u8; 4];
        let ok = std::fs::File::open(&path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .is_ok()
            && &magic == b"TZif";
        if ok {
            Ok(TimeZone(name.to_string()))
        } else {
            Err(format!(
                "\"{name}\" is not in this machine's time zone database"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_come_from_state_attributes() {
        let a = serde_json::json!({
            "name": "big", "description": "d", "icon": null, "default": true,
            "parameters": {"cpu": "4"},
            "prebuilds": [{"instances": 2, "expiration_policy": [{"ttl": 7200}],
                "scheduling": [{"timezone": "UTC", "schedule": [{"cron": "* 8-18 * * 1-5", "instances": 3}]}]}]
        });
        let p = Preset::from_attributes(&a).unwrap();
        assert_eq!(p.parameters["cpu"], "4");
        assert!(p.default);
        let pre = p.prebuilds.unwrap();
        assert_eq!((pre.instances, pre.ttl_secs), (2, 7200));
        assert_eq!(pre.scheduling.unwrap().schedules[0].instances, 3);
        assert!(Preset::from_attributes(&serde_json::json!({"name": ""})).is_none());
    }

    #[test]
    fn names_unique_and_one_default() {
        let p = |n: &str, d: bool| Preset {
            name: n.into(),
            default: d,
            ..Default::default()
        };
        assert!(check_presets(&[p("a", true), p("b", false)]).is_ok());
        assert!(check_presets(&[p("a", false), p("a", false)])
            .unwrap_err()
            .contains("unique"));
        assert!(check_presets(&[p("a", true), p("b", true)])
            .unwrap_err()
            .contains("default"));
    }

    #[test]
    fn time_zones_are_checked_against_the_database() {
        assert!(TimeZone::load("UTC").is_ok());
        assert!(TimeZone::load("../../etc/passwd").is_err());
        assert!(TimeZone::load("Mars/Olympus").is_err());
    }
}

/// An external auth provider a version's builds read (`hangar_external_auth`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ExternalAuthRequirement {
    pub id: String,
    /// Builds may go ahead without a linked account.
    #[serde(default)]
    pub optional: bool,
}

/// What an import learns about a version besides its parameters and resources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct VersionFacts {
    pub presets: Vec<Preset>,
    pub tags: BTreeMap<String, String>,
    pub external_auth: Vec<ExternalAuthRequirement>,
}
