//! The `hangar` command line: one clap enum, one file per command group.

pub mod builds;
pub mod external;
pub mod output;
mod presets;
pub mod server;
pub mod session;
pub mod sessions;
pub mod templates;
pub mod tokens;
pub mod users;
pub mod workspaces;

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
    /// Create a workspace from a template.
    Create(workspaces::CreateArgs),
    /// Forward local TCP ports to ports in a workspace (through its agent; no port is
    /// opened in the workspace).
    PortForward(sessions::PortForwardArgs),
    /// Open a shell in a workspace, or run a command there, over SSH through its agent
    /// (uses OpenSSH's ssh; `--stdio` is the ProxyCommand).
    Ssh(sessions::SshArgs),
    /// Add `Host hangar.*` to ~/.ssh/config, so plain ssh, scp, sftp, rsync and VS Code
    /// reach your workspaces.
    ConfigSsh(sessions::ConfigSshArgs),
    /// Round trips to a workspace's agent through the server, with the path taken.
    Ping(sessions::PingArgs),
    /// Throughput to and from a workspace's agent, both ways at once.
    Speedtest(sessions::SpeedtestArgs),
    /// Show a workspace, its resources and agents.
    Show {
        name: String,
        #[arg(short, long, value_enum, default_value_t)]
        output: output::Format,
    },
    /// CPU, memory and disk use of this machine or container (run it inside a workspace).
    Stat {
        #[arg(short, long, value_enum, default_value_t)]
        output: output::Format,
    },
    /// List workspaces.
    #[command(alias = "ls")]
    List(workspaces::ListArgs),
    /// Start a workspace.
    Start(workspaces::NameArgs),
    /// Stop a workspace: ephemeral resources are destroyed, persistent ones kept.
    Stop(workspaces::NameArgs),
    /// Stop, then start a workspace.
    Restart(workspaces::NameArgs),
    /// Move a workspace to its template's active version.
    Update(builds::UpdateArgs),
    /// Delete a workspace and every resource it has (asks first; `--yes` without a terminal).
    Delete {
        #[command(flatten)]
        args: workspaces::NameArgs,
        /// Forget the resources instead of destroying them.
        #[arg(long)]
        orphan: bool,
    },
    /// Cancel a workspace's pending or running build.
    Cancel { name: String },
    /// Show a build's logs.
    Logs {
        name: String,
        #[arg(long)]
        build: Option<i64>,
        #[arg(short, long)]
        follow: bool,
    },
    /// A workspace's build history.
    Builds {
        name: String,
        /// How many of the newest builds to show (1 to 100).
        #[arg(short = 'n', long, default_value_t = 25, value_parser = clap::value_parser!(i64).range(1..=100))]
        limit: i64,
        #[arg(short, long, value_enum, default_value_t)]
        output: output::Format,
    },
    /// Pin a workspace to the top of `hangar list`.
    Favorite { name: String },
    /// Unpin a workspace.
    Unfavorite { name: String },
    /// Run the workspace agent (inside a workspace; reads HANGAR_URL and HANGAR_AGENT_TOKEN).
    Agent,
    /// Workspaces whose agent runs on a machine Hangar did not provision.
    #[command(subcommand)]
    ExternalWorkspaces(external::ExternalCommand),
    /// Accounts at external auth providers (GitHub, GitLab…) templates use.
    #[command(subcommand)]
    ExternalAuth(ExternalAuthCommand),
    /// The audit log: who changed what (owners only).
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(short, long, value_enum, default_value_t)]
        output: output::Format,
    },
    /// Hangar's Terraform provider.
    #[command(subcommand)]
    Provider(ProviderCommand),
    /// Print this CLI's version.
    Version,
    /// Who you are logged in as, with which role, on which server.
    Whoami {
        #[arg(short, long, value_enum, default_value_t)]
        output: output::Format,
    },
    /// Print a shell completion script: `source <(hangar completion bash)`.
    Completion {
        /// bash, zsh, fish, elvish or powershell; from $SHELL when omitted.
        #[arg(value_enum, conflicts_with = "shell_flag")]
        shell: Option<clap_complete::Shell>,
        #[arg(
            short = 's',
            long = "shell",
            id = "shell_flag",
            value_enum,
            value_name = "SHELL"
        )]
        shell_flag: Option<clap_complete::Shell>,
    },
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
    // Rust ignores SIGPIPE, so a print to a closed pipe (`hangar list | head -1`) would
    // panic; the CLI dies quietly of it instead, as every Unix tool does. The server and
    // the agent keep ignoring it: they write to the pipes of children that may be gone.
    set_sigpipe(true);
    let cli = Cli::parse();
    if matches!(cli.command, Command::Server(_) | Command::Agent) {
        set_sigpipe(false);
    }
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

/// SIGPIPE's default action (terminate) when `default`, else ignored (Rust's setting).
fn set_sigpipe(default: bool) {
    let action = if default {
        libc::SIG_DFL
    } else {
        libc::SIG_IGN
    };
    // SAFETY: setting a signal's disposition to a constant action, before other threads exist.
    unsafe {
        libc::signal(libc::SIGPIPE, action);
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
        Command::Create(args) => workspaces::create(args).await,
        Command::Show { name, output } => workspaces::show(&name, output).await,
        Command::List(args) => workspaces::list(args).await,
        Command::Start(args) => {
            builds::transition(args, crate::model::Transition::Start, false).await
        }
        Command::Stop(args) => {
            builds::transition(args, crate::model::Transition::Stop, false).await
        }
        Command::Restart(args) => builds::restart(args).await,
        Command::Update(args) => builds::update(args).await,
        Command::Delete { args, orphan } => {
            builds::transition(args, crate::model::Transition::Delete, orphan).await
        }
        Command::Logs {
            name,
            build,
            follow,
        } => builds::logs(&name, build, follow).await,
        Command::Cancel { name } => builds::cancel(&name).await,
        Command::PortForward(args) => sessions::port_forward(args).await,
        Command::Ssh(args) => sessions::ssh(args).await,
        Command::ConfigSsh(args) => sessions::config_ssh(args).await,
        Command::Ping(args) => sessions::ping(args).await,
        Command::Speedtest(args) => sessions::speedtest(args).await,
        Command::Builds {
            name,
            limit,
            output,
        } => builds::builds(&name, limit, output).await,
        Command::Favorite { name } => {
            session::client()?.set_favorite(&name, true).await?;
            println!("{name} is a favorite.");
            Ok(ExitCode::SUCCESS)
        }
        Command::Unfavorite { name } => {
            session::client()?.set_favorite(&name, false).await?;
            println!("{name} is no longer a favorite.");
            Ok(ExitCode::SUCCESS)
        }
        Command::Agent => {
            crate::agent::run(crate::agent::AgentConfig::from_env()?).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::ExternalWorkspaces(cmd) => external::run(cmd).await,
        Command::ExternalAuth(cmd) => external_auth(cmd).await,
        Command::Audit { limit, output } => {
            let client = session::client()?;
            let entries = client.audit(limit).await?;
            let users: std::collections::HashMap<String, String> = client
                .users()
                .await?
                .into_iter()
                .map(|u| (u.id, u.username))
                .collect();
            match output {
                output::Format::Json => output::json(&entries)?,
                output::Format::Table => {
                    let rows: Vec<Vec<String>> = entries
                        .iter()
                        .map(|e| {
                            let who = e
                                .user_id
                                .as_ref()
                                .and_then(|id| users.get(id).cloned())
                                .unwrap_or_else(|| "-".into());
                            vec![
                                output::ago(e.at),
                                who,
                                e.action.clone(),
                                e.target.clone(),
                                e.detail.clone(),
                            ]
                        })
                        .collect();
                    output::table(&["WHEN", "USER", "ACTION", "TARGET", "DETAIL"], &rows);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Provider(ProviderCommand::Install { dir }) => {
            print!("{}", crate::provider::install_command(&dir)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Version => {
            println!("hangar {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Whoami { output } => users::whoami(output).await,
        Command::Stat { output } => stat(output).await,
        Command::Completion { shell, shell_flag } => {
            let shell = match shell.or(shell_flag).or_else(clap_complete::Shell::from_env) {
                Some(s) => s,
                None => anyhow::bail!(
                    "which shell? `hangar completion bash` (or zsh, fish, elvish, powershell)"
                ),
            };
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "hangar", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `hangar stat`: one sample a second long, as the agent reports it (the container's
/// share inside one); in a container the machine's figures follow.
async fn stat(output: output::Format) -> anyhow::Result<ExitCode> {
    use crate::agent::usage::{Sampler, Source};
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from);
    let sources = match Source::detect() {
        Source::Host => vec![("host", Source::Host)],
        container => vec![("container", container), ("host", Source::Host)],
    };
    let samples = tokio::task::spawn_blocking(move || {
        let mut samplers: Vec<(&str, Sampler)> = sources
            .into_iter()
            .map(|(what, s)| (what, Sampler::new(s, vec![home.clone()])))
            .collect();
        for (_, s) in &mut samplers {
            s.sample();
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
        samplers
            .into_iter()
            .map(|(what, mut s)| (what, s.sample()))
            .collect::<Vec<_>>()
    })
    .await?;
    match output {
        output::Format::Json => {
            let map: serde_json::Map<String, serde_json::Value> = samples
                .into_iter()
                .map(|(what, u)| Ok((what.to_string(), serde_json::to_value(u)?)))
                .collect::<anyhow::Result<_>>()?;
            output::json(&map)?;
        }
        output::Format::Table => {
            for (what, u) in samples {
                println!("{what}: {u}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}

#[derive(Debug, Subcommand)]
pub enum ExternalAuthCommand {
    /// The providers this server has and whether you linked each.
    List {
        #[arg(short, long, value_enum, default_value_t)]
        output: output::Format,
    },
    /// Print your current access token for a provider (refreshed when it had expired);
    /// inside a workspace, with the agent's token, the workspace owner's. Exits 1 with
    /// where to link the account when there is none.
    AccessToken { id: String },
}

async fn external_auth(cmd: ExternalAuthCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ExternalAuthCommand::List { output } => {
            let providers = session::client()?.external_auth().await?;
            if providers.is_empty() && output == output::Format::Table {
                println!("This server has no external auth providers (an operator adds them with `hangar server --external-auth-config FILE`).");
                return Ok(ExitCode::SUCCESS);
            }
            match output {
                output::Format::Json => output::json(&providers)?,
                output::Format::Table => output::table(
                    &["ID", "NAME", "LINKED", "LINK AT"],
                    &providers
                        .iter()
                        .map(|p| {
                            vec![
                                p.id.clone(),
                                p.display_name.clone(),
                                if p.linked { "yes" } else { "no" }.into(),
                                p.link_url.clone(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        ExternalAuthCommand::AccessToken { id } => {
            let agent = ["HANGAR_AGENT_TOKEN", "CODER_AGENT_TOKEN"]
                .iter()
                .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
            let agent_url = ["HANGAR_URL", "CODER_AGENT_URL"]
                .iter()
                .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
            let got = match (agent, agent_url) {
                (Some(token), Some(url)) => {
                    crate::client::Client::new(&url, Some(token))
                        .agent_external_auth_token(&id)
                        .await
                }
                _ => session::client()?.external_auth_token(&id).await,
            };
            match got {
                Ok(t) => {
                    println!("{}", t.access_token);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) if e.status() == Some(reqwest::StatusCode::CONFLICT) => {
                    eprintln!("{e}");
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}
