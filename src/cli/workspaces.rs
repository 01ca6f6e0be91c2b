//! `hangar create|show|list|start|stop|restart|update|delete|logs|builds|favorite`,
//! named and flagged as in Coder's CLI.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::output::{self, Format};
use super::session;
use crate::client::Client;
use crate::model::agent::AppHealth;
use crate::model::parameter::Parameter;
use crate::model::{JobStatus, Transition};
use crate::wire::workspaces::{BuildRequest, BuildView, CreateWorkspaceRequest, WorkspaceView};

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

#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub args: NameArgs,
    /// Print what the update would create, change, replace or destroy, and exit.
    #[arg(long)]
    pub dry_run: bool,
    /// Update even when a persistent resource (a home volume, a disk) would be replaced
    /// or destroyed; `--yes` alone does not allow that.
    #[arg(long)]
    pub accept_data_loss: bool,
}

fn parse_pairs(pairs: &[String], what: &str) -> anyhow::Result<BTreeMap<String, String>> {
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
fn prompt_missing(
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

/// Follows a build to its end, printing progress; non-zero exit when it failed.
/// Build progress by stage: one line updated in place on a terminal, plain lines in logs
/// and CI. Errors and warnings are always printed whole.
struct Progress {
    tty: bool,
    verbose: bool,
    stage: String,
    stage_started: std::time::Instant,
    lines: usize,
}

impl Progress {
    fn new(tty: bool) -> Progress {
        Progress {
            tty,
            verbose: std::env::var_os("HANGAR_VERBOSE").is_some(),
            stage: String::new(),
            stage_started: std::time::Instant::now(),
            lines: 0,
        }
    }

    fn line(&mut self, line: &crate::wire::jobs::JobLog) {
        if line.stage != self.stage {
            self.done();
            self.stage = line.stage.clone();
            self.stage_started = std::time::Instant::now();
            self.lines = 0;
            if !self.tty {
                eprintln!("==> {}", self.stage);
            }
        }
        self.lines += 1;
        let loud = line.level == "error" || line.level == "warn" || self.verbose;
        if loud {
            if self.tty {
                eprint!("\r\x1b[K");
            }
            eprintln!("    {}", line.text);
        }
        if self.tty {
            let summary = line.text.chars().take(60).collect::<String>();
            eprint!(
                "\r\x1b[K==> {} {:>5.1}s  {summary}",
                self.stage,
                self.stage_started.elapsed().as_secs_f64()
            );
        }
    }

    /// Ends the current stage's line on a terminal.
    fn done(&mut self) {
        if self.tty && !self.stage.is_empty() {
            eprintln!(
                "\r\x1b[K==> {} done in {:.1}s ({} lines)",
                self.stage,
                self.stage_started.elapsed().as_secs_f64(),
                self.lines
            );
            self.stage.clear();
        }
    }
}

pub async fn finish(client: &Client, name: &str, build: &BuildView) -> anyhow::Result<ExitCode> {
    let mut progress = Progress::new(std::io::stderr().is_terminal());
    let job = client
        .follow_job(&build.job.id, |line| progress.line(line))
        .await?;
    progress.done();
    let secs = job
        .completed_at
        .zip(job.started_at)
        .map_or(0.0, |(end, start)| (end - start) as f64 / 1000.0);
    match job.status {
        JobStatus::Succeeded => {
            let ws = client.workspace(name).await?;
            println!(
                "Workspace {} is {} ({:.1}s). See it with `hangar show {}`.",
                ws.name, ws.status, secs, ws.name
            );
            Ok(ExitCode::SUCCESS)
        }
        status => {
            eprintln!(
                "The {} build of {name} {status}: {}",
                build.transition,
                job.error.unwrap_or_default()
            );
            eprintln!("Full logs: `hangar logs {name}`.");
            Ok(ExitCode::FAILURE)
        }
    }
}

pub async fn transition(
    args: NameArgs,
    transition: Transition,
    orphan: bool,
) -> anyhow::Result<ExitCode> {
    let client = session::client()?;
    if transition == Transition::Delete && !args.yes && !confirm_delete(&args.name, orphan)? {
        println!("Not deleted.");
        return Ok(ExitCode::FAILURE);
    }
    // As Coder does: starting a running workspace (or stopping a stopped one) is a no-op,
    // not a rebuild that would replace its agent's token under it.
    let already = match transition {
        Transition::Start => crate::model::WorkspaceStatus::Running,
        Transition::Stop => crate::model::WorkspaceStatus::Stopped,
        Transition::Delete => crate::model::WorkspaceStatus::Deleted,
    };
    if args.parameters.is_empty() && client.workspace(&args.name).await?.status == already {
        println!("Workspace {} is already {already}.", args.name);
        return Ok(ExitCode::SUCCESS);
    }
    let build = client
        .build_workspace(
            &args.name,
            &BuildRequest {
                transition: Some(transition),
                parameters: parse_pairs(&args.parameters, "--parameter")?,
                orphan,
                ..Default::default()
            },
        )
        .await?;
    println!(
        "{} {} (build #{})…",
        verb(transition),
        args.name,
        build.number
    );
    if args.no_wait {
        return Ok(ExitCode::SUCCESS);
    }
    if transition == Transition::Delete {
        let job = client.follow_job(&build.job.id, |_| {}).await?;
        return if job.status == JobStatus::Succeeded {
            println!("Workspace {} deleted.", args.name);
            Ok(ExitCode::SUCCESS)
        } else {
            eprintln!("Deleting {} {}: {}\nNothing was forgotten: fix the cause and delete again, or `hangar delete {} --orphan` to forget its resources.", args.name, job.status, job.error.unwrap_or_default(), args.name);
            Ok(ExitCode::FAILURE)
        };
    }
    finish(&client, &args.name, &build).await
}

/// Asks on the terminal before a delete: the workspace's name or y confirms. Without a
/// terminal there is no one to ask, so a delete needs `--yes`.
fn confirm_delete(name: &str, orphan: bool) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "refusing to delete workspace {name} without confirmation: there is no terminal to ask on; pass --yes (-y) to delete it"
        );
    }
    let bare = name.rsplit('/').next().unwrap_or(name);
    let answer = output::prompt(
        &format!(
            "Delete workspace {name}{} and every resource it has? Type its name ({bare}) or y to confirm [y/N]: ",
            if orphan {
                " (orphan: its resources are left in place, only forgotten)"
            } else {
                ""
            }
        ),
        false,
    )?;
    let answer = answer.trim();
    Ok(answer == bare
        || answer == name
        || answer.eq_ignore_ascii_case("y")
        || answer.eq_ignore_ascii_case("yes"))
}

/// `hangar cancel`: cancels the workspace's latest build while it is pending or running.
pub async fn cancel(name: &str) -> anyhow::Result<ExitCode> {
    let client = session::client()?;
    let ws = client.workspace(name).await?;
    let b = &ws.latest_build;
    if b.job.status.is_final() {
        println!(
            "Nothing to cancel: workspace {} has no build pending or running (its latest, build #{} ({}), {}).",
            ws.name, b.number, b.transition, b.job.status
        );
        return Ok(ExitCode::SUCCESS);
    }
    let canceled = match client.cancel_build(&b.id).await {
        Ok(c) => c,
        // It finished between our look and the cancel.
        Err(e) if e.status() == Some(reqwest::StatusCode::CONFLICT) => {
            println!("Nothing to cancel: {e}.");
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(e.into()),
    };
    println!(
        "Canceling build #{} ({}) of {}…",
        canceled.number, canceled.transition, ws.name
    );
    // Terraform is interrupted and stops cleanly; wait for the job to end.
    let job = client.follow_job(&canceled.job.id, |_| {}).await?;
    let ws = client.workspace(name).await?;
    println!(
        "Build #{} {}; workspace {} is {}.",
        canceled.number, job.status, ws.name, ws.status
    );
    Ok(ExitCode::SUCCESS)
}

fn verb(t: Transition) -> &'static str {
    match t {
        Transition::Start => "Starting",
        Transition::Stop => "Stopping",
        Transition::Delete => "Deleting",
    }
}

pub async fn restart(args: NameArgs) -> anyhow::Result<ExitCode> {
    // The start must be acceptable before the stop: a bad value must not leave the
    // workspace stopped.
    session::client()?
        .validate_build(
            &args.name,
            &BuildRequest {
                transition: Some(Transition::Start),
                parameters: parse_pairs(&args.parameters, "--parameter")?,
                ..Default::default()
            },
        )
        .await?;
    let code = stop_first(&args).await?;
    if code != ExitCode::SUCCESS {
        return Ok(code);
    }
    transition(args, Transition::Start, false).await
}

/// The stop half of a restart or an update; parameters belong to the start that follows.
async fn stop_first(args: &NameArgs) -> anyhow::Result<ExitCode> {
    let stop = NameArgs {
        name: args.name.clone(),
        yes: args.yes,
        no_wait: false,
        parameters: vec![],
    };
    transition(stop, Transition::Stop, false).await
}

pub async fn update(update: UpdateArgs) -> anyhow::Result<ExitCode> {
    let UpdateArgs {
        args,
        dry_run,
        accept_data_loss,
    } = update;
    let client = session::client()?;
    let ws = client.workspace(&args.name).await?;
    if !ws.outdated {
        // New values for the current version: a restart with them, as `coder update`.
        if !args.parameters.is_empty() {
            return restart(args).await;
        }
        println!("Workspace isn't outdated!");
        return Ok(ExitCode::SUCCESS);
    }
    let active = ws.active_version.clone().unwrap_or_default();
    let version = client.template_version(&ws.template, &active).await?;
    let mut values = parse_pairs(&args.parameters, "--parameter")?;
    // Ask only for parameters that are new in this version.
    let new: Vec<Parameter> = version
        .parameters
        .iter()
        .filter(|p| !ws.latest_build.parameters.contains_key(&p.name))
        .cloned()
        .collect();
    prompt_missing(&new, &mut values, &BTreeMap::new())?;
    // What the new version would do to this workspace, planned against its state.
    let preview = preview_update(&client, &args.name, &values).await?;
    println!(
        "Updating {} from {}@{} to {}@{active} would:",
        args.name, ws.template, ws.template_version, ws.template
    );
    print!("{}", render_preview(&preview));
    if dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    if preview.data_loss && !accept_data_loss {
        anyhow::bail!(
            "this update would replace or destroy persistent resources (marked above), losing what they hold: back them up, or run again with --accept-data-loss"
        );
    }
    let start = BuildRequest {
        transition: Some(Transition::Start),
        template_version: Some(active.clone()),
        parameters: values,
        orphan: false,
    };
    // Checked before the stop: a bad value must not leave the workspace stopped.
    client.validate_build(&args.name, &start).await?;
    if ws.status == crate::model::WorkspaceStatus::Running {
        let code = stop_first(&args).await?;
        if code != ExitCode::SUCCESS {
            return Ok(code);
        }
    }
    let build = client.build_workspace(&args.name, &start).await?;
    println!(
        "Updating {} to {}@{active} (build #{})…",
        args.name, ws.template, build.number
    );
    finish(&client, &args.name, &build).await
}

/// Runs an update preview to its end and reads its result.
async fn preview_update(
    client: &crate::client::Client,
    name: &str,
    values: &BTreeMap<String, String>,
) -> anyhow::Result<crate::wire::workspaces::UpdatePreview> {
    let job = client.update_preview(name, values.clone()).await?;
    let mut log = Vec::new();
    let done = client
        .follow_job(&job.id, |l| log.push(format!("{}: {}", l.stage, l.text)))
        .await?;
    if done.status != crate::model::JobStatus::Succeeded {
        let tail = log[log.len().saturating_sub(15)..].join("\n");
        anyhow::bail!(
            "planning the update failed: {}\n{tail}",
            done.error.unwrap_or_else(|| done.status.to_string())
        );
    }
    Ok(serde_json::from_value(done.result)?)
}

/// The preview as a table, persistent losses marked.
pub fn render_preview(p: &crate::wire::workspaces::UpdatePreview) -> String {
    if p.changes.is_empty() {
        return "The update changes no resource.\n".into();
    }
    let rows: Vec<Vec<String>> = p
        .changes
        .iter()
        .map(|c| {
            vec![
                c.action.as_str().to_string(),
                c.address.clone(),
                c.lifetime.as_str().to_string(),
                if c.loses_data {
                    "LOSES DATA".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    output::render_table(&["ACTION", "RESOURCE", "LIFETIME", ""], &rows)
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

pub async fn logs(name: &str, build: Option<i64>, follow: bool) -> anyhow::Result<ExitCode> {
    let client = session::client()?;
    let builds = client.workspace_builds(name, 100).await?;
    let b = match build {
        Some(n) => builds.iter().find(|b| b.number == n).ok_or_else(|| {
            anyhow::anyhow!(
                "{name} has no build #{n} among its newest 100: see `hangar builds {name}`"
            )
        })?,
        None => builds
            .first()
            .ok_or_else(|| anyhow::anyhow!("{name} has no builds"))?,
    };
    let print = |l: &crate::wire::jobs::JobLog| println!("[{}] {:<5} {}", l.stage, l.level, l.text);
    if follow {
        client.follow_job(&b.job.id, print).await?;
    } else {
        for l in client.job_logs(&b.job.id, 0, false).await?.logs {
            print(&l);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn builds(name: &str, limit: i64, format: Format) -> anyhow::Result<ExitCode> {
    let client = session::client()?;
    let builds = client.workspace_builds(name, limit).await?;
    match format {
        Format::Json => output::json(&builds)?,
        Format::Table => {
            let rows: Vec<Vec<String>> = builds
                .iter()
                .map(|b| {
                    let secs = b
                        .job
                        .completed_at
                        .zip(b.job.started_at)
                        .map(|(c, s)| format!("{:.1}s", (c - s) as f64 / 1000.0))
                        .unwrap_or_default();
                    vec![
                        format!("#{}", b.number),
                        b.transition.to_string(),
                        b.status.to_string(),
                        b.initiator.clone(),
                        b.template_version.clone(),
                        secs,
                        output::ago(b.created_at),
                    ]
                })
                .collect();
            output::table(
                &[
                    "BUILD",
                    "TRANSITION",
                    "STATUS",
                    "INITIATOR",
                    "VERSION",
                    "DURATION",
                    "CREATED",
                ],
                &rows,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
