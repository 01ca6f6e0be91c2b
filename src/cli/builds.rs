//! `hangar start|stop|restart|update|delete|cancel|logs|builds`: a workspace's builds,
//! followed to their end with progress, named and flagged as in Coder's CLI.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Args;

use super::output::{self, Format};
use super::session;
use super::workspaces::{parse_pairs, prompt_missing, NameArgs};
use crate::client::Client;
use crate::model::parameter::Parameter;
use crate::model::{JobStatus, Transition};
use crate::wire::workspaces::{BuildRequest, BuildView};

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

/// Follows a build to its end, printing progress; non-zero exit when it failed.
/// Build progress by stage: one line updated in place on a terminal, plain lines in logs
/// and CI. Errors and warnings are always printed whole.
pub(super) struct Progress {
    tty: bool,
    verbose: bool,
    stage: String,
    stage_started: std::time::Instant,
    lines: usize,
}

impl Progress {
    pub(super) fn new(tty: bool) -> Progress {
        Progress {
            tty,
            verbose: std::env::var_os("HANGAR_VERBOSE").is_some(),
            stage: String::new(),
            stage_started: std::time::Instant::now(),
            lines: 0,
        }
    }

    pub(super) fn line(&mut self, line: &crate::wire::jobs::JobLog) {
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
    pub(super) fn done(&mut self) {
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
