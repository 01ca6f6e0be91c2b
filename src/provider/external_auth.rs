//! `hangar_external_auth`: the owner's access token for an OAuth2 provider the server is
//! configured with (GitHub, GitLab…), so the workspace can clone private repositories.

use tf_provider::schema::Schema;
use tf_provider::Diagnostics;

use super::common::{
    attr_error, block, boolean, computed, get_str, optional, required, s, schema, sensitive,
    string, DataSpec, Obj,
};
use super::contract::{external_auth_env_name, lookup};

pub struct ExternalAuth;

impl DataSpec for ExternalAuth {
    fn schema(&self) -> Schema {
        schema(block(
            "An external auth provider the owner links their account with; builds get the owner's current access token.",
            vec![
                ("id", required(string(), "The provider's id in the server's external auth configuration.")),
                ("optional", optional(boolean(), "Whether builds may go ahead without a linked account (the token is then empty).")),
                ("access_token", sensitive(computed(string(), "The owner's access token; empty when not linked."))),
            ],
        ))
    }

    fn validate(&self, config: &Obj, diags: &mut Diagnostics) {
        if let Some(id) = get_str(config, "id") {
            let valid = !id.is_empty()
                && id.len() <= 64
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
            if !valid {
                attr_error(
                    diags,
                    "id",
                    format!("external auth id \"{id}\" must be 1 to 64 letters, digits, '-', '_' or '.'"),
                );
            }
        }
    }

    fn read(&self, state: &mut Obj, _diags: &mut Diagnostics) {
        let id = get_str(state, "id").unwrap_or_default().to_string();
        let token = lookup(&external_auth_env_name(&id)).unwrap_or_default();
        state.insert("access_token".into(), s(token));
    }
}
