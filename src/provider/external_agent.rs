//! `hangar_external_agent`: marks an agent as external: the compute is the user's, and
//! Hangar only issues the token and init script (shown to the user by the server).

use tf_provider::schema::Schema;
use tf_provider::Diagnostics;

use super::common::{block, computed, required, schema, string, Obj, ResourceSpec};

pub struct ExternalAgent;

impl ResourceSpec for ExternalAgent {
    fn schema(&self) -> Schema {
        schema(block(
            "Makes an agent external: the user runs its init script on a machine of their own.",
            vec![
                (
                    "agent_id",
                    required(string(), "The `id` of the `hangar_agent`."),
                ),
                ("id", computed(string(), "ID of this resource.")),
            ],
        ))
    }

    fn validate(&self, _config: &Obj, _diags: &mut Diagnostics) {}

    fn force_new(&self) -> &'static [&'static str] {
        &["agent_id"]
    }
}
