//! The job loop: claim, heartbeat, cancel, finish; the reaper; and crash recovery of
//! work dirs a dead process left behind.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::terraform::run_as::RunAs;
use super::terraform::{LogLine, Terraform, TerraformEnv};
use super::{jobs, outcome, workdir};
use crate::db::jobs::{Job, JobLog};
use crate::db::Database;
use crate::model::{now_ms, JobStatus};

/// How often a running job proves its worker is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(3);
/// A running job silent for this long has lost its worker.
pub const STALE_AFTER: Duration = Duration::from_secs(30);

/// Everything a worker needs to run jobs; cheap to clone.
#[derive(Clone)]
pub struct Runner {
    pub db: Database,
    pub access_url: String,
    pub data_dir: PathBuf,
    pub terraform: Result<Terraform, String>,
    pub worker_id: String,
    pub job_updates: tokio::sync::broadcast::Sender<String>,
    /// Cancelled when the server shuts down: running builds are interrupted the way a
    /// cancel interrupts them (terraform stops cleanly and its state is kept) instead of
    /// holding the shutdown for as long as terraform would run.
    pub stopping: CancellationToken,
    /// Where jobs are counted and timed.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// OAuth2 providers whose tokens builds get (`hangar_external_auth`).
    pub external_auth: Arc<Vec<crate::external_auth::Provider>>,
    pub http: reqwest::Client,
}

/// What one `try_execute` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Completed(JobStatus),
    EmptyQueue,
}

/// A job's result before it is stored.
pub struct JobResult {
    pub status: JobStatus,
    pub error: Option<String>,
    pub error_code: Option<String>,
    /// What the caller asked for (a dry run's plan); `{}` for most jobs.
    pub output: serde_json::Value,
}

impl JobResult {
    pub fn ok() -> JobResult {
        JobResult {
            status: JobStatus::Succeeded,
            error: None,
            error_code: None,
            output: serde_json::json!({}),
        }
    }
    pub fn failed(code: &str, error: impl Into<String>) -> JobResult {
        let status = if code == "canceled" {
            JobStatus::Canceled
        } else {
            JobStatus::Failed
        };
        JobResult {
            status,
            error: Some(error.into()),
            error_code: Some(code.to_string()),
            output: serde_json::json!({}),
        }
    }
}

impl Runner {
    /// Fails only when `config.terraform_user` names no usable user: a server must not
    /// start running templates as someone it was not told to.
    pub fn new(
        db: Database,
        config: &crate::config::Config,
        job_updates: tokio::sync::broadcast::Sender<String>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> anyhow::Result<Runner> {
        let data_dir = config.data_dir.clone();
        let access_url = config.access_url.clone();
        let run_as = config
            .terraform_user
            .as_deref()
            .map(RunAs::lookup)
            .transpose()?;
        // A missing terraform is reported on every job that needs it, not at start: the
        // server stays usable for everything else.
        let terraform = Terraform::locate()
            .map_err(|e| e.to_string())
            .and_then(|tf| {
                let config_dir = data_dir.join("terraform");
                let tf = match &run_as {
                    None => tf.with_env(
                        TerraformEnv::setup(&config_dir, &config.hangar_binary)
                            .map_err(|e| e.to_string())?,
                    ),
                    Some(user) => {
                        user.check_enters(&data_dir)?;
                        // The user may not reach the server's binary (a build tree in
                        // root's home): its mirror serves a copy in the data dir.
                        let provider = copy_provider(&config.hangar_binary, &config_dir)?;
                        user.check_runs(&provider, &["--version"])?;
                        user.check_runs(tf.binary(), &["version"])?;
                        tf.with_env(
                            TerraformEnv::setup(&config_dir, &provider)
                                .map_err(|e| e.to_string())?,
                        )
                        .run_as(user.clone())
                    }
                };
                Ok(tf)
            })
            .map(|mut tf| {
                tf.timeout = config.job_timeout;
                tf
            });
        if let Err(e) = &terraform {
            tracing::warn!(error = %e, "builds will fail until this is fixed");
        }
        if let Some(user) = &run_as {
            tracing::info!(user = user.name(), "terraform runs as an unprivileged user");
            let groups = user.root_equivalent_groups();
            if !groups.is_empty() {
                tracing::warn!(
                    user = user.name(),
                    groups = groups.join(", "),
                    "terraform's user is in a group that is root on this machine in all but name: templates, and shells in workspaces that run as this user (the local template's), can become root. Leave it out unless templates need it (docker: templates that run containers)"
                );
            }
        }
        Ok(Runner {
            db,
            access_url,
            data_dir,
            terraform,
            worker_id: format!("server-{}", hostname()),
            stopping: CancellationToken::new(),
            job_updates,
            metrics,
            external_auth: Arc::new(config.external_auth.clone()),
            http: reqwest::Client::new(),
        })
    }

    /// The `n`th provisioner of this server: the same runner under its own worker id
    /// (`server-<hostname>-<n>`), which the jobs it runs record.
    pub fn provisioner(&self, n: usize) -> Runner {
        Runner {
            worker_id: format!("{}-{n}", self.worker_id),
            ..self.clone()
        }
    }

    pub fn work_root(&self) -> PathBuf {
        self.data_dir.join("work")
    }

    pub fn init_cache_root(&self) -> PathBuf {
        self.data_dir.join("init-cache")
    }

    /// Claims and runs one job; returns at once when none is pending.
    pub async fn try_execute(&self) -> anyhow::Result<Outcome> {
        let Some(job) = self
            .db
            .claim_job(&self.worker_id)
            .await
            .context("claiming a job")?
        else {
            return Ok(Outcome::EmptyQueue);
        };
        let _ = self.job_updates.send(job.id.clone());
        let kind = job.kind.as_str();
        self.metrics
            .job_queue_wait_seconds
            .with_label_values(&[kind])
            .observe(
                job.started_at
                    .unwrap_or(job.created_at)
                    .saturating_sub(job.created_at) as f64
                    / 1000.0,
            );
        self.metrics.provisioners_busy.inc();
        let cancel = self.stopping.child_token();
        let heartbeat = tokio::spawn(heartbeat(
            self.db.clone(),
            job.id.clone(),
            self.worker_id.clone(),
            cancel.clone(),
        ));
        let (logs, writer) = log_writer(self.db.clone(), job.id.clone(), self.job_updates.clone());
        let mut timings = serde_json::Map::new();
        let mut record = outcome::Record::default();
        let started = Instant::now();
        let result = jobs::execute(self, &job, &logs, &cancel, &mut timings, &mut record).await;
        timings.insert(
            "total_ms".into(),
            (started.elapsed().as_millis() as u64).into(),
        );
        heartbeat.abort();
        drop(logs);
        let _ = writer.await;
        let result = match result {
            Ok(r) if self.stopping.is_cancelled() && r.status != JobStatus::Succeeded => JobResult::failed(
                "server_shutdown",
                "the server shut down during this build; terraform was stopped cleanly and its state kept: run the build again",
            ),
            Ok(r) => r,
            Err(e) => JobResult::failed("internal", format!("{e:#}")),
        };
        let timings_text = serde_json::Value::Object(timings.clone()).to_string();
        let finished = outcome::finish(
            &self.db,
            &job,
            &self.worker_id,
            result,
            &timings_text,
            &record,
        )
        .await;
        self.metrics.provisioners_busy.dec();
        let result = finished.context("finishing a job")?;
        self.count(&job, result.status, &timings).await;
        let _ = self.job_updates.send(job.id.clone());
        Ok(Outcome::Completed(result.status))
    }

    /// Counts a finished job and its stages' times in the metrics.
    async fn count(
        &self,
        job: &crate::db::jobs::Job,
        status: JobStatus,
        timings: &serde_json::Map<String, serde_json::Value>,
    ) {
        let kind = job.kind.as_str();
        let transition = match job.kind {
            crate::model::JobKind::WorkspaceBuild => {
                match self.db.get_build_by_job(&job.id).await {
                    Ok(Some(b)) => b.build.transition.as_str(),
                    _ => "unknown",
                }
            }
            _ => "",
        };
        self.metrics
            .jobs
            .with_label_values(&[kind, transition, status.as_str()])
            .inc();
        for (stage, ms) in timings {
            if let Some(ms) = ms.as_u64() {
                self.metrics
                    .job_stage_seconds
                    .with_label_values(&[kind, stage.trim_end_matches("_ms")])
                    .observe(ms as f64 / 1000.0);
            }
        }
    }

    /// Runs jobs until `shutdown`; sleeps only while the queue is empty.
    pub async fn work(self, wake: Arc<tokio::sync::Notify>) {
        let shutdown = self.stopping.clone();
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            match self.try_execute().await {
                Ok(Outcome::Completed(_)) => continue,
                Ok(Outcome::EmptyQueue) => {}
                Err(e) => tracing::error!(error = format!("{e:#}"), "provisioner"),
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// At start: a work dir left in our work root belongs to a process that died
    /// mid-job (this data dir has one server). Fail those jobs, keep the state terraform
    /// wrote, then wipe the dirs (they hold secrets).
    pub async fn recover_leftovers(&self) -> anyhow::Result<usize> {
        let root = self.work_root();
        let mut recovered = 0;
        if let Ok(entries) = std::fs::read_dir(&root) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                let Some(job_id) = name.get(..36) else {
                    continue;
                };
                if let Some(job) = self.db.get_job(job_id).await? {
                    if self.recover(&job).await? {
                        recovered += 1;
                    }
                }
            }
        }
        workdir::wipe_leftovers(&root).context("wiping leftover work dirs")?;
        super::terraform::InitCache::new(self.init_cache_root()).tidy();
        Ok(recovered)
    }

    /// Saves the state in a dead job's work dir into its build and fails the job.
    async fn recover(&self, job: &Job) -> anyhow::Result<bool> {
        let mut state = None;
        if let Some(dir) = workdir::find_leftover(&self.work_root(), &job.id) {
            // A terraform orphaned by the crash is still writing its state: let it finish.
            wait_until_unused(&dir, STALE_AFTER).await;
            self.recover_logs(job, &dir).await?;
            state = workdir::read_leftover_state(&dir);
        }
        let build = match state {
            Some(_) => self.db.get_build_by_job(&job.id).await?,
            None => None,
        };
        // The recovered state and the failure go together.
        let mut tx = self.db.pool().begin().await?;
        if let (Some(state), Some(build)) = (state, build) {
            self.db
                .set_build_state(&mut *tx, &build.build.id, &state)
                .await?;
        }
        let failed = self
            .db
            .fail_lost_job(&mut *tx, &job.id, "the provisioner running this build died (crash, kill or power loss); the state terraform had written was recovered, so the next build manages every resource that exists")
            .await?;
        tx.commit().await?;
        let _ = self.job_updates.send(job.id.clone());
        Ok(failed)
    }

    /// Stores the lines terraform wrote that the dead server had not: its last ones, and
    /// everything it printed while stopping after the crash.
    async fn recover_logs(&self, job: &Job, dir: &std::path::Path) -> anyhow::Result<()> {
        let stored: std::collections::HashSet<String> = self
            .db
            .list_job_logs(&job.id, 0)
            .await?
            .into_iter()
            .map(|l| l.text)
            .collect();
        let missing: Vec<JobLog> = super::terraform::read_output_files(dir)
            .into_iter()
            .filter(|l| !stored.contains(&l.text))
            .map(JobLog::from)
            .collect();
        self.db.insert_job_logs(&job.id, &missing).await?;
        Ok(())
    }

    /// Fails jobs whose worker went silent (a provisioner on another machine died).
    pub async fn reap(&self) -> anyhow::Result<usize> {
        let stale = self
            .db
            .reap_stale_jobs(now_ms() - STALE_AFTER.as_millis() as i64)
            .await?;
        for job in &stale {
            let _ = self.recover(job).await;
        }
        Ok(stale.len())
    }
}

/// Waits (up to `max`) for a terraform orphaned by the crash to finish writing its state
/// in `dir`, then kills what is left working there (interrupted provisioner commands):
/// they belong to a job that is over. Processes are found through /proc (Linux).
async fn wait_until_unused(dir: &std::path::Path, max: Duration) {
    let deadline = Instant::now() + max;
    while Instant::now() < deadline && !processes_in(dir, true).is_empty() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for pid in processes_in(dir, false) {
        // SAFETY: kill(2) on a pid we just read; at worst it is gone already.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// Pids whose working directory is inside `dir` (only terraform/tofu when `terraform_only`).
fn processes_in(dir: &std::path::Path, terraform_only: bool) -> Vec<i32> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|p| {
            let pid: i32 = p.file_name().to_str()?.parse().ok()?;
            let cwd = std::fs::read_link(p.path().join("cwd")).ok()?;
            if !cwd.starts_with(dir) {
                return None;
            }
            let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
            (!terraform_only || matches!(comm.trim(), "terraform" | "tofu")).then_some(pid)
        })
        .collect()
}

/// `binary` copied to `<config_dir>/provider/hangar` (mode 0755, its modification time
/// kept, so the init cache's key for it stays the same across restarts); skipped when
/// the copy is already that binary.
fn copy_provider(
    binary: &std::path::Path,
    config_dir: &std::path::Path,
) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = config_dir.join("provider");
    let copy = dir.join("hangar");
    let fail = |what: &str, e: std::io::Error| format!("{what} {}: {e}", copy.display());
    let source = std::fs::metadata(binary)
        .map_err(|e| format!("reading the hangar binary {}: {e}", binary.display()))?;
    let same = std::fs::metadata(&copy)
        .is_ok_and(|m| m.len() == source.len() && m.modified().ok() == source.modified().ok());
    if !same {
        std::fs::create_dir_all(&dir).map_err(|e| fail("creating the directory of", e))?;
        let staged = dir.join(".hangar.new");
        std::fs::copy(binary, &staged).map_err(|e| fail("copying the provider to", e))?;
        let file = std::fs::File::options()
            .write(true)
            .open(&staged)
            .map_err(|e| fail("opening", e))?;
        if let Ok(modified) = source.modified() {
            file.set_modified(modified).map_err(|e| fail("dating", e))?;
        }
        std::fs::rename(&staged, &copy).map_err(|e| fail("installing", e))?;
    }
    for d in [config_dir, &dir] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("opening {} to terraform's user: {e}", d.display()))?;
    }
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| fail("making executable", e))?;
    Ok(copy)
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "hangar".into())
}

async fn heartbeat(db: Database, job_id: String, worker_id: String, cancel: CancellationToken) {
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        match db.heartbeat_job(&job_id, &worker_id).await {
            Ok(Some(JobStatus::Canceling)) | Ok(None) => cancel.cancel(),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "job heartbeat"),
        }
    }
}

/// Log lines flow through a channel to one writer that stores them in batches and tells
/// followers; the job itself never waits on the database for a log line.
fn log_writer(
    db: Database,
    job_id: String,
    updates: tokio::sync::broadcast::Sender<String>,
) -> (LogSender, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<LogLine>();
    let handle = tokio::spawn(async move {
        let mut batch = Vec::new();
        let mut cap = LogCap::default();
        // Waits for one line and takes all that are queued: while an insert runs, lines
        // pile up and go in the next batch, so a chatty run costs few transactions and a
        // finished one waits for nothing.
        while rx.recv_many(&mut batch, 1024).await > 0 {
            let rows: Vec<JobLog> = batch.drain(..).filter_map(|l| cap.admit(l)).collect();
            if let Err(e) = db.insert_job_logs(&job_id, &rows).await {
                tracing::error!(error = %e, "storing job logs");
            }
            let _ = updates.send(job_id.clone());
        }
    });
    (LogSender(tx), handle)
}

/// Log text one job may store. A template whose `local-exec` prints without end must not
/// fill the database; errors past the cap are still kept (they say why a build failed),
/// up to a small reserve of their own.
pub const MAX_JOB_LOG_BYTES: usize = 8 * 1024 * 1024;
const ERROR_RESERVE_BYTES: usize = 1024 * 1024;
/// One stored line is at most this long; the rest is cut with a mark.
pub const MAX_JOB_LOG_LINE_BYTES: usize = 64 * 1024;

#[derive(Default)]
struct LogCap {
    stored: usize,
    errors: usize,
    announced: bool,
}

impl LogCap {
    /// The line as it is stored, or None once the job has logged its share.
    fn admit(&mut self, mut line: LogLine) -> Option<JobLog> {
        if line.text.len() > MAX_JOB_LOG_LINE_BYTES {
            let mut end = MAX_JOB_LOG_LINE_BYTES;
            while !line.text.is_char_boundary(end) {
                end -= 1;
            }
            line.text.truncate(end);
            line.text.push_str(" … [line cut]");
        }
        let len = line.text.len();
        if self.stored + len <= MAX_JOB_LOG_BYTES {
            self.stored += len;
            return Some(line.into());
        }
        let is_error = line.level == super::terraform::LogLevel::Error;
        if is_error && self.errors + len <= ERROR_RESERVE_BYTES {
            self.errors += len;
            return Some(line.into());
        }
        if self.announced {
            return None;
        }
        self.announced = true;
        Some(JobLog {
            id: 0,
            at: line.at_ms,
            stage: line.stage.as_str().into(),
            level: "warn".into(),
            text: format!(
                "hangar: this build's log reached its limit of {} MiB; later lines are not stored (errors still are)",
                MAX_JOB_LOG_BYTES / 1024 / 1024
            ),
        })
    }
}

#[derive(Clone)]
pub struct LogSender(tokio::sync::mpsc::UnboundedSender<LogLine>);

impl LogSender {
    pub fn send(&self, line: LogLine) {
        let _ = self.0.send(line);
    }

    /// A line of Hangar's own (not terraform's).
    pub fn info(&self, stage: super::terraform::Stage, text: impl Into<String>) {
        self.send(LogLine {
            stage,
            level: super::terraform::LogLevel::Info,
            text: text.into(),
            at_ms: now_ms(),
        });
    }
}

/// A terraform line as it is stored (the id is the database's to give).
impl From<LogLine> for JobLog {
    fn from(l: LogLine) -> JobLog {
        JobLog {
            id: 0,
            at: l.at_ms,
            stage: l.stage.as_str().into(),
            level: l.level.as_str().into(),
            text: l.text,
        }
    }
}
