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
    pub wildcard: Option<crate::web::subdomain::Wildcard>,
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
        }
    }
}
