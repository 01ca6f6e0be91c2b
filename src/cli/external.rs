//! `hangar external-workspaces create|list|agent-instructions`: workspaces whose agent
//! runs on a machine Hangar did not provision.

use std::process::ExitCode;

use clap::Subcommand;

use super::output::{self, Format};
use super::session;
use super::workspaces::{self, CreateArgs};

#[derive(Debug, Subcommand)]
pub enum ExternalCommand {
    /// Create an external workspace; prints how to attach your machine.
    Create(CreateArgs),
    /// List your external workspaces.
    List {
        #[arg(short = 'a', long)]
        all: bool,
        #[arg(short, long, value_enum, default_value_t)]
        output: Format,
    },
    /// Print the command that attaches a machine: [user/]NAME[.agent].
    AgentInstructions {
        workspace: String,
        #[arg(short, long, value_enum, default_value_t = InstructionsFormat::Text)]
        output: InstructionsFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InstructionsFormat {
    Text,
    Json,
}

pub async fn run(cmd: ExternalCommand) -> anyhow::Result<ExitCode> {
    let client = session::client()?;
    match cmd {
        ExternalCommand::Create(args) => {
            let name = args.name.clone().ok_or_else(|| anyhow::anyhow!("a workspace name is needed: `hangar external-workspaces create NAME --template={}`", args.template))?;
            let (no_wait, dry_run) = (args.no_wait, args.dry_run);
            let code = workspaces::create_workspace(args, true).await?;
            if code != ExitCode::SUCCESS || no_wait || dry_run {
                return Ok(code);
            }
            let ws = client.workspace(&name).await?;
            let i = client.agent_instructions(&ws.name, None).await?;
            println!(
                "\nOn the machine that should be {}, run:\n\n  {}\n",
                ws.name, i.command
            );
            println!(
                "(`hangar external-workspaces agent-instructions {}` prints it again.)",
                ws.name
            );
            Ok(ExitCode::SUCCESS)
        }
        ExternalCommand::List { all, output } => {
            let list: Vec<_> = client
                .workspaces(all, "")
                .await?
                .into_iter()
                .filter(|w| w.external)
                .collect();
            workspaces::print_list(&list, output)
        }
        ExternalCommand::AgentInstructions { workspace, output } => {
            let (name, agent) = match workspace.rsplit_once('.') {
                Some((n, a)) => (n.to_string(), Some(a.to_string())),
                None => (workspace.clone(), None),
            };
            let i = client.agent_instructions(&name, agent.as_deref()).await?;
            match output {
                InstructionsFormat::Json => output::json(&i)?,
                InstructionsFormat::Text => {
                    println!("Run this on the machine for {}.{} (the token is secret: it lets the machine act as this agent):\n", i.workspace_name, i.agent_name);
                    println!("  {}", i.command);
                    println!("\nA rebuild of the workspace issues a new token; run this command again after one.");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
