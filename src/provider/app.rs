//! `hangar_app`: a web app or command reachable through the dashboard, served by an agent.

use tf_provider::schema::{NestedBlock, Schema};
use tf_provider::value::ValueAny;
use tf_provider::Diagnostics;

use super::common::{
    attr_error, block, boolean, computed, defaulted, get_blocks, get_str, is_null, number,
    optional, required, s, schema, string, with_blocks, Obj, ResourceSpec,
};

pub struct App;

const SHARES: &[&str] = &["owner", "authenticated", "public"];

/// Slugs appear in URLs and hostnames: lowercase words joined by single hyphens (Coder's rule).
fn valid_slug(slug: &str) -> bool {
    !slug.is_empty()
        && !slug.starts_with('-')
        && !slug.ends_with('-')
        && !slug.contains("--")
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl ResourceSpec for App {
    fn schema(&self) -> Schema {
        let healthcheck = block(
            "How the agent checks that the app is up.",
            vec![
                (
                    "url",
                    required(string(), "URL the agent polls (from inside the workspace)."),
                ),
                ("interval", required(number(), "Seconds between checks.")),
                (
                    "threshold",
                    required(
                        number(),
                        "Failed checks before the app counts as unhealthy.",
                    ),
                ),
            ],
        );
        schema(with_blocks(
            block(
                "An app of an agent: a URL it proxies or a command it runs in a terminal.",
                vec![
                    ("agent_id", required(string(), "The `id` of the `hangar_agent`.")),
                    ("slug", required(string(), "Unique per agent; lowercase letters, digits and single hyphens. Appears in the app's URL.")),
                    ("display_name", defaulted(string(), "Name shown in the dashboard (at most 64 characters); defaults to the slug.")),
                    ("url", optional(string(), "URL the agent proxies (e.g. `http://localhost:8080`). Exclusive with `command`.")),
                    ("command", optional(string(), "Command run in a terminal. Exclusive with `url`.")),
                    ("icon", optional(string(), "URL or path of an icon.")),
                    ("share", defaulted(string(), "Who may open it: `owner` (default), `authenticated` or `public`.")),
                    ("subdomain", optional(boolean(), "Serve on its own subdomain instead of a path.")),
                    ("external", defaulted(boolean(), "`url` is opened directly by the browser, not proxied. Default false.")),
                    ("tooltip", optional(string(), "Markdown shown when hovering over the app (at most 2048 characters).")),
                    ("open_in", defaulted(string(), "`slim-window` (default) or `tab`.")),
                    ("order", optional(number(), "Position; lower first.")),
                    ("hidden", defaulted(boolean(), "Hide from the dashboard. Default false.")),
                    ("group", optional(string(), "Group name in the dashboard (at most 64 characters).")),
                    ("id", computed(string(), "ID of this resource.")),
                ],
            ),
            vec![("healthcheck", NestedBlock::Set(healthcheck))],
        ))
    }

    fn validate(&self, config: &Obj, diags: &mut Diagnostics) {
        if let Some(slug) = get_str(config, "slug") {
            if !valid_slug(slug) {
                attr_error(diags, "slug", format!("slug \"{slug}\" must be lowercase letters, digits and single hyphens, not starting or ending with a hyphen"));
            }
        }
        if let Some(url) = get_str(config, "url") {
            if let Some(scheme) = super::common::script_scheme(url) {
                attr_error(
                    diags,
                    "url",
                    format!("a {scheme}: url runs script in the dashboard; use http(s) or an app's own scheme (vscode://, …)"),
                );
            }
        }
        for (attr, max) in [("display_name", 64), ("group", 64), ("tooltip", 2048)] {
            if let Some(v) = get_str(config, attr).filter(|v| v.chars().count() > max) {
                let n = v.chars().count();
                attr_error(
                    diags,
                    attr,
                    format!("{attr} is {n} characters; at most {max}"),
                );
            }
        }
        if get_blocks(config, "healthcheck").len() > 1 {
            attr_error(diags, "healthcheck", "at most one healthcheck block".into());
        }
        for (attr, conflict) in conflicts(config) {
            attr_error(
                diags,
                attr,
                format!("{attr} conflicts with {conflict}: an app cannot have both"),
            );
        }
        if let Some(share) = get_str(config, "share") {
            if !SHARES.contains(&share) {
                attr_error(
                    diags,
                    "share",
                    format!("share \"{share}\" is not one of {}", SHARES.join(", ")),
                );
            }
        }
        if let Some(open_in) = get_str(config, "open_in") {
            if open_in != "slim-window" && open_in != "tab" {
                attr_error(
                    diags,
                    "open_in",
                    format!("open_in \"{open_in}\" must be \"slim-window\" or \"tab\""),
                );
            }
        }
    }

    fn force_new(&self) -> &'static [&'static str] {
        &["agent_id", "slug"]
    }

    fn defaults(&self) -> Vec<(&'static str, ValueAny)> {
        vec![
            ("share", s("owner")),
            ("open_in", s("slim-window")),
            ("external", ValueAny::Bool(false)),
            ("hidden", ValueAny::Bool(false)),
        ]
    }

    fn normalize(&self, state: &mut Obj) {
        if is_null(state, "display_name") {
            let slug = state.get("slug").cloned().unwrap_or(ValueAny::Null);
            state.insert("display_name".into(), slug);
        }
    }
}

/// Coder's exclusive pairs: `command` with `url` or `subdomain`; `healthcheck` with
/// `command`; `external` with `healthcheck`, `command`, `subdomain` or `share`.
fn conflicts(config: &Obj) -> Vec<(&'static str, &'static str)> {
    let set = |attr: &str| match config.get(attr) {
        None | Some(ValueAny::Null) => false,
        Some(ValueAny::Bool(b)) => *b,
        Some(ValueAny::List(items)) => !items.is_empty(),
        Some(_) => true,
    };
    let pairs = [
        ("command", "url"),
        ("command", "subdomain"),
        ("healthcheck", "command"),
        ("external", "healthcheck"),
        ("external", "command"),
        ("external", "subdomain"),
        ("external", "share"),
    ];
    pairs
        .into_iter()
        // `share` always has a value once defaulted; only a non-default one conflicts.
        .filter(|(a, b)| {
            set(a) && set(b) && !(*b == "share" && get_str(config, "share") == Some("owner"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs() {
        for ok in ["code-server", "a", "app1"] {
            assert!(super::valid_slug(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a--b", "Code", "a_b", "a b"] {
            assert!(!super::valid_slug(bad), "{bad}");
        }
    }
}
