//! Hangar turns Terraform templates into workspaces.
//!
//! - `cli` is every command a person types; `client` is the typed REST client they all use.
//! - `server` + `api` + `web` are the server's faces; `db` is the only place SQL lives.
//! - `model` holds plain types and rules; `provisioner` runs terraform for jobs.
//! - `provider` is the Terraform provider this same binary serves to terraform.
//! - `agent` runs inside a workspace and connects back to the server; `tunnel` is the
//!   multiplexed transport over that connection that user sessions ride on.
//! - `wire` holds the API's request and response types: server, client, CLI, agent and
//!   tests all speak them (it depends on `model` only).

pub mod agent;
pub mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod db;
pub mod external_auth;
pub mod isolate;
pub mod metrics;
pub mod model;
pub mod provider;
pub mod provisioner;
pub mod server;
pub mod tunnel;
pub mod unix_user;
pub mod web;
pub mod wire;
