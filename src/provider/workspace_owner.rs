//! `hangar_workspace_owner`: the user who owns the workspace being built.

use tf_provider::schema::{AttributeType, Schema};
use tf_provider::value::ValueAny;
use tf_provider::Diagnostics;

use super::common::{block, computed, s, schema, sensitive, string, DataSpec, Obj};
use super::contract::{self, lookup, lookup_non_empty};

pub struct WorkspaceOwner;

#[derive(serde::Deserialize)]
struct Role {
    name: String,
    #[serde(default)]
    org_id: String,
}

impl DataSpec for WorkspaceOwner {
    fn schema(&self) -> Schema {
        schema(block(
            "The owner of the workspace being built.",
            vec![
                ("id", computed(string(), "ID of the owner.")),
                ("name", computed(string(), "Username of the owner.")),
                ("full_name", computed(string(), "Full name of the owner.")),
                ("email", computed(string(), "Email address of the owner.")),
                (
                    "groups",
                    computed(
                        AttributeType::List(Box::new(string())),
                        "Names of the groups the owner belongs to.",
                    ),
                ),
                (
                    "session_token",
                    sensitive(computed(string(), "A session token of the owner, when the server issues one for the build; else empty.")),
                ),
                ("ssh_public_key", computed(string(), "The owner's SSH public key, when provided; else empty.")),
                ("login_type", computed(string(), "How the owner logs in: `password`, `github`, `oidc`, `token` or `none`.")),
                (
                    "oidc_access_token",
                    sensitive(computed(string(), "The owner's OpenID Connect access token, when they logged in that way; else empty.")),
                ),
                (
                    "rbac_roles",
                    computed(
                        AttributeType::List(Box::new(AttributeType::Object(
                            [("name".to_string(), string()), ("org_id".to_string(), string())]
                                .into_iter()
                                .collect(),
                        ))),
                        "The owner's roles (`name`, and `org_id`: empty for site-wide roles).",
                    ),
                ),
                (
                    "ssh_private_key",
                    sensitive(computed(string(), "The owner's SSH private key, when provided; else empty.")),
                ),
            ],
        ))
    }

    fn read(&self, state: &mut Obj, diags: &mut Diagnostics) {
        // Defaults as Coder's provider uses them, so templates plan outside a server.
        let fields = [
            (
                "id",
                lookup_non_empty(contract::WORKSPACE_OWNER_ID)
                    .unwrap_or_else(super::common::new_id),
            ),
            (
                "name",
                lookup_non_empty(contract::WORKSPACE_OWNER_NAME)
                    .unwrap_or_else(|| "default".into()),
            ),
            (
                "full_name",
                lookup_non_empty(contract::WORKSPACE_OWNER_FULL_NAME)
                    .unwrap_or_else(|| "default".into()),
            ),
            (
                "email",
                lookup_non_empty(contract::WORKSPACE_OWNER_EMAIL)
                    .unwrap_or_else(|| "default@example.com".into()),
            ),
            (
                "session_token",
                lookup(contract::WORKSPACE_OWNER_SESSION_TOKEN).unwrap_or_default(),
            ),
            (
                "ssh_public_key",
                lookup(contract::WORKSPACE_OWNER_SSH_PUBLIC_KEY).unwrap_or_default(),
            ),
            (
                "ssh_private_key",
                lookup(contract::WORKSPACE_OWNER_SSH_PRIVATE_KEY).unwrap_or_default(),
            ),
            (
                "oidc_access_token",
                lookup(contract::WORKSPACE_OWNER_OIDC_ACCESS_TOKEN).unwrap_or_default(),
            ),
        ];
        for (key, value) in fields {
            state.insert(key.into(), s(value));
        }
        let groups = match lookup_non_empty(contract::WORKSPACE_OWNER_GROUPS) {
            None => Vec::new(),
            Some(raw) => match serde_json::from_str::<Vec<String>>(&raw) {
                Ok(groups) => groups,
                Err(err) => {
                    diags.root_error_short(format!(
                        "{} must be a JSON list of strings: {err}",
                        contract::WORKSPACE_OWNER_GROUPS
                    ));
                    Vec::new()
                }
            },
        };
        state.insert(
            "groups".into(),
            ValueAny::List(groups.into_iter().map(s).collect()),
        );
        let login_type = lookup_non_empty(contract::WORKSPACE_OWNER_LOGIN_TYPE);
        state.insert(
            "login_type".into(),
            login_type.map(s).unwrap_or(ValueAny::Null),
        );
        let roles = match lookup_non_empty(contract::WORKSPACE_OWNER_RBAC_ROLES) {
            None => Vec::new(),
            Some(raw) => match serde_json::from_str::<Vec<Role>>(&raw) {
                Ok(roles) => roles,
                Err(err) => {
                    diags.root_error_short(format!(
                        "{} must be a JSON list of {{\"name\", \"org_id\"}}: {err}",
                        contract::WORKSPACE_OWNER_RBAC_ROLES
                    ));
                    Vec::new()
                }
            },
        };
        let roles = roles
            .into_iter()
            .map(|r| {
                ValueAny::Map([("name".into(), s(r.name)), ("org_id".into(), s(r.org_id))].into())
            })
            .collect();
        state.insert("rbac_roles".into(), ValueAny::List(roles));
    }
}
