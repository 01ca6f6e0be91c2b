//! How a build's resources are labeled: what hosts an agent, and what survives a stop.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Computational resources run an agent (a VM, a container); peripheral ones support
/// them (disks, networks, DNS records). Stored as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Computational,
    Peripheral,
}

/// Persistent resources survive a stop (home volumes); ephemeral ones exist only while
/// the workspace runs (`count = data.hangar_workspace.me.start_count`). Stored as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Lifetime {
    Persistent,
    Ephemeral,
}

/// A resource a version's import previewed: what a build of it will make.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PreviewResource {
    pub address: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub kind: Kind,
    pub lifetime: Lifetime,
}

/// What an update would do to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlannedAction {
    Create,
    Update,
    Replace,
    Delete,
}

impl PlannedAction {
    /// From a plan's `resource_changes[].change.actions`; None for no-op and read.
    pub fn from_actions(actions: &[&str]) -> Option<PlannedAction> {
        match actions {
            ["create"] => Some(PlannedAction::Create),
            ["update"] => Some(PlannedAction::Update),
            ["delete"] => Some(PlannedAction::Delete),
            ["delete", "create"] | ["create", "delete"] => Some(PlannedAction::Replace),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PlannedAction::Create => "create",
            PlannedAction::Update => "update",
            PlannedAction::Replace => "replace",
            PlannedAction::Delete => "delete",
        }
    }

    /// Whether the resource's current contents are gone afterwards.
    pub fn destroys(self) -> bool {
        matches!(self, PlannedAction::Replace | PlannedAction::Delete)
    }
}

/// One resource an update would touch, and whether that loses data: a persistent
/// resource (a home volume, a disk) replaced or destroyed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlannedChange {
    pub address: String,
    pub action: PlannedAction,
    pub lifetime: Lifetime,
    pub loses_data: bool,
}

/// The changes in a plan (`terraform show -json`). Agents are left out: every build
/// gives them a new token, so they always change. `lifetime_of` says each address's lifetime (the workspace's current
/// classification first, the new version's for new resources).
pub fn planned_changes(
    plan: &serde_json::Value,
    lifetime_of: impl Fn(&str) -> Lifetime,
) -> Vec<PlannedChange> {
    let mut out = Vec::new();
    for rc in plan["resource_changes"].as_array().into_iter().flatten() {
        let type_ = rc["type"].as_str().unwrap_or_default();
        if rc["mode"] != "managed" || type_ == "hangar_agent" || type_ == "coder_agent" {
            continue;
        }
        let actions: Vec<&str> = rc["change"]["actions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str())
            .collect();
        let Some(action) = PlannedAction::from_actions(&actions) else {
            continue;
        };
        let address = rc["address"].as_str().unwrap_or_default().to_string();
        let lifetime = lifetime_of(&address);
        out.push(PlannedChange {
            loses_data: lifetime == Lifetime::Persistent && action.destroys(),
            address,
            action,
            lifetime,
        });
    }
    out
}

#[derive(Debug, thiserror::Error)]
#[error("{value:?} is not a valid {what}; expected one of: {expected}")]
pub struct ParseLabelError {
    what: &'static str,
    value: String,
    expected: &'static str,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Computational => "computational",
            Kind::Peripheral => "peripheral",
        }
    }
}

impl Lifetime {
    pub fn as_str(self) -> &'static str {
        match self {
            Lifetime::Persistent => "persistent",
            Lifetime::Ephemeral => "ephemeral",
        }
    }
}

impl FromStr for Kind {
    type Err = ParseLabelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "computational" => Ok(Kind::Computational),
            "peripheral" => Ok(Kind::Peripheral),
            _ => Err(ParseLabelError {
                what: "resource kind",
                value: s.to_string(),
                expected: "computational, peripheral",
            }),
        }
    }
}

impl FromStr for Lifetime {
    type Err = ParseLabelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "persistent" => Ok(Lifetime::Persistent),
            "ephemeral" => Ok(Lifetime::Ephemeral),
            _ => Err(ParseLabelError {
                what: "resource lifetime",
                value: s.to_string(),
                expected: "persistent, ephemeral",
            }),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Lifetime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_plan_reads_as_changes_with_data_loss_marked() {
        let plan = serde_json::json!({"resource_changes": [
            {"address": "docker_volume.home", "mode": "managed", "type": "docker_volume",
             "change": {"actions": ["delete", "create"]}},
            {"address": "docker_container.dev[0]", "mode": "managed", "type": "docker_container",
             "change": {"actions": ["delete", "create"]}},
            {"address": "terraform_data.new", "mode": "managed", "type": "terraform_data",
             "change": {"actions": ["create"]}},
            {"address": "terraform_data.same", "mode": "managed", "type": "terraform_data",
             "change": {"actions": ["no-op"]}},
            {"address": "hangar_agent.main", "mode": "managed", "type": "hangar_agent",
             "change": {"actions": ["update"]}},
            {"address": "hangar_app.files", "mode": "managed", "type": "hangar_app",
             "change": {"actions": ["update"]}},
            {"address": "data.x.y", "mode": "data", "type": "x", "change": {"actions": ["read"]}}
        ]});
        let changes = planned_changes(&plan, |a| {
            if a == "docker_volume.home" {
                Lifetime::Persistent
            } else {
                Lifetime::Ephemeral
            }
        });
        let got: Vec<(&str, PlannedAction, bool)> = changes
            .iter()
            .map(|c| (c.address.as_str(), c.action, c.loses_data))
            .collect();
        assert_eq!(
            got,
            vec![
                ("docker_volume.home", PlannedAction::Replace, true),
                ("docker_container.dev[0]", PlannedAction::Replace, false),
                ("terraform_data.new", PlannedAction::Create, false),
                ("hangar_app.files", PlannedAction::Update, false),
            ]
        );
    }

    use super::*;

    #[test]
    fn text_round_trips_and_matches_serde() {
        for k in [Kind::Computational, Kind::Peripheral] {
            assert_eq!(k.as_str().parse::<Kind>().unwrap(), k);
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for l in [Lifetime::Persistent, Lifetime::Ephemeral] {
            assert_eq!(l.as_str().parse::<Lifetime>().unwrap(), l);
            assert_eq!(serde_json::to_value(l).unwrap(), l.as_str());
        }
        let err = "Computational".parse::<Kind>().unwrap_err().to_string();
        assert!(err.contains("computational, peripheral"), "{err}");
    }
}
