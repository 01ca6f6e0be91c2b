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
