//! How a server is set up: one value, built by `hangar server` from its flags and read by
//! the API, the web UI and the provisioners.

use std::path::PathBuf;
use std::time::Duration;

/// How long one terraform run may take unless `--job-timeout` says otherwise.
pub const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone)]
pub struct Config {
    /// Where the SQLite file, job work dirs and caches live.
    pub data_dir: PathBuf,
    /// The URL agents and users reach this server at (printed, and given to templates).
    pub access_url: String,
    /// How many builds this server runs at once.
    pub provisioners: usize,
    /// The binary terraform runs as Hangar's provider (this executable, except in tests).
    pub hangar_binary: PathBuf,
    /// How long one terraform run of a job may take before it is interrupted.
    pub job_timeout: std::time::Duration,
    /// How long old builds keep their logs and states (None: forever); see `db::retention`.
    pub retention: Option<std::time::Duration>,
    /// Where subdomain apps are served (`--wildcard-access-url`); None: path apps only.
    pub wildcard: Option<Wildcard>,
    /// SHA-256 of the token `/metrics` asks for (`--metrics-token`); None: open.
    pub metrics_token_hash: Option<String>,
    /// OAuth2 providers users link accounts with (`--external-auth-config`).
    pub external_auth: Vec<crate::external_auth::Provider>,
    /// How often prebuilt workspaces are reconciled with their presets.
    pub prebuild_interval: std::time::Duration,
    /// The wait after a preset's first failed prebuild (it doubles with each failure).
    pub prebuild_backoff: std::time::Duration,
    /// The unprivileged user terraform runs as (the server must be root to switch);
    /// None: as this process's user. `hangar server` sets it when run as root.
    pub terraform_user: Option<String>,
}

impl Config {
    pub fn new(data_dir: PathBuf, access_url: String) -> Config {
        Config {
            data_dir,
            access_url,
            provisioners: 3,
            hangar_binary: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("hangar")),
            job_timeout: DEFAULT_JOB_TIMEOUT,
            retention: None,
            wildcard: None,
            metrics_token_hash: None,
            external_auth: Vec::new(),
            prebuild_interval: std::time::Duration::from_secs(15),
            prebuild_backoff: std::time::Duration::from_secs(30),
            terraform_user: None,
        }
    }
}

/// The wildcard access URL: app hosts end in `suffix`; their URLs use the access URL's
/// scheme and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wildcard {
    /// `.apps.example.com`, lowercase, without a port.
    suffix: String,
    scheme: String,
    /// `:3000`, or empty for the scheme's default port.
    port: String,
    /// The port app hosts are reached on (the access URL's).
    port_number: u16,
}

impl Wildcard {
    /// `*.apps.example.com` (a scheme or port written in it is ignored: those of
    /// `access_url` apply, as Coder does).
    pub fn parse(pattern: &str, access_url: &str) -> Result<Wildcard, String> {
        let bad = |why: &str| format!("--wildcard-access-url {pattern:?} {why}");
        let rest = pattern.trim();
        let rest = rest.split_once("://").map_or(rest, |(_, r)| r);
        let host = rest
            .strip_prefix("*.")
            .ok_or_else(|| bad("must start with `*.`, e.g. `*.apps.example.com`"))?;
        let host = host.split(['/', ':']).next().unwrap_or_default();
        let valid = !host.is_empty()
            && host.split('.').all(|l| {
                !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            return Err(bad("must be `*.` followed by a host name"));
        }
        let access = reqwest::Url::parse(access_url)
            .map_err(|e| format!("the access URL {access_url:?} is not a URL: {e}"))?;
        Ok(Wildcard {
            suffix: format!(".{}", host.to_ascii_lowercase()),
            scheme: access.scheme().to_string(),
            port: access.port().map(|p| format!(":{p}")).unwrap_or_default(),
            port_number: access.port_or_known_default().unwrap_or(80),
        })
    }

    /// The app label of a host (a `Host` header's value, port or not) under the wildcard.
    pub fn label(&self, host: &str) -> Option<String> {
        let name = match host.rsplit_once(':') {
            Some((n, p)) if p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => host,
        };
        let name = name.to_ascii_lowercase();
        let label = name.strip_suffix(&self.suffix)?;
        (!label.is_empty() && !label.contains('.') && label.len() <= 253).then(|| label.to_string())
    }

    /// The host an app label is served at, without the port: what app tokens are bound to.
    pub fn host(&self, label: &str) -> String {
        format!("{label}{}", self.suffix)
    }

    /// The URL of an app, ending in `/`.
    pub fn app_url(&self, slug: &str, agent: &str, workspace: &str, owner: &str) -> String {
        format!(
            "{}://{slug}--{agent}--{workspace}--{owner}{}{}/",
            self.scheme, self.suffix, self.port
        )
    }

    /// What the workspace page puts after an app's label: `.apps.example.com:3000`.
    pub fn suffix_with_port(&self) -> String {
        format!("{}{}", self.suffix, self.port)
    }

    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// `:3000`, or empty for the scheme's default port.
    pub fn port(&self) -> &str {
        &self.port
    }

    /// The port app hosts are reached on.
    pub fn port_number(&self) -> u16 {
        self.port_number
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_hosts_are_recognised_under_the_wildcard_only() {
        let w = Wildcard::parse("*.apps.example.com", "https://hangar.example.com").unwrap();
        assert_eq!(
            w.label("code--main--dev--alice.apps.example.com")
                .as_deref(),
            Some("code--main--dev--alice")
        );
        assert_eq!(
            w.label("Code--Main--dev--alice.APPS.example.com:443")
                .as_deref(),
            Some("code--main--dev--alice")
        );
        for other in [
            "hangar.example.com",
            "apps.example.com",
            ".apps.example.com",
            "a.b.apps.example.com",
            "evil.com",
            "x.apps.example.com.evil.com",
        ] {
            assert_eq!(w.label(other), None, "{other}");
        }
        assert_eq!(
            w.app_url("code", "main", "dev", "alice"),
            "https://code--main--dev--alice.apps.example.com/"
        );
        let local = Wildcard::parse("*.apps.localhost", "http://127.0.0.1:3000").unwrap();
        assert_eq!(local.suffix_with_port(), ".apps.localhost:3000");
        for bad in ["apps.example.com", "*.", "*.ex ample.com", "*..com"] {
            assert!(Wildcard::parse(bad, "http://x").is_err(), "{bad}");
        }
    }
}
