//! The crate's modules depend on each other in one direction only (docs/ARCHITECTURE.md):
//! `wire` and `model` are leaves, the client speaks only `wire`, the provisioner never
//! imports the API, and nothing imports its way back up. This test reads every `crate::`
//! path in `src/` and checks it against the allowed table, so a new import that breaks
//! the layering fails here, naming the file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module and the modules it may use. Nothing else.
const ALLOWED: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("config", &["external_auth"]),
    ("external_auth", &["db", "model"]),
    ("provider", &["model"]),
    ("wire", &["model"]),
    ("isolate", &["model"]),
    ("client", &["wire"]),
    ("tunnel", &[]),
    ("unix_user", &[]),
    ("metrics", &[]),
    ("db", &["model", "wire"]),
    (
        "agent",
        &["client", "model", "provider", "tunnel", "unix_user", "wire"],
    ),
    (
        "provisioner",
        &[
            "config",
            "db",
            "external_auth",
            "metrics",
            "model",
            "provider",
            "unix_user",
            "wire",
        ],
    ),
    (
        "api",
        &[
            "config",
            "db",
            "external_auth",
            "isolate",
            "metrics",
            "model",
            "provisioner",
            "tunnel",
            "wire",
        ],
    ),
    (
        "web",
        &[
            "api",
            "config",
            "db",
            "external_auth",
            "model",
            "tunnel",
            "wire",
        ],
    ),
    (
        "server",
        &[
            "api",
            "config",
            "db",
            "metrics",
            "model",
            "provisioner",
            "web",
            "wire",
        ],
    ),
    (
        "cli",
        &[
            "agent",
            "client",
            "config",
            "db",
            "external_auth",
            "isolate",
            "model",
            "provider",
            "provisioner",
            "server",
            "tunnel",
            "unix_user",
            "wire",
        ],
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/api/agents.rs` → `api`; `src/client.rs` → `client`; `src/lib.rs` → none.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// The top-level modules named by `crate::x` paths in `text` (comments included: a doc
/// link to a module one may not use is a hint that the code wants to).
fn crate_uses(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `hangar_crate::` or similar
        }
        let rest = &text[at + "crate::".len()..];
        // `crate::{api, db::x}`: every name at the group's top level.
        let group = match rest.strip_prefix('{') {
            Some(inner) => top_level_names(inner),
            None => vec![leading_name(rest)],
        };
        out.extend(group.into_iter().filter(|n| !n.is_empty()));
    }
    out
}

fn leading_name(text: &str) -> String {
    text.trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The first name of each comma-separated item of a `{…}` group, up to its closing brace.
fn top_level_names(inner: &str) -> Vec<String> {
    let mut names = vec![leading_name(inner)];
    let mut depth = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => names.push(leading_name(&inner[i + 1..])),
            _ => {}
        }
    }
    names
}

#[test]
fn modules_depend_only_downwards() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(m, deps)| (*m, deps.iter().copied().collect()))
        .collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        seen.insert(module.clone());
        let Some(may_use) = allowed.get(module.as_str()) else {
            problems.push(format!(
                "{}: module `{module}` is not in this test's table: add it with what it may use",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for used in crate_uses(&text) {
            if used != module && !may_use.contains(used.as_str()) {
                problems.push(format!(
                    "{}: `{module}` uses `crate::{used}`, which it may not",
                    file.display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The table itself has no stale rows, so it stays the map of the crate.
    for m in allowed.keys() {
        assert!(
            seen.contains(*m),
            "the table names `{m}`, which src/ no longer has"
        );
    }
}

#[test]
fn the_allowed_table_has_no_cycles() {
    // Kahn's algorithm: repeatedly remove modules whose dependencies are all removed.
    let mut left: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(m, deps)| (*m, deps.iter().copied().collect()))
        .collect();
    while !left.is_empty() {
        let ready: Vec<&str> = left
            .iter()
            .filter(|(_, deps)| deps.iter().all(|d| !left.contains_key(d)))
            .map(|(m, _)| *m)
            .collect();
        assert!(!ready.is_empty(), "a cycle among {:?}", left.keys());
        for m in ready {
            left.remove(m);
        }
    }
}

#[test]
fn the_scanner_sees_grouped_and_qualified_paths() {
    let uses = crate_uses(
        "use crate::api::x;\nlet y = crate::db::Database::f();\n// my_crate::web\nuse crate::{model::{a, b}, web};",
    );
    assert_eq!(
        uses.into_iter().collect::<Vec<_>>(),
        ["api", "db", "model", "web"]
    );
}
