//! `hangar_provisioner`: the machine running the build (its OS and architecture, as Go
//! names them, which is what templates compare against `hangar_agent`'s `os`/`arch`).

use tf_provider::schema::Schema;
use tf_provider::Diagnostics;

use super::common::{block, computed, s, schema, string, DataSpec, Obj};
use super::contract::{self, lookup_non_empty};

pub struct Provisioner;

impl DataSpec for Provisioner {
    fn schema(&self) -> Schema {
        schema(block(
            "The provisioner running this build.",
            vec![
                (
                    "id",
                    computed(
                        string(),
                        "ID of the provisioner (worker) running the build.",
                    ),
                ),
                (
                    "os",
                    computed(
                        string(),
                        "Its operating system: `linux`, `darwin`, `windows`.",
                    ),
                ),
                (
                    "arch",
                    computed(string(), "Its architecture: `amd64`, `arm64`, `armv7`."),
                ),
            ],
        ))
    }

    fn read(&self, state: &mut Obj, _diags: &mut Diagnostics) {
        let id = lookup_non_empty(contract::PROVISIONER_ID).unwrap_or_else(super::common::new_id);
        let (os, arch) = crate::model::this_platform();
        state.insert("id".into(), s(id));
        state.insert("os".into(), s(os));
        state.insert("arch".into(), s(arch));
    }
}
