//! Lays this binary out as a Terraform filesystem mirror, so `terraform init` finds
//! Hangar's provider without any network (air-gapped sites, and this machine).

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Every source address Hangar's provider answers to. `coder/coder` lets a Coder template
/// run unchanged; it is served by the same binary.
pub const SOURCES: &[(&str, &str)] = &[("hangar", "hangar"), ("coder", "coder")];

pub const REGISTRY_HOST: &str = "registry.terraform.io";

/// The version Terraform sees for a source. Coder templates commonly pin `coder/coder`
/// to `>= 2.0`/`~> 2.x`, so the alias is published as a 2.x version.
pub fn version_for(namespace: &str) -> String {
    let own = env!("CARGO_PKG_VERSION");
    if namespace == "coder" {
        CODER_COMPAT_VERSION.to_string()
    } else {
        own.to_string()
    }
}

/// A Coder provider version that satisfies the constraints Coder's own templates use.
pub const CODER_COMPAT_VERSION: &str = "2.99.0";

pub fn platform() -> String {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    };
    format!("{os}_{arch}")
}

/// Creates `dir/registry.terraform.io/<ns>/<type>/<version>/<os_arch>/terraform-provider-<type>_v<version>`
/// for every source in [`SOURCES`], each a symlink to (or copy of) `binary`.
/// Returns the paths it created.
pub fn install(dir: &Path, binary: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let binary = binary
        .canonicalize()
        .with_context(|| format!("locating the hangar binary {}", binary.display()))?;
    let mut made = Vec::new();
    for (namespace, kind) in SOURCES {
        let version = version_for(namespace);
        let leaf = dir
            .join(REGISTRY_HOST)
            .join(namespace)
            .join(kind)
            .join(&version)
            .join(platform());
        std::fs::create_dir_all(&leaf).with_context(|| format!("creating {}", leaf.display()))?;
        let target = leaf.join(format!("terraform-provider-{kind}_v{version}"));
        let _ = std::fs::remove_file(&target);
        if std::os::unix::fs::symlink(&binary, &target).is_err() {
            std::fs::copy(&binary, &target)
                .with_context(|| format!("copying the provider to {}", target.display()))?;
        }
        made.push(target);
    }
    Ok(made)
}

/// A Terraform CLI configuration (`TF_CLI_CONFIG_FILE`) that takes Hangar's sources from
/// the mirror at `dir` and everything else from wherever Terraform normally would.
pub fn cli_config(dir: &Path, plugin_cache: Option<&Path>) -> String {
    let includes: Vec<String> = SOURCES
        .iter()
        .map(|(ns, kind)| format!("\"{REGISTRY_HOST}/{ns}/{kind}\""))
        .collect();
    let includes = includes.join(", ");
    let mut out = String::new();
    if let Some(cache) = plugin_cache {
        out.push_str(&format!(
            "plugin_cache_dir = {:?}\n",
            cache.display().to_string()
        ));
    }
    out.push_str(&format!(
        "provider_installation {{\n  filesystem_mirror {{\n    path    = {:?}\n    include = [{includes}]\n  }}\n  direct {{\n    exclude = [{includes}]\n  }}\n}}\n",
        dir.display().to_string()
    ));
    out
}
