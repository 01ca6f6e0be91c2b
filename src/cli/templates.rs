//! `hangar templates push|list|versions|pull|delete|init`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use include_dir::{include_dir, Dir};

use super::output::{self, Format};
use super::session;
use crate::client::Client;
use crate::model::{archive, JobStatus};
use crate::wire::templates::PushQuery;

/// The built-in starter templates, compiled into the binary so an installed `hangar`
/// can hand them out without its source tree.
pub static BUILTIN: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/templates");

#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    /// Upload a directory as a new version of a template (created on first push).
    Push {
        name: String,
        #[arg(short = 'd', long, default_value = ".")]
        directory: PathBuf,
        #[arg(short = 'm', long, default_value = "")]
        message: String,
        /// The version's name; generated (v1, v2, …) when omitted.
        #[arg(long)]
        version: Option<String>,
        /// Make the new version active once its import succeeds.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        activate: bool,
        /// Return once uploaded instead of following the import.
        #[arg(long)]
        no_wait: bool,
        /// A Terraform variable for the version's builds, `NAME=VALUE` (repeatable). Without
        /// any, the new version keeps the active version's variables.
        #[arg(long = "variable", visible_alias = "var", value_name = "NAME=VALUE")]
        variables: Vec<String>,
        /// A YAML file of Terraform variables (`name: value` per line); `--variable` wins.
        #[arg(long)]
        variables_file: Option<PathBuf>,
        /// Skip confirmations (as Coder's `--yes`); push asks none, so scripts may pass it.
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// List templates.
    List {
        #[arg(short, long, value_enum, default_value_t)]
        output: Format,
    },
    /// Template versions.
    #[command(subcommand)]
    Versions(VersionsCommand),
    /// Download a version's files into a directory.
    Pull {
        name: String,
        dir: PathBuf,
        #[arg(long)]
        version: Option<String>,
    },
    /// Set what people see of a template: its display name, description and icon
    /// (e.g. /icon/docker.svg), as Coder's `templates edit`.
    Edit {
        name: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        icon: Option<String>,
    },
    /// Delete a template (refused while workspaces use it).
    Delete {
        name: String,
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Copy a built-in starter template into a directory (a new one named after an unused
    /// template name when omitted), and print the command that pushes it.
    Init {
        /// Where to write it; must be empty or new.
        dir: Option<PathBuf>,
        /// The built-in template to start from.
        #[arg(long, default_value = "local")]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum VersionsCommand {
    /// List a template's versions with their parameters.
    List {
        name: String,
        #[arg(short, long, value_enum, default_value_t)]
        output: Format,
    },
    /// Make a version the template's active one: new workspaces and `hangar update` use it.
    Promote {
        /// TEMPLATE VERSION; either may be given as a flag instead, as in Coder.
        #[arg(value_name = "TEMPLATE VERSION", num_args = 0..=2)]
        args: Vec<String>,
        #[arg(short = 't', long = "template", value_name = "TEMPLATE")]
        template: Option<String>,
        #[arg(long = "template-version", value_name = "VERSION")]
        template_version: Option<String>,
    },
}

pub async fn run(cmd: TemplatesCommand) -> anyhow::Result<ExitCode> {
    if let TemplatesCommand::Init { dir, id } = &cmd {
        init(dir.as_deref(), id).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let client = session::client()?;
    match cmd {
        TemplatesCommand::Push {
            name,
            directory,
            message,
            version,
            activate,
            no_wait,
            variables,
            variables_file,
            yes: _,
        } => {
            let q = PushQuery {
                name: version,
                message,
                activate,
                variables: if variables.is_empty() && variables_file.is_none() {
                    None
                } else {
                    Some(serde_json::to_string(&push_variables(
                        variables_file.as_deref(),
                        &variables,
                    )?)?)
                },
            };
            return push(&client, &name, &directory, &q, !no_wait).await;
        }
        TemplatesCommand::List { output } => {
            let templates = client.templates().await?;
            match output {
                Format::Json => output::json(&templates)?,
                Format::Table => {
                    let rows: Vec<Vec<String>> = templates
                        .iter()
                        .map(|t| {
                            vec![
                                t.name.clone(),
                                t.active_version.clone().unwrap_or_else(|| "-".into()),
                                output::ago(t.updated_at),
                            ]
                        })
                        .collect();
                    output::table(&["NAME", "ACTIVE VERSION", "LAST UPDATED"], &rows);
                }
            }
        }
        TemplatesCommand::Versions(VersionsCommand::List { name, output }) => {
            let versions = client.template_versions(&name).await?;
            match output {
                Format::Json => output::json(&versions)?,
                Format::Table => {
                    let rows: Vec<Vec<String>> = versions
                        .iter()
                        .map(|v| {
                            let params: Vec<String> = v
                                .parameters
                                .iter()
                                .map(|p| match &p.default {
                                    Some(d) => format!("{}={d}", p.name),
                                    None => format!("{} (required)", p.name),
                                })
                                .collect();
                            vec![
                                v.name.clone(),
                                if v.active {
                                    "active".into()
                                } else {
                                    String::new()
                                },
                                v.job
                                    .as_ref()
                                    .map(|j| j.status.to_string())
                                    .unwrap_or_default(),
                                output::ago(v.created_at),
                                params.join(", "),
                                v.presets
                                    .iter()
                                    .map(|p| {
                                        if p.default {
                                            format!("{} (default)", p.name)
                                        } else {
                                            p.name.clone()
                                        }
                                    })
                                    .collect::<Vec<_>>()
                                    .join(", "),
                                v.message.clone(),
                            ]
                        })
                        .collect();
                    output::table(
                        &[
                            "NAME",
                            "ACTIVE",
                            "IMPORT",
                            "CREATED",
                            "PARAMETERS",
                            "PRESETS",
                            "MESSAGE",
                        ],
                        &rows,
                    );
                    // Why an import failed, which the table has no room for.
                    for v in &versions {
                        let failed = v.job.as_ref().filter(|j| j.status == JobStatus::Failed);
                        if let Some(error) = failed.and_then(|j| j.error.as_deref()) {
                            eprintln!("{}: the import failed: {error}", v.name);
                        }
                    }
                }
            }
        }
        TemplatesCommand::Versions(VersionsCommand::Promote {
            args,
            template,
            template_version,
        }) => {
            let mut args = args.into_iter();
            let (Some(name), Some(version), None) = (
                template.or_else(|| args.next()),
                template_version.or_else(|| args.next()),
                args.next(),
            ) else {
                anyhow::bail!(
                    "name a template and one of its versions: `hangar templates versions promote TEMPLATE VERSION` (see `hangar templates versions list TEMPLATE`)"
                );
            };
            let t = client.activate_template_version(&name, &version).await?;
            println!(
                "{}@{version} is now the active version of {}: new workspaces use it, and `hangar update` moves existing ones to it.",
                t.name, t.name
            );
        }
        TemplatesCommand::Pull { name, dir, version } => {
            let version = match version {
                Some(v) => v,
                None => client
                    .template(&name)
                    .await?
                    .active_version
                    .ok_or_else(|| {
                        anyhow::anyhow!("template {name} has no active version: pass --version")
                    })?,
            };
            let bytes = client.template_archive(&name, &version).await?;
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            archive::extract(&bytes, &dir)?;
            println!("Pulled {name}@{version} into {}.", dir.display());
        }
        TemplatesCommand::Edit {
            name,
            display_name,
            description,
            icon,
        } => {
            let settings = crate::wire::templates::TemplateSettings {
                display_name,
                description,
                icon,
            };
            let t = client.edit_template(&name, &settings).await?;
            println!(
                "Updated template {}: display name {:?}, icon {:?}.",
                t.name, t.display_name, t.icon
            );
        }
        TemplatesCommand::Delete { name, yes } => {
            if !yes && output::stdin_is_terminal() {
                let answer = output::prompt(&format!("Delete template {name}? [y/N] "), false)?;
                if !answer.eq_ignore_ascii_case("y") && !answer.eq_ignore_ascii_case("yes") {
                    println!("Not deleted.");
                    return Ok(ExitCode::FAILURE);
                }
            }
            client.delete_template(&name).await?;
            println!("Deleted template {name}.");
        }
        TemplatesCommand::Init { .. } => unreachable!("handled above"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Pushes `dir` and, when `wait`, follows the import to its end.
/// The variables of a push: the file's, then each `NAME=VALUE` over them.
fn push_variables(
    file: Option<&Path>,
    pairs: &[String],
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let mut vars = std::collections::BTreeMap::new();
    if let Some(file) = file {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let map: std::collections::BTreeMap<String, serde_yaml::Value> =
            serde_yaml::from_str(&text).with_context(|| {
                format!(
                    "{} is not a YAML map of variable names to values",
                    file.display()
                )
            })?;
        for (k, v) in map {
            let value = match v {
                serde_yaml::Value::String(s) => s,
                serde_yaml::Value::Bool(b) => b.to_string(),
                serde_yaml::Value::Number(n) => n.to_string(),
                other => anyhow::bail!(
                    "{}: variable {k} must be a string, number or bool, not {other:?}",
                    file.display()
                ),
            };
            vars.insert(k, value);
        }
    }
    for pair in pairs {
        let (k, v) = pair
            .split_once('=')
            .with_context(|| format!("--variable {pair:?} must be NAME=VALUE"))?;
        vars.insert(k.trim().to_string(), v.to_string());
    }
    Ok(vars)
}

pub async fn push(
    client: &Client,
    name: &str,
    dir: &Path,
    q: &PushQuery,
    wait: bool,
) -> anyhow::Result<ExitCode> {
    let bytes = archive::pack_dir(dir).with_context(|| format!("packing {}", dir.display()))?;
    let created = client.push_template_with(name, bytes, q).await?;
    println!("Uploaded {name}@{}; importing…", created.name);
    let Some(job) = created.job.filter(|_| wait) else {
        return Ok(ExitCode::SUCCESS);
    };
    let done = client
        .follow_job(&job.id, |line| {
            if line.level == "error" || line.level == "warn" {
                eprintln!("  {} {}: {}", line.stage, line.level, line.text);
            }
        })
        .await?;
    if done.status == JobStatus::Succeeded {
        let v = client.template_version(name, &created.name).await?;
        let state = if v.active { "active" } else { "not active" };
        println!(
            "Imported {name}@{} ({state}): {} parameter(s), {} resource(s).",
            v.name,
            v.parameters.len(),
            v.resources.len()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "The import of {name}@{} {}: {}",
            created.name,
            done.status,
            done.error.unwrap_or_default()
        );
        Ok(ExitCode::FAILURE)
    }
}

pub fn builtin_ids() -> Vec<String> {
    BUILTIN
        .dirs()
        .map(|d| d.path().display().to_string())
        .collect()
}

/// Writes the built-in template `id` into `dir`.
pub fn write_builtin(id: &str, dir: &Path) -> anyhow::Result<()> {
    let Some(src) = BUILTIN.get_dir(id) else {
        anyhow::bail!(
            "no built-in template {id}; choose one of: {}",
            builtin_ids().join(", ")
        );
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for file in src.files() {
        let rel = file.path().strip_prefix(id).unwrap_or(file.path());
        let dest = dir.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&dest, file.contents())
            .with_context(|| format!("writing {}", dest.display()))?;
    }
    Ok(())
}

/// Writes the built-in template `id` into `dir` (or a new directory named after a template
/// name nobody uses yet) and prints the push command, with a name that creates a new
/// template rather than a new version of an existing one.
async fn init(dir: Option<&Path>, id: &str) -> anyhow::Result<()> {
    if BUILTIN.get_dir(id).is_none() {
        anyhow::bail!(
            "no built-in template {id}; choose one of: {}",
            builtin_ids().join(", ")
        );
    }
    // The server's template names, when logged in: the suggestion should not be one.
    // Init works offline: a server that is away (or slow) only loses that check.
    let taken: Vec<String> = match session::client() {
        Ok(client) => tokio::time::timeout(std::time::Duration::from_secs(3), client.templates())
            .await
            .ok()
            .and_then(Result::ok)
            .map(|ts| ts.into_iter().map(|t| t.name).collect())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let (dir, name) = match dir {
        Some(dir) => {
            let base = dir
                .canonicalize()
                .unwrap_or_else(|_| dir.to_path_buf())
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let name = suggest_name(&base, id, |n| taken.iter().any(|t| t == n));
            (dir.to_path_buf(), name)
        }
        None => {
            let name = suggest_name(id, id, |n| {
                taken.iter().any(|t| t == n) || Path::new(n).exists()
            });
            (PathBuf::from(&name), name)
        }
    };
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        let free = suggest_name(&name, id, |n| {
            taken.iter().any(|t| t == n) || Path::new(n).exists()
        });
        anyhow::bail!(
            "{} is not empty: choose a new directory, e.g. `hangar templates init --id {id} ./{free}`",
            dir.display()
        );
    }
    write_builtin(id, &dir)?;
    let shown = if dir.is_relative() && !dir.starts_with(".") && !dir.starts_with("..") {
        format!("./{}", dir.display())
    } else {
        dir.display().to_string()
    };
    println!("Wrote the {id} template to {shown}. Edit it, then push it as a new template named {name}:\n");
    println!("  hangar templates push {name} -d {}", sh_word(&shown));
    Ok(())
}

/// A valid template name from `base` (lowercase letters, digits, hyphens; at most 32
/// characters; `fallback` when nothing is left), with -2, -3, … added while `taken`.
fn suggest_name(base: &str, fallback: &str, taken: impl Fn(&str) -> bool) -> String {
    let mut name: String = base
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    while name.contains("--") {
        name = name.replace("--", "-");
    }
    let mut name: String = name.trim_matches('-').chars().take(28).collect();
    name = name.trim_end_matches('-').to_string();
    if name.is_empty() {
        name = fallback.to_string();
    }
    if !taken(&name) {
        return name;
    }
    // local-2 is taken: local-3, not local-2-2.
    let stem = match name.rsplit_once('-') {
        Some((stem, n)) if !stem.is_empty() && n.parse::<u32>().is_ok() => stem.to_string(),
        _ => name,
    };
    (2..)
        .map(|n| format!("{stem}-{n}"))
        .find(|n| !taken(n))
        .expect("some suffix is free")
}

/// `s` as one shell word: as is when it is plain, single-quoted otherwise.
fn sh_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@".contains(c))
    {
        s.to_string()
    } else {
        crate::provisioner::init_script::sh_quote(s)
    }
}

#[cfg(test)]
mod tests {
    use super::suggest_name;

    #[test]
    fn suggested_names_are_valid_and_free() {
        let none = |_: &str| false;
        assert_eq!(suggest_name("local", "local", none), "local");
        assert_eq!(suggest_name("My_Template", "local", none), "my-template");
        assert_eq!(suggest_name("__", "local", none), "local");
        assert_eq!(
            suggest_name("local", "local", |n| n == "local" || n == "local-2"),
            "local-3"
        );
        assert_eq!(
            suggest_name("local-2", "local", |n| n == "local-2"),
            "local-3"
        );
        assert_eq!(suggest_name("v-1", "local", |n| n == "v-1"), "v-2");
        let long = suggest_name(&"a".repeat(40), "local", |n| n.len() == 28);
        assert_eq!(long, format!("{}-2", "a".repeat(28)));
        assert!(crate::model::Name::parse(&long).is_ok());
    }
}
