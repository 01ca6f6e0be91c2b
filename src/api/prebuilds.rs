//! Prebuilt workspaces: for every preset of a template's active version with
//! `prebuilds { instances }`, the server keeps that many workspaces built and running,
//! owned by the `prebuilds` system user, so a user's create with that preset claims one
//! and waits for a claim build instead of a full one.
//!
//! [`reconcile`] runs in a loop: it replaces failed, outdated (another version is
//! active, or the preset is gone) and expired (`expiration_policy.ttl`) prebuilds, deletes
//! extra ones and creates missing ones. Failures back off per preset and are shown to
//! template admins (`GET /templates/{name}/prebuilds`, the template page).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::Json;

use super::auth::Auth;
use super::templates::template_by_name;
use super::workspaces::{busy, name_taken, view_of};
use super::{ApiError, ApiResult, AppState};
use crate::db::prebuilds::{Prebuild, PREBUILDS_USER_ID};
use crate::db::templates::{Template, TemplateVersion};
use crate::db::users::User;
use crate::db::workspaces::{NewBuild, QueueError, Workspace};
use crate::model::cron::Cron;
use crate::model::parameter::resolve;
use crate::model::preset::{Prebuilds, Preset};
use crate::model::Name;
use crate::model::{new_id, now_ms, JobStatus, Transition};
use crate::wire::templates::PrebuildView;
use crate::wire::workspaces::WorkspaceView;

/// How many prebuilds `p` wants at `now`: a schedule covering the hour (in its time zone)
/// decides, else `instances`.
pub fn desired(p: &Prebuilds, now_ms: i64) -> u32 {
    let Some(s) = &p.scheduling else {
        return p.instances;
    };
    let Ok(tz) = jiff::tz::TimeZone::get(&s.timezone) else {
        return p.instances;
    };
    let Ok(at) = jiff::Timestamp::from_millisecond(now_ms) else {
        return p.instances;
    };
    let local = at.to_zoned(tz);
    let (month, day, hour) = (
        local.month() as u32,
        local.day() as u32,
        local.hour() as u32,
    );
    let weekday = local.weekday().to_sunday_zero_offset() as u32;
    s.schedules
        .iter()
        .find(|sch| Cron::parse(&sch.cron).is_ok_and(|c| c.matches(month, day, weekday, hour)))
        .map_or(p.instances, |sch| sch.instances)
}

/// The wait after `failures` failed prebuilds in a row: `base`, doubling, at most 15 min.
pub fn backoff(base: Duration, failures: i64) -> Duration {
    let doublings = failures.saturating_sub(1).clamp(0, 16) as u32;
    base.saturating_mul(1 << doublings)
        .min(Duration::from_secs(15 * 60))
}

/// Where one prebuild stands.
#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Building,
    Ready,
    Failed,
    /// Stopped or being deleted: not usable, not counted.
    Gone,
}

fn phase(p: &Prebuild) -> Phase {
    match (p.transition, p.status) {
        (Transition::Start, JobStatus::Succeeded) => Phase::Ready,
        (Transition::Start, JobStatus::Pending | JobStatus::Running | JobStatus::Canceling) => {
            Phase::Building
        }
        (Transition::Start, _) => Phase::Failed,
        _ => Phase::Gone,
    }
}

/// One pass over every template: see the module documentation.
pub async fn reconcile(state: &AppState) -> anyhow::Result<()> {
    for t in state.db.list_templates().await? {
        let version = match &t.active_version_id {
            Some(id) => state.db.get_template_version(id).await?,
            None => None,
        };
        let wanted: Vec<&Preset> = version
            .iter()
            .flat_map(|v| v.facts.presets.iter())
            .filter(|p| p.prebuilds.is_some())
            .collect();
        let existing = state.db.prebuilds_of(&t.id).await?;
        if wanted.is_empty() && existing.is_empty() {
            continue;
        }
        reconcile_template(state, &t, version.as_ref(), &wanted, existing).await?;
    }
    Ok(())
}

async fn reconcile_template(
    state: &AppState,
    t: &Template,
    version: Option<&TemplateVersion>,
    wanted: &[&Preset],
    existing: Vec<Prebuild>,
) -> anyhow::Result<()> {
    let now = now_ms();
    let mut counted: BTreeMap<&str, Vec<&Prebuild>> = BTreeMap::new();
    for p in &existing {
        let preset = wanted.iter().find(|w| w.name == p.preset);
        let current = version.is_some_and(|v| v.id == p.template_version_id) && preset.is_some();
        let ttl = preset
            .and_then(|w| w.prebuilds.as_ref())
            .map_or(0, |pb| pb.ttl_secs);
        let expired = ttl > 0 && now - p.created_at > (ttl as i64) * 1000;
        match phase(p) {
            Phase::Failed => {
                let error = p.error.clone().unwrap_or_else(|| "the build failed".into());
                failed(state, &t.id, &p.preset, &error).await?;
                tracing::warn!(template = %t.name, preset = %p.preset, error = %error, "a prebuild failed");
                remove(state, p).await?;
            }
            Phase::Ready if !current || expired => remove(state, p).await?,
            Phase::Ready | Phase::Building if current => {
                if phase(p) == Phase::Ready {
                    state.db.prebuild_succeeded(&t.id, &p.preset).await?;
                }
                counted.entry(p.preset.as_str()).or_default().push(p);
            }
            // Outdated and still building: removed once its build is over.
            Phase::Building | Phase::Ready | Phase::Gone => {}
        }
    }
    let Some(version) = version else {
        return Ok(());
    };
    let status = state.db.prebuild_status(&t.id).await?;
    for preset in wanted {
        let Some(pb) = &preset.prebuilds else {
            continue;
        };
        let want = desired(pb, now) as usize;
        let have = counted
            .get(preset.name.as_str())
            .cloned()
            .unwrap_or_default();
        if have.len() > want {
            // Ready ones first (oldest), then builds: extra capacity goes.
            let mut extra: Vec<&&Prebuild> = have.iter().collect();
            extra.sort_by_key(|p| (phase(p) != Phase::Ready, p.created_at));
            for p in extra.into_iter().take(have.len() - want) {
                if phase(p) == Phase::Ready {
                    remove(state, p).await?;
                }
            }
            continue;
        }
        let backing_off = status
            .iter()
            .any(|s| s.preset == preset.name && s.next_attempt_at > now);
        if backing_off {
            continue;
        }
        for _ in have.len()..want {
            if let Err(e) = create(state, t, version, preset).await {
                failed(state, &t.id, &preset.name, &format!("{e:#}")).await?;
                break;
            }
        }
    }
    Ok(())
}

/// Records one more failed prebuild of a preset, and when to try again (backing off).
async fn failed(
    state: &AppState,
    template_id: &str,
    preset: &str,
    error: &str,
) -> anyhow::Result<()> {
    let failures = state
        .db
        .prebuild_status(template_id)
        .await?
        .iter()
        .find(|s| s.preset == preset)
        .map_or(0, |s| s.failures)
        + 1;
    let next = now_ms() + backoff(state.config.prebuild_backoff, failures).as_millis() as i64;
    state
        .db
        .prebuild_failed(template_id, preset, error, next)
        .await?;
    Ok(())
}

/// Deletes a prebuild (it is no longer claimable from now on).
async fn remove(state: &AppState, p: &Prebuild) -> anyhow::Result<()> {
    // Whoever deletes the prebuild row first wins: a claim that did is left alone.
    if !state.db.forget_prebuild(&p.workspace_id).await? {
        return Ok(());
    }
    let Some(ws) = state.db.get_workspace(&p.workspace_id).await? else {
        return Ok(());
    };
    if ws.owner_id != PREBUILDS_USER_ID {
        return Ok(());
    }
    let latest = state
        .db
        .latest_build(&ws.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("prebuild {} has no build", ws.name))?;
    let params = serde_json::to_string(&latest.build.parameters)?;
    let delete = NewBuild {
        workspace_id: &ws.id,
        transition: Transition::Delete,
        template_version_id: &latest.build.template_version_id,
        initiator_id: PREBUILDS_USER_ID,
        parameters: &params,
        orphan: false,
        prebuild_claim: false,
    };
    match state.db.queue_build(&delete).await {
        Ok(_) | Err(QueueError::Busy) => {}
        Err(QueueError::Db(e)) => return Err(e.into()),
    }
    state.jobs_available.notify_waiters();
    Ok(())
}

/// A new prebuild of `preset`: the preset's values, defaults for the rest.
async fn create(
    state: &AppState,
    t: &Template,
    version: &TemplateVersion,
    preset: &Preset,
) -> anyhow::Result<()> {
    let owner = state.db.prebuilds_user().await?;
    let given: BTreeMap<String, String> = preset
        .parameters
        .iter()
        .filter(|(k, _)| version.parameters.iter().any(|p| &p.name == *k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let values = resolve(&version.parameters, &given, None).map_err(|problems| {
        let details: Vec<String> = problems.into_iter().map(|p| p.detail).collect();
        anyhow::anyhow!(
            "preset {:?} cannot be prebuilt: {}",
            preset.name,
            details.join("; ")
        )
    })?;
    let ws = Workspace {
        id: new_id(),
        name: format!("prebuild-{}", &new_id().replace('-', "")[..10]),
        owner_id: owner.id.clone(),
        template_id: t.id.clone(),
        favorite: false,
        created_at: now_ms(),
        deleted: false,
        last_used_at: None,
    };
    let params = serde_json::to_string(&values)?;
    let first = NewBuild {
        workspace_id: &ws.id,
        transition: Transition::Start,
        template_version_id: &version.id,
        initiator_id: &owner.id,
        parameters: &params,
        orphan: false,
        prebuild_claim: false,
    };
    match state.db.create_prebuild(&ws, &first, &preset.name).await {
        Ok(()) => {}
        Err(QueueError::Db(e)) => return Err(e.into()),
        Err(QueueError::Busy) => anyhow::bail!("a new workspace cannot be busy"),
    }
    state.jobs_available.notify_waiters();
    tracing::info!(template = %t.name, preset = %preset.name, workspace = %ws.name, "prebuilding");
    Ok(())
}

/// Runs [`reconcile`] every `config.prebuild_interval` until `stop`.
pub async fn run(state: AppState, stop: tokio_util::sync::CancellationToken) {
    loop {
        if let Err(e) = reconcile(&state).await {
            tracing::warn!(error = format!("{e:#}"), "reconciling prebuilt workspaces");
        }
        tokio::select! {
            _ = tokio::time::sleep(state.config.prebuild_interval) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// `GET /templates/{name}/prebuilds`: each preset's prebuilds of the active version, and
/// how they fare (template admins).
pub async fn list(
    State(state): State<AppState>,
    _auth: Auth,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<PrebuildView>>> {
    let t = template_by_name(&state, &name).await?;
    Ok(Json(views(&state, &t).await?))
}

pub async fn views(state: &AppState, t: &Template) -> ApiResult<Vec<PrebuildView>> {
    let version = match &t.active_version_id {
        Some(id) => state.db.get_template_version(id).await?,
        None => None,
    };
    let existing = state.db.prebuilds_of(&t.id).await?;
    let status = state.db.prebuild_status(&t.id).await?;
    let now = now_ms();
    let mut out = Vec::new();
    for preset in version.iter().flat_map(|v| v.facts.presets.iter()) {
        let Some(pb) = &preset.prebuilds else {
            continue;
        };
        let mine: Vec<&Prebuild> = existing
            .iter()
            .filter(|p| {
                p.preset == preset.name
                    && version
                        .as_ref()
                        .is_some_and(|v| v.id == p.template_version_id)
            })
            .collect();
        let s = status.iter().find(|s| s.preset == preset.name);
        out.push(PrebuildView {
            preset: preset.name.clone(),
            desired: desired(pb, now),
            ready: mine.iter().filter(|p| phase(p) == Phase::Ready).count() as u32,
            building: mine.iter().filter(|p| phase(p) == Phase::Building).count() as u32,
            failures: s.map_or(0, |s| s.failures),
            last_error: s.map(|s| s.last_error.clone()).filter(|e| !e.is_empty()),
            next_attempt_at: s
                .filter(|s| s.next_attempt_at > now)
                .map(|s| crate::wire::Timestamp(s.next_attempt_at)),
        });
    }
    Ok(out)
}

/// The values a create uses: `given`, plus the preset's for the version's parameters.
/// A preset value the caller also gave differently is refused (the preset decides it).
pub fn with_preset(
    version: &TemplateVersion,
    preset: Option<&str>,
    given: &BTreeMap<String, String>,
) -> ApiResult<BTreeMap<String, String>> {
    let Some(name) = preset else {
        return Ok(given.clone());
    };
    let presets = &version.facts.presets;
    let Some(p) = presets.iter().find(|p| p.name == name) else {
        let known: Vec<&str> = presets.iter().map(|p| p.name.as_str()).collect();
        let hint = if known.is_empty() {
            "it has none".to_string()
        } else {
            format!("it has {}", known.join(", "))
        };
        return Err(ApiError::invalid(
            "preset",
            format!("version {} has no preset {name:?}: {hint}", version.name),
        ));
    };
    let mut values = given.clone();
    for (param, value) in &p.parameters {
        // Presets may name parameters a version no longer has (as in Coder): skipped.
        if !version.parameters.iter().any(|v| &v.name == param) {
            continue;
        }
        match given.get(param) {
            Some(other) if other != value => {
                return Err(ApiError::invalid(
                    &format!("parameter.{param}"),
                    format!("preset {name:?} sets {param} to {value:?}; leave it out, or create without the preset"),
                ));
            }
            _ => {
                values.insert(param.clone(), value.clone());
            }
        }
    }
    Ok(values)
}

/// Waits (at most the job timeout) for a claim build to end, then rings the prebuild's
/// agents: each gets its own token over its connection at once, instead of at its next
/// heartbeat check.
async fn hand_over_when_built(state: AppState, job_id: String, agents: Vec<String>) {
    let mut updates = state.job_updates.subscribe();
    let deadline = tokio::time::Instant::now() + state.config.job_timeout;
    loop {
        let done = match state.db.get_job(&job_id).await {
            Ok(Some(job)) => job.status.is_final(),
            Ok(None) | Err(_) => true,
        };
        if done {
            break;
        }
        // Every log line and status change of any job rings here; look again on ours.
        loop {
            match tokio::time::timeout_at(deadline, updates.recv()).await {
                Ok(Ok(id)) if id != job_id => continue,
                Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => break,
                Ok(Err(_)) | Err(_) => return,
            }
        }
    }
    for agent in &agents {
        state.agent_conns.recheck(agent);
    }
}

/// Gives `owner` a ready prebuilt workspace of `preset` (of the template's active
/// version), renamed `name`, and queues its claim build with `values`; `None` when no
/// prebuild is ready (the caller builds one from scratch).
#[allow(clippy::too_many_arguments)]
pub async fn claim(
    state: &AppState,
    auth: &Auth,
    template: &Template,
    version: &TemplateVersion,
    preset: &str,
    owner: &User,
    name: &Name,
    values: &BTreeMap<String, String>,
) -> ApiResult<Option<WorkspaceView>> {
    if template.active_version_id.as_deref() != Some(version.id.as_str()) {
        return Ok(None);
    }
    // The prebuild's agents: told to check their tokens the moment the claim is built.
    let params_json = serde_json::to_string(values).map_err(anyhow::Error::from)?;
    let claim = NewBuild {
        workspace_id: "",
        transition: Transition::Start,
        template_version_id: &version.id,
        initiator_id: &auth.user.id,
        parameters: &params_json,
        orphan: false,
        prebuild_claim: true,
    };
    let (claimed, build) = match state
        .db
        .claim_prebuild(&template.id, preset, &owner.id, name.as_str(), &claim)
        .await
    {
        Ok(Some(done)) => done,
        Ok(None) => return Ok(None),
        Err(QueueError::Db(e)) if crate::db::is_unique_violation(&e) => {
            return Err(name_taken(name))
        }
        Err(QueueError::Db(e)) => return Err(e.into()),
        Err(QueueError::Busy) => return Err(busy(name.as_str())),
    };
    let running: Vec<String> = match state
        .db
        .list_builds(&claimed)
        .await?
        .into_iter()
        .find(|b| b.build.number + 1 == build.number)
    {
        Some(prev) => state
            .db
            .list_agents(&prev.build.id)
            .await?
            .into_iter()
            .map(|a| a.id)
            .collect(),
        None => Vec::new(),
    };
    state.jobs_available.notify_waiters();
    tokio::spawn(hand_over_when_built(state.clone(), build.job_id, running));
    state
        .db
        .audit(
            Some(&auth.user.id),
            "claim_prebuild",
            &format!("{}/{}", owner.username, name),
            &format!("{} preset {preset}", template.name),
        )
        .await?;
    let ws = state
        .db
        .get_workspace(&claimed)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the claimed workspace vanished"))?;
    Ok(Some(view_of(state, &auth.user, &ws).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::preset::{Schedule, Scheduling};

    #[test]
    fn schedules_decide_by_local_hour() {
        let p = Prebuilds {
            instances: 1,
            ttl_secs: 0,
            scheduling: Some(Scheduling {
                timezone: "UTC".into(),
                schedules: vec![Schedule {
                    cron: "* 8-17 * * 1-5".into(),
                    instances: 4,
                }],
            }),
        };
        // 2026-12-02 was a Wednesday.
        let wednesday_9 = 1_796_202_000_000; // 2026-12-02T09:00:00Z
        assert_eq!(desired(&p, wednesday_9), 4);
        assert_eq!(desired(&p, wednesday_9 + 10 * 3_600_000), 1, "19:00");
        assert_eq!(desired(&p, wednesday_9 + 3 * 86_400_000), 1, "Saturday");
    }

    #[test]
    fn failures_back_off_doubling_to_a_cap() {
        let base = Duration::from_secs(10);
        assert_eq!(backoff(base, 1), Duration::from_secs(10));
        assert_eq!(backoff(base, 3), Duration::from_secs(40));
        assert_eq!(backoff(base, 40), Duration::from_secs(900));
    }
}
