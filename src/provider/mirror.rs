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

/// Terraform's name for this machine's platform, e.g. `linux_amd64` (Go's names; 32-bit
/// ARM is `arm` there).
pub fn platform() -> String {
    let (os, arch) = crate::model::this_platform();
    let arch = if arch == "armv7" { "arm" } else { arch };
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

/// A provider version: `major.minor.patch`.
type Version = (u64, u64, u64);

/// One constraint of Terraform's syntax (`= v`, `!= v`, `> v`, `>= v`, `< v`, `<= v`,
/// `~> v`, or a bare `v`) as a test; `None` for anything else (pre-releases).
fn constraint(text: &str) -> Option<Box<dyn Fn(Version) -> bool>> {
    let text = text.trim();
    let ops = ["~>", ">=", "<=", "!=", ">", "<", "="];
    let (op, rest) = ops
        .iter()
        .find_map(|op| text.strip_prefix(op).map(|r| (*op, r.trim())))
        .unwrap_or(("=", text));
    let parts: Vec<u64> = rest
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    let v = (
        parts[0],
        parts.get(1).copied().unwrap_or(0),
        parts.get(2).copied().unwrap_or(0),
    );
    let given = parts.len();
    Some(match op {
        "=" => Box::new(move |x| x == v),
        "!=" => Box::new(move |x| x != v),
        ">" => Box::new(move |x| x > v),
        ">=" => Box::new(move |x| x >= v),
        "<" => Box::new(move |x| x < v),
        "<=" => Box::new(move |x| x <= v),
        // Only the rightmost given component may grow: `~> 1.2` is >= 1.2, < 2.0;
        // `~> 1.2.3` is >= 1.2.3, < 1.3.0; `~> 1` is >= 1.0.0, < 2.0.0.
        _ => {
            let upper = if given == 3 {
                (v.0, v.1 + 1, 0)
            } else {
                (v.0 + 1, 0, 0)
            };
            Box::new(move |x| x >= v && x < upper)
        }
    })
}

/// The highest version that satisfies every comma-separated constraint, among the
/// versions the constraints name and their neighbours; `None` when none does (or a
/// constraint is not one this understands).
pub fn satisfying_version(constraints: &str) -> Option<String> {
    let tests: Vec<_> = constraints
        .split(',')
        .filter(|c| !c.trim().is_empty())
        .map(constraint)
        .collect::<Option<_>>()?;
    let named: Vec<Version> = constraints
        .split(',')
        .filter_map(|c| {
            let digits = c.trim().trim_start_matches(|ch: char| !ch.is_ascii_digit());
            let p: Vec<u64> = digits.split('.').filter_map(|x| x.parse().ok()).collect();
            Some((
                *p.first()?,
                p.get(1).copied().unwrap_or(0),
                p.get(2).copied().unwrap_or(0),
            ))
        })
        .collect();
    let mut candidates = vec![(2, 99, 0), (0, 0, 1)];
    for (ma, mi, pa) in named {
        candidates.extend([
            (ma, mi, pa),
            (ma, mi, pa + 1),
            (ma, mi, 99),
            (ma, mi + 1, 0),
            (ma, 99, 0),
            (ma + 1, 0, 0),
        ]);
        if pa > 0 {
            candidates.push((ma, mi, pa - 1));
        }
        if mi > 0 {
            candidates.push((ma, mi - 1, 99));
        }
        if ma > 0 {
            candidates.push((ma - 1, 99, 0));
        }
    }
    candidates
        .into_iter()
        .filter(|v| tests.iter().all(|t| t(*v)))
        .max()
        .map(|(a, b, c)| format!("{a}.{b}.{c}"))
}

/// The constraints terraform could not satisfy for `coder/coder`, from its init error
/// ("… provider coder/coder: no available releases match the given constraints …").
pub fn unmatched_coder_constraints(init_error: &str) -> Option<&str> {
    let marker = "provider coder/coder: no available releases match the given constraints ";
    let start = init_error.find(marker)? + marker.len();
    let rest = &init_error[start..];
    Some(rest.split(['\n', '\r']).next().unwrap_or(rest).trim())
}

/// Adds `coder/coder` at `version` to the mirror at `dir` (the same binary as every other
/// entry), so a template pinned to that version initializes. Safe to call concurrently.
pub fn install_coder_version(dir: &Path, binary: &Path, version: &str) -> anyhow::Result<()> {
    let leaf = dir
        .join(REGISTRY_HOST)
        .join("coder")
        .join("coder")
        .join(version)
        .join(platform());
    let target = leaf.join(format!("terraform-provider-coder_v{version}"));
    if target.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(&leaf).with_context(|| format!("creating {}", leaf.display()))?;
    let binary = binary
        .canonicalize()
        .with_context(|| format!("locating the hangar binary {}", binary.display()))?;
    // A link under a unique name, renamed into place: a concurrent install of the same
    // version finds either nothing or a complete entry.
    let temp = leaf.join(format!(".link-{}", uuid::Uuid::new_v4()));
    std::os::unix::fs::symlink(&binary, &temp)
        .with_context(|| format!("linking {}", temp.display()))?;
    std::fs::rename(&temp, &target).with_context(|| format!("placing {}", target.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraints_coder_templates_use_are_satisfied() {
        for (constraints, want) in [
            ("2.1.3", "2.1.3"),
            ("= 0.23.0", "0.23.0"),
            ("~> 1.0", "1.99.0"),
            ("~> 2.1.0", "2.1.99"),
            ("~> 0.6", "0.99.0"),
            (">= 2.5, < 3", "2.99.0"),
            (">= 2.0.0, 2.1.3, < 3.0.0", "2.1.3"),
            ("!= 2.99.0", "3.0.0"),
            ("< 0.5", "0.4.99"),
            ("> 3.1", "4.0.0"),
        ] {
            let got = satisfying_version(constraints);
            assert_eq!(got.as_deref(), Some(want), "{constraints}");
        }
        assert_eq!(satisfying_version("2.0.0-pre1"), None);
        assert_eq!(satisfying_version(">= 3, < 2"), None);
    }

    #[test]
    fn the_unmatched_constraints_come_from_terraforms_error() {
        let err = "Could not retrieve the list of available versions for provider coder/coder: no available releases match the given constraints >= 2.0.0, 2.1.3, < 3.0.0\n\nTo see which modules…";
        assert_eq!(
            unmatched_coder_constraints(err),
            Some(">= 2.0.0, 2.1.3, < 3.0.0")
        );
        assert_eq!(
            unmatched_coder_constraints(
                "provider hashicorp/aws: no available releases match the given constraints 5.0"
            ),
            None
        );
    }
}
