//! External auth (OAuth2 account links) as the API shows them.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// One configured provider and whether the caller linked it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ExternalAuthView {
    pub id: String,
    pub display_name: String,
    pub display_icon: String,
    pub linked: bool,
    /// Where to link (or relink) the account in a browser.
    pub link_url: String,
}

/// The caller's current access token for a provider (refreshed when it had expired).
#[derive(Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ExternalAuthToken {
    pub access_token: String,
}

impl std::fmt::Debug for ExternalAuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExternalAuthToken(***)")
    }
}

/// `GET /workspaceagents/me/external-auth?id=`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgentExternalAuthQuery {
    pub id: String,
}
