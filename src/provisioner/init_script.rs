//! The init script: a POSIX sh script that downloads the agent binary from the server and
//! execs `hangar agent`. The server serves it at `GET /api/v2/init-script/{os}/{arch}`,
//! and the build runner hands it to the provider (`HANGAR_AGENT_SCRIPT_<os>_<arch>`).
//!
//! The binary is cached in `${XDG_CACHE_HOME:-$HOME/.cache}/hangar/`, named by its
//! checksum, and revalidated with the ETag the server sent for it (`curl --etag-compare`):
//! a `304 Not Modified` reuses it. `GET /api/v2/bin/{file}` sends a strong ETag (the
//! binary's SHA-256) and answers a matching `If-None-Match` with 304.

/// The architectures `hangar_agent.arch` accepts (the provider validates the same list).
pub const ARCHES: &[&str] = &["amd64", "arm64", "armv7"];

/// Operating systems we render a POSIX sh init script for (Windows would need PowerShell).
pub const SCRIPT_OSES: &[&str] = &["linux", "darwin"];

const TEMPLATE: &str = include_str!("init_script.sh.tera");

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InitScriptError {
    #[error("no init script for {os}/{arch}: Hangar renders POSIX sh init scripts for {} on {}", SCRIPT_OSES.join(", "), ARCHES.join(", "))]
    Unsupported { os: String, arch: String },
    #[error("rendering the init script: {0}")]
    Render(String),
}

/// Quotes `s` for POSIX sh: single quotes, with embedded ones closed and escaped.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The init script for `os`/`arch`, with the server's `access_url` baked in. The token is
/// not in it: the script reads `HANGAR_AGENT_TOKEN` (or `CODER_AGENT_TOKEN`) from its
/// environment, so the script itself is not a secret.
pub fn render(access_url: &str, os: &str, arch: &str) -> Result<String, InitScriptError> {
    if !SCRIPT_OSES.contains(&os) || !ARCHES.contains(&arch) {
        return Err(InitScriptError::Unsupported {
            os: os.into(),
            arch: arch.into(),
        });
    }
    let url = access_url.trim_end_matches('/');
    let (server_os, server_arch) = crate::wire::agent::this_platform();
    if (os, arch) != (server_os, server_arch) {
        return Ok(unserved(url, os, arch));
    }
    let mut ctx = tera::Context::new();
    ctx.insert("os", os);
    ctx.insert("arch", arch);
    ctx.insert("access_url_sh", &sh_quote(url));
    ctx.insert(
        "binary_url_sh",
        &sh_quote(&format!("{url}/api/v2/bin/hangar-{os}-{arch}")),
    );
    // The script is shell, not HTML: nothing may be HTML-escaped.
    tera::Tera::one_off(TEMPLATE, &ctx, false).map_err(|e| {
        use std::error::Error;
        let mut msg = e.to_string();
        let mut src = e.source();
        while let Some(s) = src {
            msg.push_str(&format!(": {s}"));
            src = s.source();
        }
        InitScriptError::Render(msg)
    })
}

/// The script for a platform whose agent binary this server does not have: it says so
/// and what to do, and exits, instead of retrying a download that can never succeed.
fn unserved(url: &str, os: &str, arch: &str) -> String {
    let (server_os, server_arch) = crate::wire::agent::this_platform();
    let message = format!(
        "hangar init: this server has no agent binary for {os}/{arch} (it serves {server_os}/{server_arch} only). Install a hangar binary built for {os}/{arch} on this machine and run it as `HANGAR_URL={url} hangar agent` with HANGAR_AGENT_TOKEN set, or run the workspace on {server_os}/{server_arch}."
    );
    format!("#!/bin/sh\necho {} >&2\nexit 1\n", sh_quote(&message))
}

/// Every init script as the provider reads them (`HANGAR_AGENT_SCRIPT_<os>_<arch>`): the
/// build runner adds these to terraform's environment.
pub fn provider_env(access_url: &str) -> Result<Vec<(String, String)>, InitScriptError> {
    let mut env = Vec::new();
    for os in SCRIPT_OSES {
        for arch in ARCHES {
            env.push((
                crate::provider::contract::agent_script_env_name(os, arch),
                render(access_url, os, arch)?,
            ));
        }
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runner_gets_a_script_per_platform() {
        let env = provider_env("http://x").unwrap();
        assert_eq!(env.len(), SCRIPT_OSES.len() * ARCHES.len());
        let (os, arch) = crate::wire::agent::this_platform();
        assert!(env
            .iter()
            .any(|(k, v)| *k == format!("HANGAR_AGENT_SCRIPT_{os}_{arch}")
                && v.contains(&format!("/api/v2/bin/hangar-{os}-{arch}"))));
    }

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
    }

    #[test]
    fn unsupported_platforms_are_refused() {
        assert!(matches!(
            render("http://x", "windows", "amd64"),
            Err(InitScriptError::Unsupported { .. })
        ));
        assert!(render("http://x", "linux", "mips").is_err());
    }

    #[test]
    fn a_platform_without_a_binary_gets_a_script_that_says_so() {
        let (os, arch) = crate::wire::agent::this_platform();
        let other = if arch == "arm64" { "amd64" } else { "arm64" };
        let s = render("http://x", os, other).unwrap();
        assert!(
            s.contains(&format!("no agent binary for {os}/{other}")),
            "{s}"
        );
        assert!(
            s.ends_with("exit 1\n") && !s.contains("/api/v2/bin/"),
            "{s}"
        );
    }

    #[test]
    fn the_script_revalidates_a_cached_binary_by_etag() {
        let (os, arch) = crate::wire::agent::this_platform();
        let s = render("http://x", os, arch).unwrap();
        assert!(s.contains(&format!("NAME=hangar-{os}-{arch}")));
        assert!(s.contains(r#"CACHE_DIR="$HOME/.cache/hangar""#));
        assert!(s.contains(r#"--etag-compare "$CACHED.etag" --etag-save "$DOWNLOAD.etag""#));
        assert!(s.contains(r#"[ "$STATUS" = 304 ]"#));
    }

    #[test]
    fn the_script_has_the_url_and_no_placeholders() {
        let s = render("http://example.com:3000/", "linux", "amd64").unwrap();
        assert!(s.starts_with("#!/bin/sh"));
        assert!(s.contains("'http://example.com:3000/api/v2/bin/hangar-linux-amd64'"));
        // The provider replaces ${ACCESS_URL}; the URL is already baked in.
        assert!(!s.contains("${ACCESS_URL}"));
        assert!(s.contains("exec \"$BINARY\" agent"));
    }
}
