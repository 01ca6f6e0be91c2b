//! Plain domain types and the rules that govern them. No I/O here.

pub mod agent;
pub mod archive;
pub mod cron;
pub mod name;
pub mod parameter;
pub mod preset;
pub mod resource;
pub mod search;
pub mod secret;
pub mod status;

pub use name::{Name, NameError};
pub use status::{JobKind, JobStatus, Role, Transition, WorkspaceStatus};

/// Milliseconds since the Unix epoch: every stored time uses it.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A fresh opaque id.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// This machine as templates name platforms (Go's `GOOS`/`GOARCH`: `linux`/`darwin`,
/// `amd64`/`arm64`/`armv7`), for agents, init scripts and `hangar_provisioner`.
pub fn this_platform() -> (&'static str, &'static str) {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "armv7",
        other => other,
    };
    (os, arch)
}
