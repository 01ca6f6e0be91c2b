//! `hangar create|show|list|favorite`, named and flagged as in Coder's CLI; builds
//! (`start`, `stop`, `update`, …) are `builds.rs`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::builds::{finish, Progress};
use super::output::{self, Format};
use super::session;
use crate::client::Client;
use crate::model::agent::AppHealth;
use crate::model::parameter::Parameter;
use crate::model::JobStatus;
use crate::wire::workspaces::{CreateWorkspaceRequest, WorkspaceView};

#[derive(Debug, Args)]
pub struct CreateArgs {
    pub name: Option<String>,
    #[arg(short = 't', long)]
    pub template: String,
    #[arg(long)]
    pub template_version: Option<String>,
    /// name=value; repeatable.
    #[arg(long = "parameter")]
    pub parameters: Vec<String>,
    /// A YAML file of name: value.
    #[arg(long)]
    pub rich_parameter_file: Option<PathBuf>,
    /// Use this value when a parameter would be prompted for.
    #[arg(long = "parameter-default")]
    pub parameter_defaults: Vec<String>,
    /// A preset of the template (its parameter values apply); the template's default
    /// preset when omitted, `none` for none.
    #[arg(long)]
    pub preset: Option<String>,
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Return once the build is queued.
    #[arg(long)]
    pub no_wait: bool,
    /// Show what the workspace would be made of, and create nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Every user's workspaces (owners and template-admins).
    #[arg(short = 'a', long)]
    pub all: bool,
    #[arg(long, default_value = "")]
    pub search: String,
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Format,
}

#[derive(Debug, Args)]
pub struct NameArgs {
    pub name: String,
    #[arg(short = 'y', long)]
    pub yes: bool,
    #[arg(long)]
    pub no_wait: bool,
    #[arg(long = "parameter")]
    pub parameters: Vec<String>,
}

pub(super) fn parse_pairs(
    pairs: &[String],
    what: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| anyhow::anyhow!("{what} {p} must look like name=value"))
        })
        .collect()
}

/// Parameter values from flags and the YAML file (flags win).
fn given_parameters(args: &CreateArgs) -> anyhow::Result<BTreeMap<String, String>> {
    let mut values = BTreeMap::new();
    if let Some(file) = &args.rich_parameter_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
        let yaml: BTreeMap<String, serde_yaml::Value> =
            serde_yaml::from_str(&text).map_err(|e| {
                anyhow::anyhow!("{} is not a YAML map of name: value: {e}", file.display())
            })?;
        for (k, v) in yaml {
            let text = match v {
                serde_yaml::Value::String(s) => s,
                serde_yaml::Value::Sequence(_) => serde_json::to_string(&v)?,
                other => serde_yaml::to_string(&other)?.trim().to_string(),
            };
            values.insert(k, text);
        }
    }
    values.extend(parse_pairs(&args.parameters, "--parameter")?);
    Ok(values)
}

/// Asks for every required parameter that has no value yet, re-asking on invalid input.
pub(super) fn prompt_missing(
    params: &[Parameter],
    values: &mut BTreeMap<String, String>,
    defaults: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    for p in params {
        if values.contains_key(&p.name) {
            continue;
        }
        if let Some(d) = defaults.get(&p.name) {
            values.insert(p.name.clone(), d.clone());
            continue;
        }
        if !p.required() {
            continue;
        }
        if !std::io::stdin().is_terminal() {
            anyhow::bail!(
                "parameter {} is required and there is no terminal to ask on: pass --parameter {}=<value> (or --rich-parameter-file){}",
                p.name,
                p.name,
                if p.description.is_empty() { String::new() } else { format!(" — {}", p.description) }
            );
        }
        eprintln!(
            "\n{}{}",
            if p.display_name.is_empty() {
                &p.name
            } else {
                &p.display_name
            },
            if p.description.is_empty() {
                String::new()
            } else {
                format!(": {}", p.description)
            }
        );
        for o in &p.options {
            eprintln!("  - {} ({})", o.value, o.name);
        }
        loop {
            let answer = output::prompt(&format!("{} ({}): ", p.name, p.kind.as_str()), false)?;
            match p.check(&answer, None) {
                Ok(()) => {
                    values.insert(p.name.clone(), answer);
                    break;
                }
                Err(e) => eprintln!("{e}; try again"),
            }
        }
    }
    Ok(())
}

pub async fn create(args: CreateArgs) -> anyhow::Result<ExitCode> {
    create_workspace(args, false).await
}

/// `create` and `external-workspaces create`: the same flags, prompts and progress;
/// `external` makes the server refuse templates without an external agent.
pub async fn create_workspace(args: CreateArgs, external: bool) -> anyhow::Result<ExitCode> {
    let client = session::client()?;
    let name = match &args.name {
        Some(n) => n.clone(),
        None if std::io::stdin().is_terminal() => output::prompt("Workspace name: ", false)?,
        None => anyhow::bail!(
            "a workspace name is needed: `hangar create --template={} NAME`",
            args.template
        ),
    };
    let version = match &args.template_version {
        Some(v) => client.template_version(&args.template, v).await?,
        None => {
            let t = client.template(&args.template).await?;
            let active = t.active_version.ok_or_else(|| anyhow::anyhow!("template {} has no active version yet: see `hangar templates versions list {}`", t.name, t.name))?;
            client.template_version(&args.template, &active).await?
        }
    };
    let mut values = given_parameters(&args)?;
    let preset = super::presets::apply(&version, args.preset.as_deref(), &mut values)?;
    prompt_missing(
        &version.parameters,
        &mut values,
        &parse_pairs(&args.parameter_defaults, "--parameter-default")?,
    )?;
    if args.dry_run {
        return dry_run(&client, &args.template, &version.name, values).await;
    }
    // `OWNER/NAME` makes it for someone else (owners only, as in Coder).
    let (owner, bare) = match name.split_once('/') {
        Some((o, n)) => (Some(o.to_string()), n.to_string()),
        None => (None, name.clone()),
    };
    let ws = client
        .create_workspace(&CreateWorkspaceRequest {
            name: bare,
            template: args.template.clone(),
            template_version: args.template_version.clone(),
            parameters: values,
            require_external: external,
            owner,
            preset,
        })
        .await?;
    let label = if ws.owner_id == client.me().await?.id {
        ws.name.clone()
    } else {
        format!("{}/{}", ws.owner, ws.name)
    };
    println!(
        "Creating {}workspace {} from {}@{}…",
        if external { "external " } else { "" },
        label,
        ws.template,
        ws.template_version
    );
    if args.no_wait {
        return Ok(ExitCode::SUCCESS);
    }
    finish(&client, &label, &ws.latest_build).await
}

/// Plans the template with `values` and prints the resources a create would make.
async fn dry_run(
    client: &Client,
    template: &str,
    version: &str,
    values: BTreeMap<String, String>,
) -> anyhow::Result<ExitCode> {
    let job = client.dry_run(template, version, values).await?;
    let mut progress = Progress::new(std::io::stderr().is_terminal());
    let job = client
        .follow_job(&job.id, |line| progress.line(line))
        .await?;
    progress.done();
    if job.status != JobStatus::Succeeded {
        eprintln!(
            "The dry run {}: {}",
            job.status,
            job.error.unwrap_or_default()
        );
        return Ok(ExitCode::FAILURE);
    }
    let rows: Vec<Vec<String>> = job.result["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            ["address", "kind", "lifetime"]
                .iter()
                .map(|k| r[k].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .collect();
    println!("A workspace from {template}@{version} would have:");
    output::table(&["RESOURCE", "KIND", "LIFETIME"], &rows);
    Ok(ExitCode::SUCCESS)
}

pub async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let client = session::client()?;
    let list = client.workspaces(args.all, &args.search).await?;
    print_list(&list, args.output)
}

pub fn print_list(list: &[WorkspaceView], format: Format) -> anyhow::Result<ExitCode> {
    match format {
        Format::Json => output::json(&list)?,
        Format::Table => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|w| {
                    vec![
                        format!(
                            "{}{}/{}",
                            if w.favorite { "★ " } else { "" },
                            w.owner,
                            w.name
                        ),
                        w.template.clone(),
                        w.status.to_string(),
                        if w.status == crate::model::WorkspaceStatus::Running {
                            w.healthy.to_string()
                        } else {
                            String::new()
                        },
                        output::ago(w.latest_build.created_at),
                        w.template_version.clone(),
                        w.outdated.to_string(),
                    ]
                })
                .collect();
            output::table(
                &[
                    "WORKSPACE",
                    "TEMPLATE",
                    "STATUS",
                    "HEALTHY",
                    "LAST BUILT",
                    "CURRENT VERSION",
                    "OUTDATED",
                ],
                &rows,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn show(name: &str, format: Format) -> anyhow::Result<ExitCode> {
    let client = session::client()?;
    let ws = client.workspace(name).await?;
    if format == Format::Json {
        output::json(&ws)?;
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", render_show(&ws));
    for a in ws.agents() {
        let metadata = client.agent_metadata(&a.id).await.unwrap_or_default();
        let logs = client.agent_logs_tail(&a.id, 5).await.unwrap_or_default();
        if metadata.is_empty() && logs.is_empty() {
            continue;
        }
        println!("\nagent {}:", a.name);
        for m in metadata {
            let value = if m.error.is_empty() {
                m.value.trim().to_string()
            } else {
                format!("error: {}", m.error)
            };
            println!(
                "  {}: {}",
                if m.display_name.is_empty() {
                    &m.key
                } else {
                    &m.display_name
                },
                value
            );
        }
        for l in logs {
            println!("  [{}] {}", l.source, l.text);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The workspace and its resources as a tree.
pub fn render_show(ws: &WorkspaceView) -> String {
    let mut out = format!(
        "{}/{}  {}{}\ntemplate {}@{}{}  build #{} ({} {})\n",
        ws.owner,
        ws.name,
        ws.status,
        if ws.status == crate::model::WorkspaceStatus::Running {
            if ws.healthy {
                " (healthy)"
            } else {
                " (unhealthy)"
            }
        } else {
            ""
        },
        ws.template,
        ws.template_version,
        if ws.outdated {
            format!(
                " (outdated: {} is active)",
                ws.active_version.clone().unwrap_or_default()
            )
        } else {
            String::new()
        },
        ws.latest_build.number,
        ws.latest_build.transition,
        ws.latest_build.status,
    );
    if let Some(err) = &ws.latest_build.job.error {
        out.push_str(&format!("error: {err}\n"));
    }
    if let Some(at) = ws.last_used_at {
        out.push_str(&format!("last used {}\n", super::output::ago(at)));
    }
    out.push_str("\nRESOURCE                                   KIND           LIFETIME\n");
    for r in &ws.resources {
        if r.hide {
            continue;
        }
        out.push_str(&format!(
            "{:<42} {:<14} {}\n",
            r.address,
            r.kind.as_str(),
            r.lifetime.as_str()
        ));
        for item in &r.metadata {
            out.push_str(&format!(
                "│   {}: {}\n",
                item.key,
                item.value.as_deref().unwrap_or("")
            ));
        }
        for a in &r.agents {
            out.push_str(&format!(
                "└── agent {} ({}/{}): {}, {}{}\n",
                a.name,
                a.os,
                a.arch,
                a.status,
                a.lifecycle,
                if a.healthy { ", healthy" } else { "" }
            ));
            push_apps(&mut out, "    ", a);
        }
    }
    for a in &ws.external_agents {
        out.push_str(&format!(
            "external agent {} ({}/{}): {}, {}\n",
            a.name, a.os, a.arch, a.status, a.lifecycle
        ));
        push_apps(&mut out, "  ", a);
        if a.status != crate::model::agent::AgentStatus::Connected
            && ws.status == crate::model::WorkspaceStatus::Running
        {
            out.push_str(&format!(
                "  attach your machine: `hangar external-workspaces agent-instructions {}.{}`\n",
                ws.name, a.name
            ));
        }
    }
    if ws.daily_cost > 0 {
        out.push_str(&format!("\ndaily cost: {}\n", ws.daily_cost));
    }
    out
}

fn push_apps(out: &mut String, indent: &str, agent: &crate::wire::agents::AgentView) {
    if let Some(u) = &agent.usage {
        out.push_str(&format!("{indent}usage: {u}\n"));
    }
    for alert in &agent.alerts {
        out.push_str(&format!("{indent}alert: {alert}\n"));
    }
    if !agent.listening_ports.is_empty() {
        let ports: Vec<String> = agent.listening_ports.iter().map(u16::to_string).collect();
        out.push_str(&format!(
            "{indent}listening ports: {} (hangar port-forward {}.{} --tcp PORT)\n",
            ports.join(", "),
            agent.workspace_name,
            agent.name
        ));
    }
    for app in agent.apps.iter().filter(|a| !a.spec.hidden) {
        let spec = &app.spec;
        let target = if spec.url.is_empty() {
            &spec.command
        } else {
            &spec.url
        };
        let health = match app.health {
            AppHealth::Disabled => String::new(),
            h => format!(" [{h}]"),
        };
        out.push_str(&format!(
            "{indent}app {} ({}): {target}{health}\n",
            spec.slug, spec.display_name
        ));
    }
}
