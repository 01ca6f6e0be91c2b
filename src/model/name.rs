//! Names of users, templates, versions, workspaces and tokens share one rule, so a name
//! that works in one place works in every URL and CLI argument.

use std::fmt;

#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Name(String);

/// A name debug-prints as the quoted string it is (`"dev"`, not `Name("dev")`): messages
/// quote names with `{:?}`, and users should never see a Rust type in them.
impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("a name cannot be empty")]
    Empty,
    #[error("{0:?} is too long: at most 32 characters")]
    TooLong(String),
    #[error("{0:?} may contain only lowercase letters, digits and hyphens, and cannot start or end with a hyphen")]
    Invalid(String),
}

impl Name {
    pub const MAX_LEN: usize = 32;

    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.chars().count() > Self::MAX_LEN {
            return Err(NameError::TooLong(s.to_string()));
        }
        let ok = s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok || s.starts_with('-') || s.ends_with('-') {
            return Err(NameError::Invalid(s.to_string()));
        }
        Ok(Name(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_lowercase_digits_hyphens() {
        assert_eq!(Name::parse("dev-1").unwrap().as_str(), "dev-1");
        assert_eq!(format!("{:?}", Name::parse("dev-1").unwrap()), "\"dev-1\"");
        assert_eq!(Name::parse(&"a".repeat(32)).unwrap().as_str().len(), 32);
    }

    #[test]
    fn refuses_what_breaks_urls() {
        assert_eq!(Name::parse(""), Err(NameError::Empty));
        assert!(matches!(
            Name::parse(&"a".repeat(33)),
            Err(NameError::TooLong(_))
        ));
        for bad in ["Dev", "a_b", "a b", "-a", "a-", "ü", "a/b", "a.b"] {
            assert!(
                matches!(Name::parse(bad), Err(NameError::Invalid(_))),
                "{bad}"
            );
        }
    }
}
