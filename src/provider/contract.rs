//! The environment contract between the build runner and the provider.
//!
//! The runner sets these variables on the `terraform` process; the provider (a child of
//! terraform) reads them. Every name lives here so both sides agree by construction.
//! Each Hangar name has the `CODER_…` name Coder's provider reads as a fallback, so a
//! runner (or a person on a laptop) that speaks Coder's dialect works too.

use sha2::{Digest, Sha256};

/// Base URL of the Hangar server (`access_url`, `${ACCESS_URL}` in init scripts).
pub const URL: &str = "HANGAR_URL";
pub const WORKSPACE_ID: &str = "HANGAR_WORKSPACE_ID";
pub const WORKSPACE_NAME: &str = "HANGAR_WORKSPACE_NAME";
/// `start`, `stop` or `delete`.
pub const WORKSPACE_TRANSITION: &str = "HANGAR_WORKSPACE_TRANSITION";
pub const WORKSPACE_BUILD_ID: &str = "HANGAR_WORKSPACE_BUILD_ID";
pub const WORKSPACE_OWNER_ID: &str = "HANGAR_WORKSPACE_OWNER_ID";
/// The owner's username.
pub const WORKSPACE_OWNER_NAME: &str = "HANGAR_WORKSPACE_OWNER_NAME";
pub const WORKSPACE_OWNER_EMAIL: &str = "HANGAR_WORKSPACE_OWNER_EMAIL";
pub const WORKSPACE_OWNER_FULL_NAME: &str = "HANGAR_WORKSPACE_OWNER_FULL_NAME";
/// A JSON list of group names, e.g. `["devs","ops"]`.
pub const WORKSPACE_OWNER_GROUPS: &str = "HANGAR_WORKSPACE_OWNER_GROUPS";
/// Optional: a session token of the owner (sensitive), for templates that call the API.
pub const WORKSPACE_OWNER_SESSION_TOKEN: &str = "HANGAR_WORKSPACE_OWNER_SESSION_TOKEN";
pub const WORKSPACE_OWNER_SSH_PUBLIC_KEY: &str = "HANGAR_WORKSPACE_OWNER_SSH_PUBLIC_KEY";
pub const WORKSPACE_OWNER_SSH_PRIVATE_KEY: &str = "HANGAR_WORKSPACE_OWNER_SSH_PRIVATE_KEY";
pub const TEMPLATE_ID: &str = "HANGAR_TEMPLATE_ID";
pub const TEMPLATE_NAME: &str = "HANGAR_TEMPLATE_NAME";
pub const TEMPLATE_VERSION: &str = "HANGAR_TEMPLATE_VERSION";
/// `password`, `github`, `oidc`, `token` or `none` (Coder's login types).
pub const WORKSPACE_OWNER_LOGIN_TYPE: &str = "HANGAR_WORKSPACE_OWNER_LOGIN_TYPE";
/// Sensitive; empty unless the owner logged in with OpenID Connect.
pub const WORKSPACE_OWNER_OIDC_ACCESS_TOKEN: &str = "HANGAR_WORKSPACE_OWNER_OIDC_ACCESS_TOKEN";
/// A JSON list of `{"name": …, "org_id": …}`.
pub const WORKSPACE_OWNER_RBAC_ROLES: &str = "HANGAR_WORKSPACE_OWNER_RBAC_ROLES";
/// `true` while the workspace is an unclaimed prebuilt workspace.
pub const WORKSPACE_IS_PREBUILD: &str = "HANGAR_WORKSPACE_IS_PREBUILD";
/// `true` on the first build after a user claimed a prebuilt workspace.
pub const WORKSPACE_IS_PREBUILD_CLAIM: &str = "HANGAR_WORKSPACE_IS_PREBUILD_CLAIM";
/// The id of the provisioner (worker) running the build.
pub const PROVISIONER_ID: &str = "HANGAR_PROVISIONER_ID";
/// The task (and its prompt) a build runs for, when it runs for one.
pub const TASK_ID: &str = "HANGAR_TASK_ID";
pub const TASK_PROMPT: &str = "HANGAR_TASK_PROMPT";

/// Prefixes; use [`parameter_env_name`] and friends rather than these directly.
pub const PARAMETER_PREFIX: &str = "HANGAR_PARAMETER_";
pub const PREVIOUS_PARAMETER_PREFIX: &str = "HANGAR_PARAMETER_PREVIOUS_";
pub const AGENT_SCRIPT_PREFIX: &str = "HANGAR_AGENT_SCRIPT_";
pub const EXTERNAL_AUTH_PREFIX: &str = "HANGAR_EXTERNAL_AUTH_ACCESS_TOKEN_";
pub const SECRET_ENV_PREFIX: &str = "HANGAR_SECRET_ENV_";
pub const SECRET_FILE_PREFIX: &str = "HANGAR_SECRET_FILE_";
pub const RUNNING_AGENT_TOKEN_PREFIX: &str = "HANGAR_RUNNING_AGENT_TOKEN_";

/// The variable the agent reads its token from. Templates export it (from the
/// `hangar_agent`'s `token`) when they run the `init_script`.
pub const AGENT_TOKEN: &str = "HANGAR_AGENT_TOKEN";

/// Coder's names for the same values (what `coder/coder` reads), used when the Hangar
/// name is unset.
pub fn coder_equivalent(name: &str) -> Option<String> {
    let fixed = match name {
        URL => "CODER_AGENT_URL",
        WORKSPACE_ID => "CODER_WORKSPACE_ID",
        WORKSPACE_NAME => "CODER_WORKSPACE_NAME",
        WORKSPACE_TRANSITION => "CODER_WORKSPACE_TRANSITION",
        WORKSPACE_BUILD_ID => "CODER_WORKSPACE_BUILD_ID",
        WORKSPACE_OWNER_ID => "CODER_WORKSPACE_OWNER_ID",
        // Coder's quirk: CODER_WORKSPACE_OWNER is the username and
        // CODER_WORKSPACE_OWNER_NAME the full name.
        WORKSPACE_OWNER_NAME => "CODER_WORKSPACE_OWNER",
        WORKSPACE_OWNER_FULL_NAME => "CODER_WORKSPACE_OWNER_NAME",
        WORKSPACE_OWNER_EMAIL => "CODER_WORKSPACE_OWNER_EMAIL",
        WORKSPACE_OWNER_GROUPS => "CODER_WORKSPACE_OWNER_GROUPS",
        WORKSPACE_OWNER_SESSION_TOKEN => "CODER_WORKSPACE_OWNER_SESSION_TOKEN",
        WORKSPACE_OWNER_SSH_PUBLIC_KEY => "CODER_WORKSPACE_OWNER_SSH_PUBLIC_KEY",
        WORKSPACE_OWNER_SSH_PRIVATE_KEY => "CODER_WORKSPACE_OWNER_SSH_PRIVATE_KEY",
        TEMPLATE_ID => "CODER_WORKSPACE_TEMPLATE_ID",
        TEMPLATE_NAME => "CODER_WORKSPACE_TEMPLATE_NAME",
        TEMPLATE_VERSION => "CODER_WORKSPACE_TEMPLATE_VERSION",
        AGENT_TOKEN => "CODER_AGENT_TOKEN",
        WORKSPACE_OWNER_LOGIN_TYPE => "CODER_WORKSPACE_OWNER_LOGIN_TYPE",
        WORKSPACE_OWNER_OIDC_ACCESS_TOKEN => "CODER_WORKSPACE_OWNER_OIDC_ACCESS_TOKEN",
        WORKSPACE_OWNER_RBAC_ROLES => "CODER_WORKSPACE_OWNER_RBAC_ROLES",
        WORKSPACE_IS_PREBUILD => "CODER_WORKSPACE_IS_PREBUILD",
        WORKSPACE_IS_PREBUILD_CLAIM => "CODER_WORKSPACE_IS_PREBUILD_CLAIM",
        TASK_ID => "CODER_TASK_ID",
        TASK_PROMPT => "CODER_TASK_PROMPT",
        _ => {
            // Longest prefix first: PREVIOUS is a longer form of PARAMETER.
            for (ours, theirs) in [
                (PREVIOUS_PARAMETER_PREFIX, "CODER_PARAMETER_PREVIOUS_"),
                (PARAMETER_PREFIX, "CODER_PARAMETER_"),
                (AGENT_SCRIPT_PREFIX, "CODER_AGENT_SCRIPT_"),
                (EXTERNAL_AUTH_PREFIX, "CODER_EXTERNAL_AUTH_ACCESS_TOKEN_"),
                (SECRET_ENV_PREFIX, "CODER_SECRET_ENV_"),
                (SECRET_FILE_PREFIX, "CODER_SECRET_FILE_"),
                (
                    RUNNING_AGENT_TOKEN_PREFIX,
                    "CODER_RUNNING_WORKSPACE_AGENT_TOKEN_",
                ),
            ] {
                if let Some(rest) = name.strip_prefix(ours) {
                    return Some(format!("{theirs}{rest}"));
                }
            }
            return None;
        }
    };
    Some(fixed.to_string())
}

/// Reads `name`, falling back to its Coder equivalent. A variable that is set but empty
/// counts as set: an empty string is a legitimate parameter value.
pub fn lookup(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .or_else(|| coder_equivalent(name).and_then(|coder| std::env::var(coder).ok()))
}

/// Like [`lookup`], but an empty value counts as unset (for identity fields, where
/// Coder substitutes a default for blank values).
pub fn lookup_non_empty(name: &str) -> Option<String> {
    lookup(name).filter(|v| !v.is_empty())
}

fn name_hash(name: &str) -> String {
    hex::encode(Sha256::digest(name.as_bytes()))
}

/// `HANGAR_PARAMETER_<lowercase hex sha256(name)>`: the value of parameter `name` for
/// this build. Hashing keeps any parameter name a valid variable name (same as Coder).
pub fn parameter_env_name(name: &str) -> String {
    format!("{PARAMETER_PREFIX}{}", name_hash(name))
}

/// `HANGAR_PARAMETER_PREVIOUS_<hex>`: the value the previous build used, for
/// `monotonic` validation.
pub fn previous_parameter_env_name(name: &str) -> String {
    format!("{PREVIOUS_PARAMETER_PREFIX}{}", name_hash(name))
}

/// `HANGAR_AGENT_SCRIPT_<os>_<arch>` (e.g. `HANGAR_AGENT_SCRIPT_linux_amd64`): the init
/// script the server rendered for that platform.
pub fn agent_script_env_name(os: &str, arch: &str) -> String {
    format!("{AGENT_SCRIPT_PREFIX}{os}_{arch}")
}

/// `HANGAR_EXTERNAL_AUTH_ACCESS_TOKEN_<id>`: the owner's access token for the external
/// auth provider `id` (sensitive).
pub fn external_auth_env_name(id: &str) -> String {
    format!("{EXTERNAL_AUTH_PREFIX}{id}")
}

/// Where a `secret` requirement's value comes from: `HANGAR_SECRET_ENV_<name>` for an
/// environment variable, `HANGAR_SECRET_FILE_<hex(path)>` for a file (Coder's scheme).
pub fn secret_env_name(env: Option<&str>, file: Option<&str>) -> Option<String> {
    match (env, file) {
        (Some(env), _) => Some(format!("{SECRET_ENV_PREFIX}{env}")),
        (None, Some(file)) => Some(format!("{SECRET_FILE_PREFIX}{}", hex::encode(file))),
        (None, None) => None,
    }
}

/// `HANGAR_RUNNING_AGENT_TOKEN_<agent id>`: on a prebuild's claim build, the token the
/// running agent holds, which the agent resource keeps (so nothing that uses the token
/// is replaced); the server hands the agent a fresh one afterwards.
pub fn running_agent_token_env_name(agent_id: &str) -> String {
    format!("{RUNNING_AGENT_TOKEN_PREFIX}{agent_id}")
}

/// Whether a flag variable says true (Coder's provider compares with `"true"`).
pub fn flag(name: &str) -> bool {
    lookup(name).is_some_and(|v| v == "true")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_coders_scheme() {
        assert_eq!(
            parameter_env_name("region").len(),
            PARAMETER_PREFIX.len() + 64
        );
        assert_eq!(
            coder_equivalent(&parameter_env_name("region")).unwrap(),
            format!("CODER_PARAMETER_{}", name_hash("region"))
        );
        assert_eq!(
            coder_equivalent(&previous_parameter_env_name("x")).unwrap(),
            format!("CODER_PARAMETER_PREVIOUS_{}", name_hash("x"))
        );
        assert_eq!(
            coder_equivalent(&agent_script_env_name("linux", "amd64")).unwrap(),
            "CODER_AGENT_SCRIPT_linux_amd64"
        );
        assert_eq!(
            name_hash("a"),
            "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
        );
    }
}
