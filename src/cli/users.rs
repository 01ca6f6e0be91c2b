//! `hangar login`, `logout`, and `hangar users create|list|suspend|activate`.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::output::{self, Format};
use super::session;
use crate::client::Client;
use crate::model::Role;
use crate::wire::users::CreateUserRequest;

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The server's URL, e.g. http://127.0.0.1:3000.
    pub url: Option<String>,
    #[arg(long, env = "HANGAR_FIRST_USER_USERNAME")]
    pub first_user_username: Option<String>,
    #[arg(long, env = "HANGAR_FIRST_USER_EMAIL")]
    pub first_user_email: Option<String>,
    #[arg(long, env = "HANGAR_FIRST_USER_PASSWORD", hide_env_values = true)]
    pub first_user_password: Option<String>,
    #[arg(long, env = "HANGAR_FIRST_USER_FULL_NAME", default_value = "")]
    pub first_user_full_name: String,
    /// Log in as this user (username or email) without a prompt.
    #[arg(long, env = "HANGAR_USERNAME")]
    pub username: Option<String>,
    #[arg(long, env = "HANGAR_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

fn ask(value: Option<String>, question: &str, secret: bool, flag: &str) -> anyhow::Result<String> {
    if let Some(v) = value {
        return Ok(v);
    }
    if !output::stdin_is_terminal() {
        anyhow::bail!(
            "{} is needed and there is no terminal to ask on: pass {flag}",
            question.trim_end_matches([':', ' '])
        );
    }
    output::prompt(question, secret)
}

/// A server address as people type it: without a scheme, loopback means http:// and
/// anything else https:// (as `coder login` assumes).
pub fn with_scheme(url: &str) -> String {
    if url.contains("://") {
        return url.to_string();
    }
    let host = url.split(['/', ':']).next().unwrap_or_default();
    let local = host == "localhost" || host.starts_with("127.") || host == "[::1]";
    format!("{}://{url}", if local { "http" } else { "https" })
}

pub async fn login(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let url = match args.url.clone().or_else(session::url) {
        Some(u) => u,
        None => anyhow::bail!(
            "which server? run `hangar login <url>`, e.g. `hangar login http://127.0.0.1:3000`"
        ),
    };
    let url = with_scheme(url.trim_end_matches('/'));
    let anon = Client::new(&url, None);
    let response = if !anon.first_user_exists().await? {
        eprintln!("{url} has no users yet: creating the first user, an owner.");
        let req = CreateUserRequest {
            username: ask(
                args.first_user_username,
                "Username: ",
                false,
                "--first-user-username",
            )?,
            email: ask(
                args.first_user_email,
                "Email: ",
                false,
                "--first-user-email",
            )?,
            password: ask(
                args.first_user_password,
                "Password: ",
                true,
                "--first-user-password",
            )?,
            full_name: args.first_user_full_name,
            role: None,
        };
        anon.create_first_user(&req).await?
    } else {
        let login = ask(args.username, "Username or email: ", false, "--username")?;
        let password = ask(args.password, "Password: ", true, "--password")?;
        anon.login(&login, &password).await?
    };
    let path = session::save(&url, &response.session_token)?;
    println!(
        "Logged in to {url} as {} ({}). Session saved in {}.",
        response.user.username,
        response.user.role,
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn logout() -> anyhow::Result<ExitCode> {
    if let Ok(client) = session::client() {
        // The server forgets the session too; a dead server must not keep us logged in.
        let _ = client.logout().await;
    }
    session::clear();
    println!("Logged out.");
    Ok(ExitCode::SUCCESS)
}

/// `hangar whoami`: the session's user, role and server.
pub async fn whoami(format: Format) -> anyhow::Result<ExitCode> {
    let client = session::client()?;
    let me = client.me().await?;
    match format {
        Format::Json => output::json(&serde_json::json!({
            "url": client.url(),
            "username": me.username,
            "email": me.email,
            "role": me.role,
        }))?,
        Format::Table => println!(
            "Logged in to {} as {} ({}), role {}.",
            client.url(),
            me.username,
            me.email,
            me.role
        ),
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        #[arg(long, env = "HANGAR_NEW_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        #[arg(long, default_value = "")]
        full_name: String,
        /// owner, template-admin or member.
        #[arg(long, default_value = "member")]
        role: Role,
    },
    /// List users.
    List {
        #[arg(short, long, value_enum, default_value_t)]
        output: Format,
    },
    /// Suspend a user: their sessions and tokens stop working.
    Suspend { username: String },
    /// Activate a suspended user.
    Activate { username: String },
}

impl clap::ValueEnum for Role {
    fn value_variants<'a>() -> &'a [Self] {
        Role::ALL
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

pub async fn run(cmd: UsersCommand) -> anyhow::Result<ExitCode> {
    let client = session::client()?;
    match cmd {
        UsersCommand::Create {
            username,
            email,
            password,
            full_name,
            role,
        } => {
            let password = ask(password, "Password for the new user: ", true, "--password")?;
            let user = client
                .create_user(&CreateUserRequest {
                    username,
                    email,
                    password,
                    full_name,
                    role: Some(role),
                })
                .await?;
            println!("Created user {} ({}).", user.username, user.role);
        }
        UsersCommand::List { output } => {
            let users = client.users().await?;
            match output {
                Format::Json => output::json(&users)?,
                Format::Table => {
                    let rows: Vec<Vec<String>> = users
                        .iter()
                        .map(|u| {
                            let status = if u.suspended { "suspended" } else { "active" };
                            vec![
                                u.username.clone(),
                                u.email.clone(),
                                u.role.to_string(),
                                status.into(),
                                output::ago(u.created_at),
                            ]
                        })
                        .collect();
                    output::table(&["USERNAME", "EMAIL", "ROLE", "STATUS", "CREATED"], &rows);
                }
            }
        }
        UsersCommand::Suspend { username } => {
            client.set_user_suspended(&username, true).await?;
            println!("Suspended {username}.");
        }
        UsersCommand::Activate { username } => {
            client.set_user_suspended(&username, false).await?;
            println!("Activated {username}.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_without_a_scheme_get_one() {
        assert_eq!(with_scheme("127.0.0.1:3000"), "http://127.0.0.1:3000");
        assert_eq!(with_scheme("localhost:3000"), "http://localhost:3000");
        assert_eq!(
            with_scheme("hangar.example.com"),
            "https://hangar.example.com"
        );
        assert_eq!(with_scheme("http://10.0.0.1:3000"), "http://10.0.0.1:3000");
    }
}
