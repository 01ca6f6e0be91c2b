//! The `hangar` command line: one clap enum, one file per command group.

pub mod output;
pub mod server;
pub mod session;
pub mod templates;
pub mod tokens;
pub mod users;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "hangar",
    version,
    about = "Self-hosted workspaces from Terraform templates"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Hangar server (API, web UI, database, provisioners).
    Server(server::ServerArgs),
    /// Log in to a Hangar server (creating the first user on a new one).
    Login(users::LoginArgs),
    /// Forget this machine's session.
    Logout,
    /// Manage users.
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
    /// Manage templates.
    #[command(subcommand)]
    Templates(templates::TemplatesCommand),
    /// Run the workspace agent (inside a workspace; reads HANGAR_URL and HANGAR_AGENT_TOKEN).
    Agent,
    /// Hangar's Terraform provider.
    #[command(subcommand)]
    Provider(ProviderCommand),
}

#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// Lay this binary out as a Terraform filesystem mirror and print the CLI config to use it.
    Install {
        /// The mirror directory.
        dir: PathBuf,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Server(args) => server::run(args).await,
        Command::Login(args) => users::login(args).await,
        Command::Logout => users::logout().await,
        Command::Users(cmd) => users::run(cmd).await,
        Command::Tokens(cmd) => tokens::run(cmd).await,
        Command::Templates(cmd) => templates::run(cmd).await,
        Command::Agent => {
            crate::agent::run(crate::agent::AgentConfig::from_env()?).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Provider(ProviderCommand::Install { dir }) => {
            let binary = std::env::current_exe()?;
            crate::provider::mirror::install(&dir, &binary)?;
            let dir = dir.canonicalize()?;
            println!(
                "Installed Hangar's provider into the filesystem mirror {}.",
                dir.display()
            );
            println!("Point terraform at it with TF_CLI_CONFIG_FILE=<file> containing:\n");
            print!("{}", crate::provider::mirror::cli_config(&dir, None));
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
