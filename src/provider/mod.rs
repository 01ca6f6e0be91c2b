//! Hangar's Terraform provider, served by this same binary when terraform starts it.

pub mod mirror;

/// Set by terraform (go-plugin) when it starts a provider plugin.
pub const MAGIC_COOKIE_ENV: &str = "TF_PLUGIN_MAGIC_COOKIE";

/// Serves the provider until terraform is done with it.
pub fn serve_blocking() -> anyhow::Result<()> {
    anyhow::bail!("the provider is not built yet")
}
