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
        /// How long it lives, e.g. 30m, 12h, 30d (at most 10 years); forever when omitted.
        #[arg(long, value_parser = parse_lifetime)]
        lifetime: Option<i64>,
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

/// `--lifetime`, checked by clap so a bad one is refused before anything is sent.
fn parse_lifetime(s: &str) -> Result<i64, String> {
    use crate::wire::tokens::MAX_LIFETIME_SECONDS;
    let secs = output::parse_duration(s).map_err(|e| e.to_string())?;
    if secs > MAX_LIFETIME_SECONDS {
        return Err(format!(
            "{s} is longer than the server allows: at most {}",
            output::format_duration(MAX_LIFETIME_SECONDS)
        ));
    }
    Ok(secs)
}

pub async fn run(cmd: TokensCommand) -> anyhow::Result<ExitCode> {
    let client = session::client()?;
    match cmd {
        TokensCommand::Create { name, lifetime } => {
            let created = client.create_token(&name, lifetime).await?;
            // The one time the secret is shown: stdout alone, so `$(hangar tokens create …)` works.
            println!("{}", created.key);
        }
        TokensCommand::List { output } => {
            let tokens = client.tokens().await?;
            match output {
                Format::Json => output::json(&tokens)?,
                Format::Table => {
                    let now = crate::model::now_ms();
                    let rows: Vec<Vec<String>> = tokens
                        .iter()
                        .map(|t| {
                            vec![
                                t.name.clone(),
                                output::ago(t.created_at),
                                t.last_used_at
                                    .map(|t| t.ago())
                                    .unwrap_or_else(|| "never".into()),
                                t.expires_at
                                    .map(|e| {
                                        output::format_duration((e.ms() - t.created_at.ms()) / 1000)
                                    })
                                    .unwrap_or_else(|| "forever".into()),
                                expires(t.expires_at.map(|e| e.ms()), now),
                            ]
                        })
                        .collect();
                    output::table(
                        &["NAME", "CREATED", "LAST USED", "LIFETIME", "EXPIRES"],
                        &rows,
                    );
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

/// "in 29d 23h", "expired 3d ago", "never".
fn expires(expires_at: Option<i64>, now: i64) -> String {
    match expires_at {
        None => "never".into(),
        Some(e) if e <= now => format!("expired {}", output::ago(e)),
        Some(e) => format!("in {}", output::format_duration((e - now) / 1000)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn expiry_is_a_duration() {
        let now = 1_000_000_000_000;
        assert_eq!(super::expires(None, now), "never");
        assert_eq!(
            super::expires(Some(now + (30 * 86400 - 1) * 1000), now),
            "in 29d 23h"
        );
        assert_eq!(super::expires(Some(now + 6 * 86400 * 1000), now), "in 6d");
        assert!(super::expires(Some(now - 1000), now).starts_with("expired "));
    }
}
