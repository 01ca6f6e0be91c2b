//! `hangar tokens create|list|remove`.

use std::process::ExitCode;

use clap::Subcommand;

use super::output::{self, Format};
use super::session;

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create an API token; it is printed once.
    Create {
        #[arg(long)]
        name: String,
        /// How long it lives, e.g. 30m, 12h, 30d; forever when omitted.
        #[arg(long)]
        lifetime: Option<String>,
    },
    /// List your tokens.
    List {
        #[arg(short, long, value_enum, default_value_t)]
        output: Format,
    },
    /// Remove a token by name.
    #[command(alias = "rm", alias = "delete")]
    Remove { name: String },
}

pub async fn run(cmd: TokensCommand) -> anyhow::Result<ExitCode> {
    let client = session::client()?;
    match cmd {
        TokensCommand::Create { name, lifetime } => {
            let secs = lifetime
                .as_deref()
                .map(super::output::parse_duration)
                .transpose()?;
            let created = client.create_token(&name, secs).await?;
            // The one time the secret is shown: stdout alone, so `$(hangar tokens create …)` works.
            println!("{}", created.key);
        }
        TokensCommand::List { output } => {
            let tokens = client.tokens().await?;
            match output {
                Format::Json => output::json(&tokens)?,
                Format::Table => {
                    let rows: Vec<Vec<String>> = tokens
                        .iter()
                        .map(|t| {
                            vec![
                                t.name.clone(),
                                output::ago(t.created_at),
                                t.last_used_at
                                    .map(output::ago)
                                    .unwrap_or_else(|| "never".into()),
                                t.expires_at
                                    .map(|e| {
                                        if e <= crate::model::now_ms() {
                                            "expired".to_string()
                                        } else {
                                            format!("in {}s", (e - crate::model::now_ms()) / 1000)
                                        }
                                    })
                                    .unwrap_or_else(|| "never".into()),
                            ]
                        })
                        .collect();
                    output::table(&["NAME", "CREATED", "LAST USED", "EXPIRES"], &rows);
                }
            }
        }
        TokensCommand::Remove { name } => {
            client.remove_token(&name).await?;
            println!("Removed token {name}.");
        }
    }
    Ok(ExitCode::SUCCESS)
}
