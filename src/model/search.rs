//! The workspace list's search text, as Coder's: `name`, `owner:alice`, `template:local`,
//! `status:running`, `name:dev`, combined with spaces (every term must match). Parsed once
//! here; the database applies it in SQL.

use super::{JobStatus, Transition, WorkspaceStatus};

/// Longest search text accepted: the terms become SQL parameters.
pub const MAX_SEARCH_LEN: usize = 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspaceSearch {
    pub owner: Option<String>,
    pub template: Option<String>,
    pub status: Option<WorkspaceStatus>,
    /// Each must occur in the workspace's name.
    pub name_contains: Vec<String>,
}

impl WorkspaceSearch {
    pub fn parse(text: &str) -> Result<WorkspaceSearch, String> {
        if text.len() > MAX_SEARCH_LEN {
            return Err(format!(
                "the search is {} bytes; at most {MAX_SEARCH_LEN} are accepted",
                text.len()
            ));
        }
        let mut s = WorkspaceSearch::default();
        for term in text.split_whitespace() {
            match term.split_once(':') {
                Some(("owner", v)) => s.owner = Some(v.to_string()),
                Some(("template", v)) => s.template = Some(v.to_string()),
                Some(("status", v)) => {
                    s.status = Some(v.parse().map_err(|_| {
                        let all: Vec<&str> =
                            WorkspaceStatus::ALL.iter().map(|s| s.as_str()).collect();
                        format!(
                            "unknown status {v:?} in the search; use one of: {}",
                            all.join(", ")
                        )
                    })?)
                }
                Some(("name", v)) => s.name_contains.push(v.to_string()),
                Some((key, _)) => {
                    return Err(format!(
                        "unknown search key {key:?}; use owner:, template:, status: or name:"
                    ))
                }
                None => s.name_contains.push(term.to_string()),
            }
        }
        Ok(s)
    }
}

/// The (transition, job status) pairs whose workspace status is `status`: a status is
/// derived, never stored, so filtering by one in SQL means matching these pairs.
pub fn status_pairs(status: WorkspaceStatus) -> Vec<(Transition, JobStatus)> {
    let mut out = Vec::new();
    for t in Transition::ALL {
        for j in JobStatus::ALL {
            if WorkspaceStatus::derive(*t, *j) == status {
                out.push((*t, *j));
            }
        }
    }
    out
}

/// `text` as a `LIKE … ESCAPE '\'` pattern matching it anywhere.
pub fn like_contains(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_parsed_by_key() {
        let s = WorkspaceSearch::parse("owner:alice  template:local status:running dev name:x")
            .unwrap();
        assert_eq!(s.owner.as_deref(), Some("alice"));
        assert_eq!(s.template.as_deref(), Some("local"));
        assert_eq!(s.status, Some(WorkspaceStatus::Running));
        assert_eq!(s.name_contains, vec!["dev".to_string(), "x".to_string()]);
        assert_eq!(
            WorkspaceSearch::parse("").unwrap(),
            WorkspaceSearch::default()
        );
    }

    #[test]
    fn bad_terms_say_what_is_accepted() {
        let e = WorkspaceSearch::parse("status:sleeping").unwrap_err();
        assert!(e.contains("running") && e.contains("sleeping"), "{e}");
        let e = WorkspaceSearch::parse("colour:red").unwrap_err();
        assert!(e.contains("owner:"), "{e}");
        assert!(WorkspaceSearch::parse(&"a".repeat(MAX_SEARCH_LEN + 1)).is_err());
    }

    #[test]
    fn every_status_pair_derives_its_status() {
        let mut seen = 0;
        for s in WorkspaceStatus::ALL {
            for (t, j) in status_pairs(*s) {
                assert_eq!(WorkspaceStatus::derive(t, j), *s);
                seen += 1;
            }
        }
        assert_eq!(seen, Transition::ALL.len() * JobStatus::ALL.len());
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_contains("a_b%c\\"), "%a\\_b\\%c\\\\%");
    }
}
