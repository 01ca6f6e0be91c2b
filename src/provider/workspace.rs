//! `hangar_workspace`: the workspace being built and the transition of this build.

use tf_provider::schema::Schema;
use tf_provider::value::ValueAny;
use tf_provider::Diagnostics;

use super::common::{block, boolean, computed, number, s, schema, string, DataSpec, Obj};
use super::contract::{self, lookup, lookup_non_empty};

pub struct Workspace;

impl DataSpec for Workspace {
    fn schema(&self) -> Schema {
        schema(block(
            "The workspace this build belongs to. Values come from the build runner; outside \
             Hangar (e.g. `terraform plan` on a laptop) they take Coder's defaults.",
            vec![
                ("id", computed(string(), "ID of the workspace.")),
                ("name", computed(string(), "Name of the workspace.")),
                (
                    "transition",
                    computed(
                        string(),
                        "`start`, `stop` or `delete`. Defaults to `start`.",
                    ),
                ),
                (
                    "start_count",
                    computed(
                        number(),
                        "1 when the transition is `start`, else 0. Use it as `count` on \
                         everything that should exist only while the workspace runs.",
                    ),
                ),
                (
                    "build_id",
                    computed(string(), "ID of this build (empty outside Hangar)."),
                ),
                (
                    "access_url",
                    computed(string(), "URL of the Hangar server."),
                ),
                ("access_port", computed(number(), "Port of `access_url`.")),
                (
                    "template_id",
                    computed(string(), "ID of the workspace's template."),
                ),
                (
                    "template_name",
                    computed(string(), "Name of the workspace's template."),
                ),
                (
                    "template_version",
                    computed(string(), "Name of the template version being built."),
                ),
                (
                    "is_prebuild",
                    computed(boolean(), "Whether this is an unclaimed prebuilt workspace (owned by the prebuilds system user)."),
                ),
                (
                    "prebuild_count",
                    computed(number(), "1 while `is_prebuild`, else 0 (for `count`)."),
                ),
                (
                    "is_prebuild_claim",
                    computed(boolean(), "Whether this build is the first after a user claimed the prebuilt workspace."),
                ),
            ],
        ))
    }

    fn read(&self, state: &mut Obj, _diags: &mut Diagnostics) {
        let transition =
            lookup_non_empty(contract::WORKSPACE_TRANSITION).unwrap_or_else(|| "start".into());
        let start_count = i64::from(transition == "start");
        let url = super::access_url();
        let port = access_port(&url);
        let fields = [
            (
                "id",
                lookup_non_empty(contract::WORKSPACE_ID).unwrap_or_else(super::common::new_id),
            ),
            (
                "name",
                lookup_non_empty(contract::WORKSPACE_NAME).unwrap_or_else(|| "default".into()),
            ),
            (
                "build_id",
                lookup(contract::WORKSPACE_BUILD_ID).unwrap_or_default(),
            ),
            (
                "template_id",
                lookup(contract::TEMPLATE_ID).unwrap_or_default(),
            ),
            (
                "template_name",
                lookup(contract::TEMPLATE_NAME).unwrap_or_default(),
            ),
            (
                "template_version",
                lookup(contract::TEMPLATE_VERSION).unwrap_or_default(),
            ),
            ("access_url", url),
            ("transition", transition),
        ];
        for (key, value) in fields {
            state.insert(key.into(), s(value));
        }
        state.insert("start_count".into(), ValueAny::Number(start_count));
        state.insert("access_port".into(), ValueAny::Number(port));
        // A claim comes after the prebuild: the two are never true together.
        let claim = contract::flag(contract::WORKSPACE_IS_PREBUILD_CLAIM);
        let prebuild = !claim && contract::flag(contract::WORKSPACE_IS_PREBUILD);
        state.insert("is_prebuild".into(), ValueAny::Bool(prebuild));
        state.insert(
            "prebuild_count".into(),
            ValueAny::Number(i64::from(prebuild)),
        );
        state.insert("is_prebuild_claim".into(), ValueAny::Bool(claim));
    }
}

/// The port of a URL, defaulting by scheme as Coder does.
fn access_port(url: &str) -> i64 {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    // The port follows the last ':' unless that ':' is inside an IPv6 literal.
    if let Some((_, port)) = host
        .rsplit_once(':')
        .filter(|(h, _)| !h.ends_with('[') && !host.ends_with(']'))
    {
        if let Ok(port) = port.parse() {
            return port;
        }
    }
    if scheme == "https" {
        443
    } else {
        80
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn access_port_from_url() {
        assert_eq!(super::access_port("http://localhost:3000"), 3000);
        assert_eq!(super::access_port("https://hangar.example.com/x"), 443);
        assert_eq!(super::access_port("http://[::1]:8080/"), 8080);
        assert_eq!(super::access_port("http://[::1]/"), 80);
    }
}
