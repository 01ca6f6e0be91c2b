//! What each kind of job does: a template version import (plan start and stop once, keep
//! the graph) and a workspace build (one apply, then classify and record).

use std::collections::{BTreeMap, HashMap};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::classify::{self, Graph};
use super::outcome::{classify_build, ImportRecord, Record};
use super::queue::{JobResult, LogSender, Runner};
use super::terraform::{InitCache, LogLevel, LogLine, Stage, Terraform, TerraformError};
use super::workdir;
use crate::db::jobs::Job;
use crate::db::templates::{Template, TemplateVersion};
use crate::db::users::User;
use crate::db::Database;
use crate::model::parameter::{ParamType, Parameter};
pub use crate::model::resource::PreviewResource;
use crate::model::resource::{Kind, Lifetime};
use crate::model::secret::Secret;
use crate::model::{JobKind, Transition};
use crate::provider::contract as env;

/// What every job body works with; `timings` travel beside it because they change.
#[derive(Clone, Copy)]
struct JobCtx<'a> {
    runner: &'a Runner,
    /// terraform with the server's environment; each run adds the provider contract.
    base: &'a Terraform,
    job: &'a Job,
    logs: &'a LogSender,
    cancel: &'a CancellationToken,
}

pub async fn execute(
    runner: &Runner,
    job: &Job,
    logs: &LogSender,
    cancel: &CancellationToken,
    timings: &mut serde_json::Map<String, serde_json::Value>,
    record: &mut Record,
) -> anyhow::Result<JobResult> {
    let terraform = match &runner.terraform {
        Ok(tf) => tf.clone(),
        Err(e) => return Ok(JobResult::failed("terraform_missing", e.clone())),
    };
    let cx = JobCtx {
        runner,
        base: &terraform,
        job,
        logs,
        cancel,
    };
    match job.kind {
        JobKind::TemplateVersionImport => import(cx, timings, record).await,
        JobKind::WorkspaceBuild => build(cx, timings, record).await,
        JobKind::TemplateVersionDryRun => dry_run(cx, timings).await,
    }
}

fn terraform_failure(e: TerraformError) -> JobResult {
    JobResult::failed(e.kind(), e.to_string())
}

/// A value that passes a parameter's type and options, for the import's dry runs, where
/// no user has chosen yet.
fn placeholder(p: &Parameter) -> String {
    if let Some(d) = &p.default {
        return d.clone();
    }
    if let Some(o) = p.options.first() {
        return if p.kind == ParamType::ListString {
            format!("[{:?}]", o.value)
        } else {
            o.value.clone()
        };
    }
    match p.kind {
        ParamType::Number => p
            .validation
            .as_ref()
            .and_then(|v| v.min)
            .unwrap_or(0.0)
            .to_string(),
        ParamType::Bool => "false".into(),
        ParamType::ListString => "[]".into(),
        ParamType::String => String::new(),
    }
}

/// What one run is about: a template version, for an owner and a (would-be) workspace.
struct Subject {
    version: TemplateVersion,
    template: Template,
    owner: User,
    archive: Vec<u8>,
    workspace_id: String,
    workspace_name: String,
    build_id: String,
    transition: Transition,
    params: BTreeMap<String, String>,
    /// The previous build's values, for monotonic validation in the provider.
    previous: BTreeMap<String, String>,
    /// The owner's access tokens for the external auth providers the version reads.
    external_auth: Vec<(String, Secret)>,
    /// The workspace is an unclaimed prebuild (owned by the prebuilds user).
    prebuild: bool,
    /// This build is the first after a user claimed the prebuild: the agents keep the
    /// tokens they run with (agent resource id → token).
    claim: Option<Vec<(String, Secret)>>,
}

impl Subject {
    /// A start of `version_id` for `owner_id`, outside any workspace (imports, dry runs).
    async fn load(
        db: &Database,
        version_id: &str,
        owner_id: &str,
        workspace_name: &str,
    ) -> anyhow::Result<Subject> {
        let version = db
            .get_template_version(version_id)
            .await?
            .context("the template version is gone")?;
        let template = db
            .get_template(&version.template_id)
            .await?
            .context("the template is gone")?;
        let owner = db.get_user(owner_id).await?.context("the owner is gone")?;
        let archive = db
            .get_template_archive(&version.id)
            .await?
            .unwrap_or_default();
        Ok(Subject {
            version,
            template,
            owner,
            archive,
            workspace_id: String::new(),
            workspace_name: workspace_name.to_string(),
            build_id: String::new(),
            transition: Transition::Start,
            params: BTreeMap::new(),
            previous: BTreeMap::new(),
            external_auth: Vec::new(),
            prebuild: false,
            claim: None,
        })
    }

    /// What `*.tf.tera` files are rendered with.
    fn tera_context(&self) -> serde_json::Value {
        serde_json::json!({
            "workspace": {"id": self.workspace_id, "name": self.workspace_name},
            "owner": {"id": self.owner.id, "name": self.owner.username, "email": self.owner.email, "full_name": self.owner.full_name},
            "template": {"id": self.template.id, "name": self.template.name, "version": self.version.name},
            "transition": self.transition.as_str(),
            "parameters": self.params,
        })
    }

    /// The provider contract for a run of `transition`.
    fn contract(
        &self,
        access_url: &str,
        worker_id: &str,
        transition: Transition,
    ) -> Vec<(String, String)> {
        // Coder's role names: its template-admin is "template-admin" too.
        let roles = serde_json::json!([{"name": self.owner.role.as_str(), "org_id": ""}]);
        let mut vars = vec![
            (env::PROVISIONER_ID.into(), worker_id.to_string()),
            (env::WORKSPACE_OWNER_LOGIN_TYPE.into(), "password".into()),
            (env::WORKSPACE_OWNER_RBAC_ROLES.into(), roles.to_string()),
            (env::URL.to_string(), access_url.to_string()),
            (env::WORKSPACE_ID.into(), self.workspace_id.clone()),
            (env::WORKSPACE_NAME.into(), self.workspace_name.clone()),
            (env::WORKSPACE_TRANSITION.into(), transition.as_str().into()),
            (env::WORKSPACE_BUILD_ID.into(), self.build_id.clone()),
            (env::WORKSPACE_OWNER_ID.into(), self.owner.id.clone()),
            (
                env::WORKSPACE_OWNER_NAME.into(),
                self.owner.username.clone(),
            ),
            (env::WORKSPACE_OWNER_EMAIL.into(), self.owner.email.clone()),
            (
                env::WORKSPACE_OWNER_FULL_NAME.into(),
                self.owner.full_name.clone(),
            ),
            (env::WORKSPACE_OWNER_GROUPS.into(), "[]".into()),
            (env::TEMPLATE_ID.into(), self.template.id.clone()),
            (env::TEMPLATE_NAME.into(), self.template.name.clone()),
            (env::TEMPLATE_VERSION.into(), self.version.name.clone()),
        ];
        for (name, value) in &self.params {
            vars.push((crate::provider::parameter_env_name(name), value.clone()));
        }
        for (id, token) in &self.external_auth {
            vars.push((env::external_auth_env_name(id), token.expose().to_string()));
        }
        if self.prebuild {
            vars.push((env::WORKSPACE_IS_PREBUILD.into(), "true".into()));
        }
        if let Some(running) = &self.claim {
            vars.push((env::WORKSPACE_IS_PREBUILD_CLAIM.into(), "true".into()));
            for (id, token) in running {
                vars.push((
                    env::running_agent_token_env_name(id),
                    token.expose().to_string(),
                ));
            }
        }
        for (name, value) in &self.previous {
            vars.push((
                crate::provider::previous_parameter_env_name(name),
                value.clone(),
            ));
        }
        // Every platform the server can script for; the provider picks the agent's own.
        vars.extend(crate::provisioner::init_script::provider_env(access_url).unwrap_or_default());
        vars
    }

    /// Terraform with the provider contract and the version's variables (`TF_VAR_…`).
    fn terraform(&self, runner: &Runner, base: &Terraform, transition: Transition) -> Terraform {
        let variables = self
            .version
            .variables
            .iter()
            .map(|(k, v)| (format!("TF_VAR_{k}"), v.clone()));
        base.clone().with_env(
            base.env().clone().with_vars(
                self.contract(&runner.access_url, &runner.worker_id, transition)
                    .into_iter()
                    .chain(variables),
            ),
        )
    }
}

/// A work dir ready for terraform: extracted, rendered, prior state written, init done.
/// `Err` is how the job ends when that fails (a bad template, a failed init).
async fn open(
    cx: JobCtx<'_>,
    subject: &Subject,
    prior_state: Option<&[u8]>,
    timings: &mut serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<Result<(workdir::Workdir, Terraform), JobResult>> {
    let JobCtx {
        runner,
        base,
        job,
        logs,
        cancel,
    } = cx;
    let dir = match workdir::prepare(
        &runner.work_root(),
        &job.id,
        &subject.archive,
        &subject.tera_context(),
        prior_state,
    ) {
        Ok(d) => d,
        Err(e) => return Ok(Err(JobResult::failed("bad_template", e.to_string()))),
    };
    let tf = subject.terraform(runner, base, subject.transition);
    let cache = InitCache::new(runner.init_cache_root());
    let key = InitCache::key_for_dir(dir.path(), &tf)?;
    let mut out = sink(logs);
    let init = tf.init_cached(dir.path(), &cache, &key, &mut out, cancel);
    if let Err(e) = timed(timings, "init_ms", init).await {
        return Ok(Err(terraform_failure(e)));
    }
    Ok(Ok((dir, tf)))
}

/// Logs every terraform line through `logs` and lets the cancel token stop terraform.
fn sink(logs: &LogSender) -> impl FnMut(LogLine) + Send + '_ {
    move |mut line| {
        // The mirror serves one platform, so every first init warns that the lock file
        // lacks other platforms' checksums: true, harmless here, and nothing a template
        // author can act on. It stays in the log, as information.
        if line.level == LogLevel::Warn
            && line
                .text
                .contains("Incomplete lock file information for providers")
        {
            line.level = LogLevel::Info;
        }
        // A template pinning coder/coder to a version the mirror lacks: the runner
        // publishes one and initializes again (and says so), so this is no error.
        if line
            .text
            .contains("coder/coder: no available releases match the given constraints")
            || (line
                .text
                .contains("Failed to query available provider packages")
                && line.text.contains("coder/coder"))
        {
            line.level = LogLevel::Info;
        }
        logs.send(line)
    }
}

async fn timed<T>(
    timings: &mut serde_json::Map<String, serde_json::Value>,
    stage: &str,
    f: impl std::future::Future<Output = T>,
) -> T {
    let start = std::time::Instant::now();
    let out = f.await;
    let ms = start.elapsed().as_millis() as u64
        + timings.get(stage).and_then(|v| v.as_u64()).unwrap_or(0);
    timings.insert(stage.to_string(), ms.into());
    out
}

async fn import(
    cx: JobCtx<'_>,
    timings: &mut serde_json::Map<String, serde_json::Value>,
    record: &mut Record,
) -> anyhow::Result<JobResult> {
    let JobCtx {
        runner,
        base,
        job,
        logs,
        cancel,
    } = cx;
    let input: ImportInput =
        serde_json::from_str(&job.input).context("reading the import job's input")?;
    let db = &runner.db;
    let version = db
        .get_template_version(&input.template_version_id)
        .await?
        .context("the version to import is gone")?;
    let mut subject = Subject::load(db, &version.id, &version.created_by, "import").await?;
    let mut params: Vec<Parameter> = version.parameters.clone();
    subject.params = params
        .iter()
        .map(|p| (p.name.clone(), placeholder(p)))
        .collect();
    let (dir, start_tf) = match open(cx, &subject, None, timings).await? {
        Ok(opened) => opened,
        Err(done) => return Ok(done),
    };
    let stop_tf = subject.terraform(runner, base, Transition::Stop);
    let mut out = sink(logs);
    // Four more terraform runs, once per version; the first failure ends the import with
    // terraform's own error. `validate` names the file and line of a bad configuration
    // before any plan evaluates it.
    let runs = async {
        timed(
            timings,
            "validate_ms",
            start_tf.validate(dir.path(), &mut out, cancel),
        )
        .await?;
        let graph = timed(
            timings,
            "graph_ms",
            start_tf.graph(dir.path(), &mut out, cancel),
        )
        .await?;
        let start_plan = timed(
            timings,
            "plan_ms",
            start_tf.plan_json(dir.path(), false, &mut out, cancel),
        )
        .await?;
        let stop_plan = timed(
            timings,
            "plan_ms",
            stop_tf.plan_json(dir.path(), false, &mut out, cancel),
        )
        .await?;
        Ok::<_, TerraformError>((graph, start_plan, stop_plan))
    };
    let (graph, start_plan, stop_plan) = match runs.await {
        Ok(done) => done,
        Err(e) => {
            let mut failed = terraform_failure(e);
            if let Some(error) = failed
                .error
                .as_mut()
                .filter(|e| e.contains("No value for required variable"))
            {
                error.push_str("; give it at push: `hangar templates push NAME --variable VAR=VALUE` (or --variables-file FILE.yaml)");
            }
            return Ok(failed);
        }
    };
    let lifetimes = classify::lifetimes_from_plans(&start_plan.json, &stop_plan.json);
    let (preview, has_external) = preview_resources(&graph, &start_plan.json, &lifetimes, false)?;
    super::plan_facts::enrich_parameters(&mut params, &start_plan.json);
    logs.info(
        Stage::Plan,
        format!(
            "imported: {} parameter(s), {} resource(s)",
            params.len(),
            preview.len()
        ),
    );
    // Coder's refusals, each naming the addresses to fix.
    if let Err(problems) = super::rules::check(&start_plan.json) {
        for line in problems.lines() {
            logs.send(LogLine {
                stage: Stage::Plan,
                level: LogLevel::Error,
                text: line.to_string(),
                at_ms: crate::model::now_ms(),
            });
        }
        return Ok(JobResult::failed("bad_template", problems));
    }
    let facts = match super::plan_facts::version_facts(&start_plan.json, &params) {
        Ok(facts) => facts,
        Err(refusal) => return Ok(JobResult::failed("bad_template", refusal)),
    };
    record.import = Some(ImportRecord {
        version_id: version.id.clone(),
        parameters: params,
        preview,
        graph,
        has_external_agent: has_external,
        facts,
        activate_in: input.activate.then(|| subject.template.id.clone()),
    });
    Ok(JobResult::ok())
}

/// The managed resources a start plan makes, each labelled with its kind (from the
/// graph) and lifetime; and whether the plan has an external agent.
/// `instances`: list `vm[0]`, `volume["a"]` rather than one row per configuration block.
fn preview_resources(
    graph: &str,
    start_plan: &serde_json::Value,
    lifetimes: &HashMap<String, Lifetime>,
    instances: bool,
) -> anyhow::Result<(Vec<PreviewResource>, bool)> {
    let parsed = Graph::parse(graph).map_err(|e| anyhow::anyhow!("{e}"))?;
    let rules = classify::Rules::default();
    let hosts: Vec<String> = classify::agent_hosts(&parsed, &rules)
        .into_values()
        .flatten()
        .collect();
    let mut preview = Vec::new();
    let mut has_external = false;
    let addresses = if instances {
        planned_instances(start_plan)
    } else {
        classify::planned_addresses(start_plan)
            .into_iter()
            .collect()
    };
    for address in addresses {
        let config = classify::strip_keys(&address);
        let Some(a) = classify::ConfigAddress::parse(&config) else {
            continue;
        };
        if rules.external_agent_types.contains(&a.type_) {
            has_external = true;
        }
        if a.mode != classify::Mode::Managed
            || a.type_.starts_with("hangar_")
            || a.type_.starts_with("coder_")
        {
            continue;
        }
        preview.push(PreviewResource {
            kind: if hosts.contains(&config) {
                Kind::Computational
            } else {
                Kind::Peripheral
            },
            lifetime: lifetimes
                .get(&config)
                .copied()
                .unwrap_or(Lifetime::Ephemeral),
            type_: a.type_.clone(),
            address,
        });
    }
    Ok((preview, has_external))
}

/// Every resource instance address in a plan's planned values, child modules included.
fn planned_instances(plan: &serde_json::Value) -> Vec<String> {
    fn walk(module: &serde_json::Value, out: &mut Vec<String>) {
        for r in module["resources"].as_array().into_iter().flatten() {
            out.extend(r["address"].as_str().map(str::to_string));
        }
        for child in module["child_modules"].as_array().into_iter().flatten() {
            walk(child, out);
        }
    }
    let mut out = Vec::new();
    walk(&plan["planned_values"]["root_module"], &mut out);
    out.sort();
    out
}

/// What an import job works on.
#[derive(Debug, Serialize, Deserialize)]
pub struct ImportInput {
    pub template_version_id: String,
    pub activate: bool,
}

/// What a dry run works on.
#[derive(Debug, Serialize, Deserialize)]
pub struct DryRunInput {
    pub template_version_id: String,
    pub user_id: String,
    pub parameters: BTreeMap<String, String>,
    /// An update preview: plan the version against this workspace's current state.
    #[serde(default)]
    pub workspace_id: Option<String>,
    /// The workspace's latest build when the preview was asked for: a preview describes
    /// an update from that build only.
    #[serde(default)]
    pub base_build_id: Option<String>,
}

/// Plans a start of the version for a would-be workspace, applying nothing: the result
/// lists the resources a create with these parameters would make.
async fn dry_run(
    cx: JobCtx<'_>,
    timings: &mut serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<JobResult> {
    let JobCtx {
        runner,
        job,
        logs,
        cancel,
        ..
    } = cx;
    let input: DryRunInput =
        serde_json::from_str(&job.input).context("reading the dry run's input")?;
    if let Some(workspace_id) = &input.workspace_id {
        return update_preview(cx, &input, workspace_id, timings).await;
    }
    let mut subject = Subject::load(
        &runner.db,
        &input.template_version_id,
        &input.user_id,
        "dry-run",
    )
    .await?;
    subject.params = input.parameters;
    let (dir, tf) = match open(cx, &subject, None, timings).await? {
        Ok(opened) => opened,
        Err(done) => return Ok(done),
    };
    let mut out = sink(logs);
    let plan = tf.plan_json(dir.path(), false, &mut out, cancel);
    let plan = match timed(timings, "plan_ms", plan).await {
        Ok(plan) => plan,
        Err(e) => return Ok(terraform_failure(e)),
    };
    let version = &subject.version;
    let lifetimes: HashMap<String, Lifetime> = version
        .resources
        .iter()
        .map(|p| (p.address.clone(), p.lifetime))
        .collect();
    let (preview, _) = preview_resources(
        version.graph.as_deref().unwrap_or("digraph {}"),
        &plan.json,
        &lifetimes,
        true,
    )?;
    let mut result = JobResult::ok();
    result.output = serde_json::json!({ "resources": preview });
    Ok(result)
}

/// Plans a start of `input`'s version against the workspace's current state, as the
/// workspace itself (its id, name and owner, so nothing changes for being renamed):
/// the result lists what the update would create, change, replace or destroy, each
/// persistent resource it would lose marked.
async fn update_preview(
    cx: JobCtx<'_>,
    input: &DryRunInput,
    workspace_id: &str,
    timings: &mut serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<JobResult> {
    let JobCtx {
        runner,
        logs,
        cancel,
        ..
    } = cx;
    let db = &runner.db;
    let ws = db
        .get_workspace(workspace_id)
        .await?
        .context("the workspace is gone")?;
    let latest = db
        .latest_build(&ws.id)
        .await?
        .context("the workspace has no build")?
        .build;
    let mut subject = Subject::load(db, &input.template_version_id, &ws.owner_id, &ws.name).await?;
    subject.workspace_id = ws.id.clone();
    subject.build_id = format!("{}-preview", latest.id);
    subject.params = input.parameters.clone();
    subject.previous = latest.parameters.clone();
    let state = db.previous_state(&ws.id, latest.number + 1).await?;
    let (dir, tf) = match open(cx, &subject, state.as_deref(), timings).await? {
        Ok(opened) => opened,
        Err(done) => return Ok(done),
    };
    let mut out = sink(logs);
    let plan = tf.plan_json(dir.path(), false, &mut out, cancel);
    let plan = match timed(timings, "plan_ms", plan).await {
        Ok(plan) => plan,
        Err(e) => return Ok(terraform_failure(e)),
    };
    // Today's lifetimes for what exists; the new version's for what it adds.
    let current: HashMap<String, Lifetime> = db
        .list_resources(&latest.id)
        .await?
        .into_iter()
        .map(|r| (r.address, r.lifetime))
        .collect();
    let planned: HashMap<String, Lifetime> = subject
        .version
        .resources
        .iter()
        .map(|p| (p.address.clone(), p.lifetime))
        .collect();
    let changes = crate::model::resource::planned_changes(&plan.json, |address| {
        current
            .get(address)
            .or_else(|| planned.get(&classify::strip_keys(address)))
            .or_else(|| planned.get(address))
            .copied()
            .unwrap_or(Lifetime::Ephemeral)
    });
    let mut result = JobResult::ok();
    result.output = serde_json::json!({
        "data_loss": changes.iter().any(|c| c.loses_data),
        "changes": changes,
    });
    Ok(result)
}

/// The tokens the agents of a state run with, by agent resource id (a claim build keeps
/// them).
fn running_agent_tokens(state: Option<&[u8]>) -> anyhow::Result<Vec<(String, Secret)>> {
    let Some(bytes) = state else {
        return Ok(Vec::new());
    };
    let resources = classify::parse_state(bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(resources
        .iter()
        .filter(|r| r.type_ == "hangar_agent" || r.type_ == "coder_agent")
        .filter_map(|r| Some((r.attr_str("id")?, Secret::new(r.attr_str("token")?))))
        .collect())
}

async fn build(
    cx: JobCtx<'_>,
    timings: &mut serde_json::Map<String, serde_json::Value>,
    record: &mut Record,
) -> anyhow::Result<JobResult> {
    let JobCtx {
        runner,
        job,
        logs,
        cancel,
        ..
    } = cx;
    let db = &runner.db;
    let b = db
        .get_build_by_job(&job.id)
        .await?
        .context("the build of this job is gone")?
        .build;
    let ws = db
        .get_workspace(&b.workspace_id)
        .await?
        .context("the workspace is gone")?;
    if b.transition == Transition::Delete && b.orphan {
        logs.info(
            Stage::Apply,
            "orphan delete: the workspace is forgotten and its resources are left as they are",
        );
        record.delete_workspace = Some(ws.id.clone());
        return Ok(JobResult::ok());
    }
    let previous_build = db
        .list_builds(&ws.id)
        .await?
        .into_iter()
        .find(|p| p.build.number < b.number);
    let mut subject = Subject::load(db, &b.template_version_id, &ws.owner_id, &ws.name).await?;
    subject.workspace_id = ws.id.clone();
    subject.build_id = b.id.clone();
    subject.transition = b.transition;
    subject.params = b.parameters.clone();
    subject.previous = previous_build
        .map(|p| p.build.parameters)
        .unwrap_or_default();
    subject.prebuild = ws.owner_id == crate::db::prebuilds::PREBUILDS_USER_ID;
    // A prebuild has no owner to link accounts: it builds without, and its claim build
    // (the user's) gets the user's tokens.
    let tokens = crate::external_auth::build_tokens(
        &runner.db,
        &runner.http,
        &runner.external_auth,
        &runner.access_url,
        &subject.version.facts.external_auth,
        &ws.owner_id,
        !subject.prebuild,
    );
    match tokens.await? {
        Ok(tokens) => subject.external_auth = tokens,
        // Stop and delete go ahead without: they must never be blocked by an account.
        Err(why) if b.transition == Transition::Start => {
            return Ok(JobResult::failed("external_auth", why))
        }
        Err(why) => logs.info(Stage::Init, why),
    }
    let prior_state = db.previous_state(&ws.id, b.number).await?;
    let claim = serde_json::from_str::<serde_json::Value>(&job.input)
        .map(|i| i["prebuild_claim"] == true)
        .unwrap_or(false);
    if claim {
        subject.claim = Some(running_agent_tokens(prior_state.as_deref())?);
        record.claim_of = Some(ws.id.clone());
    }
    let (dir, tf) = match open(cx, &subject, prior_state.as_deref(), timings).await? {
        Ok(opened) => opened,
        Err(done) => return Ok(done),
    };
    let mut out = sink(logs);
    let destroy = b.transition == Transition::Delete;
    let applied = timed(
        timings,
        "apply_ms",
        tf.apply(dir.path(), destroy, &mut out, cancel),
    )
    .await;
    // Whatever terraform managed to do, its state is kept: nothing it created is forgotten.
    let state = super::terraform::read_state(dir.path())?;
    record.state = state.clone().map(|s| (b.id.clone(), s));
    if let Err(e) = applied {
        return Ok(terraform_failure(e));
    }
    let state_resources = match &state {
        Some(bytes) => classify::parse_state(bytes).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => Vec::new(),
    };
    let built = classify_build(&b.id, &subject.version, &state_resources)?;
    if subject.claim.is_some() {
        // The agents still hold the prebuild's tokens: each gets its own on its next
        // connect.
        record.rotate_tokens = built.agents.iter().map(|(a, _)| a.id.clone()).collect();
    }
    record.build = Some(built);
    if destroy {
        record.delete_workspace = Some(ws.id.clone());
    }
    Ok(JobResult::ok())
}
