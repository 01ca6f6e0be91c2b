//! `hangar_secret`: a secret the owner must provide (as an environment variable or a
//! file in the workspace); its value comes from the owner's stored secrets at build time.

use tf_provider::schema::Schema;
use tf_provider::Diagnostics;

use super::common::{
    attr_error, block, computed, get_str, optional, required, s, schema, sensitive, string,
    DataSpec, Obj,
};
use super::contract::{lookup, secret_env_name};

pub struct Secret;

impl DataSpec for Secret {
    fn schema(&self) -> Schema {
        schema(block(
            "A secret the owner provides; exactly one of `env` and `file` says where it goes.",
            vec![
                (
                    "env",
                    optional(string(), "The environment variable it is injected as."),
                ),
                (
                    "file",
                    optional(string(), "The file it is written to (`~/…` or absolute)."),
                ),
                (
                    "help_message",
                    required(
                        string(),
                        "What to tell the owner when the secret is missing.",
                    ),
                ),
                (
                    "value",
                    sensitive(computed(string(), "The owner's value; empty when missing.")),
                ),
                ("id", computed(string(), "A random ID for this read.")),
            ],
        ))
    }

    fn validate(&self, config: &Obj, diags: &mut Diagnostics) {
        let env = get_str(config, "env");
        let file = get_str(config, "file");
        let unknown =
            super::common::is_unknown(config, "env") || super::common::is_unknown(config, "file");
        if !unknown && env.is_some() == file.is_some() {
            attr_error(
                diags,
                "env",
                "exactly one of env and file must be set".into(),
            );
        }
        if let Some(env) = env {
            let valid = env.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && env.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                attr_error(
                    diags,
                    "env",
                    format!(
                        "env \"{env}\" must be letters, digits and _, not starting with a digit"
                    ),
                );
            }
        }
        if let Some(file) = file {
            if !(file.starts_with("~/") || file.starts_with('/')) {
                attr_error(
                    diags,
                    "file",
                    format!("file \"{file}\" must start with ~/ or /"),
                );
            }
        }
    }

    fn read(&self, state: &mut Obj, _diags: &mut Diagnostics) {
        let value = secret_env_name(get_str(state, "env"), get_str(state, "file"))
            .and_then(|name| lookup(&name))
            .unwrap_or_default();
        state.insert("value".into(), s(value));
        state.insert("id".into(), s(super::common::new_id()));
    }
}
