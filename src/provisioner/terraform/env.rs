//! What terraform sees of the world: [`TerraformEnv`], and the CLI configuration whose
//! filesystem mirror serves Hangar's own provider.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

use super::TerraformError;
use crate::provider::mirror;

/// The parent environment variables terraform may see. Everything else (database URLs,
/// tokens, cloud credentials of the server itself) is withheld: a template's local-exec
/// or a third-party provider could print or send them anywhere.
const ALLOWED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "TZ",
    "TMPDIR",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// The environment terraform runs with: an allow-list of the parent's variables, the
/// provider contract variables of the build, and Hangar's CLI configuration.
#[derive(Clone, Default)]
pub struct TerraformEnv {
    vars: BTreeMap<String, String>,
    /// Changes whenever the provider binary does; part of the init cache key, because the
    /// lock file records the provider's hash.
    provider_fingerprint: String,
    /// The provider mirror and the binary it serves, to publish the `coder/coder` alias
    /// at a version a template pins.
    mirror: Option<(PathBuf, PathBuf)>,
}

impl fmt::Debug for TerraformEnv {
    /// Values may be parameter values or tokens: only names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TerraformEnv")
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Keeps the allow-listed variables of `parent` (plus every `LC_*`).
pub fn allow_listed(
    parent: impl IntoIterator<Item = (OsString, OsString)>,
) -> BTreeMap<String, String> {
    parent
        .into_iter()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| ALLOWED_ENV.contains(&k.as_str()) || k.starts_with("LC_"))
        .collect()
}

impl TerraformEnv {
    /// The allow-listed part of this process's environment, without a provider mirror.
    pub fn inherited() -> Self {
        let mut env = TerraformEnv {
            vars: allow_listed(std::env::vars_os()),
            provider_fingerprint: String::new(),
            mirror: None,
        };
        env.set_automation_vars();
        env
    }

    /// The environment a server or provisioner daemon uses: the allow-listed parent env,
    /// and a CLI configuration in `config_dir` whose filesystem mirror serves
    /// `hangar_binary` as the `hangar/hangar` and `coder/coder` providers; other providers
    /// install as terraform normally would. Call once at start; derive per-build envs
    /// `with_vars`.
    pub fn setup(config_dir: &Path, hangar_binary: &Path) -> Result<Self, TerraformError> {
        let setup_err = |reason: String| TerraformError::Setup {
            dir: config_dir.display().to_string(),
            reason,
        };
        let mirror_dir = config_dir.join("mirror");
        mirror::install(&mirror_dir, hangar_binary).map_err(|e| setup_err(format!("{e:#}")))?;
        let config_file = config_dir.join("terraform.rc");
        std::fs::write(
            &config_file,
            // No plugin cache: terraform's is unsafe under concurrent inits (two imports
            // racing failed with "still not detected in .terraform/providers"), and the
            // per-version init cache already makes init rare.
            mirror::cli_config(&mirror_dir, None),
        )
        .map_err(|e| setup_err(e.to_string()))?;

        let mut env = TerraformEnv::inherited();
        env.vars.insert(
            "TF_CLI_CONFIG_FILE".into(),
            config_file.display().to_string(),
        );
        env.provider_fingerprint = fingerprint(hangar_binary);
        env.mirror = Some((mirror_dir, hangar_binary.to_path_buf()));
        Ok(env)
    }

    /// After an init that failed because no `coder/coder` version in the mirror matched
    /// the configuration's constraints: publishes one that does. The version published, or
    /// `None` when the failure was something else (or nothing can satisfy them).
    pub fn publish_coder_version_for(&self, init_error: &str) -> Option<String> {
        let (dir, binary) = self.mirror.as_ref()?;
        let constraints = mirror::unmatched_coder_constraints(init_error)?;
        let version = mirror::satisfying_version(constraints)?;
        match mirror::install_coder_version(dir, binary, &version) {
            Ok(()) => Some(version),
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "publishing coder/coder {version} in the mirror"
                );
                None
            }
        }
    }

    /// Adds a build's variables (the provider contract: `HANGAR_WORKSPACE_ID`, …).
    /// Terraform's own automation switches cannot be overridden.
    pub fn with_vars<K: Into<String>, V: Into<String>>(
        mut self,
        extra: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        for (k, v) in extra {
            self.vars.insert(k.into(), v.into());
        }
        self.set_automation_vars();
        self
    }

    fn set_automation_vars(&mut self) {
        // No prompts, no "run terraform apply next" hints, no update checks phoning home.
        for (k, v) in [
            ("TF_IN_AUTOMATION", "1"),
            ("TF_INPUT", "0"),
            ("CHECKPOINT_DISABLE", "1"),
        ] {
            self.vars.insert(k.into(), v.into());
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    pub fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// See the field: the init cache keys on it.
    pub(super) fn provider_fingerprint(&self) -> &str {
        &self.provider_fingerprint
    }
}

/// Identifies a build of a binary (path, size, mtime) without hashing hundreds of
/// megabytes.
pub(super) fn fingerprint(binary: &Path) -> String {
    let path = binary
        .canonicalize()
        .unwrap_or_else(|_| binary.to_path_buf());
    let meta = std::fs::metadata(&path).ok();
    let len = meta.as_ref().map(|m| m.len()).unwrap_or(0);
    let mtime = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let digest = Sha256::digest(format!("{}\0{len}\0{mtime}", path.display()));
    hex::encode(&digest[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_keeps_only_listed_names() {
        let parent = [
            ("PATH", "/bin"),
            ("HOME", "/root"),
            ("LC_ALL", "C"),
            ("https_proxy", "http://p"),
            ("HANGAR_PG_URL", "postgres://secret"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("TF_CLI_CONFIG_FILE", "/root/.terraformrc"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let kept = allow_listed(parent);
        let names: Vec<_> = kept.keys().map(String::as_str).collect();
        assert_eq!(names, ["HOME", "LC_ALL", "PATH", "https_proxy"]);
    }

    #[test]
    fn automation_vars_win_over_extras() {
        let env = TerraformEnv::inherited().with_vars([("TF_INPUT", "1"), ("HANGAR_URL", "u")]);
        assert_eq!(env.get("TF_INPUT"), Some("0"));
        assert_eq!(env.get("HANGAR_URL"), Some("u"));
        assert!(!format!("{env:?}").contains("\"u\""));
    }
}
