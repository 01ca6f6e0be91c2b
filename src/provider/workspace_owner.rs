//! `hangar_workspace_owner`: the user who owns the workspace being built.

use tf_provider::schema::{AttributeType, Schema};
use tf_provider::value::ValueAny;
use tf_provider::Diagnostics;

use super::common::{block, computed, s, schema, sensitive, string, DataSpec, Obj};
use super::contract::{self, lookup, lookup_non_empty};

pub struct WorkspaceOwner;

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
    }
}
