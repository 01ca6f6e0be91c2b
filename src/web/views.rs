//! The pages' tera views (the `.html` files beside this module, compiled into the binary)
//! and the context each one renders. Tera only checks a template when it renders it, so
//! the tests below render every view with a representative context.

use std::sync::OnceLock;

use serde::Serialize;

use crate::api::{ApiError, FieldError};
use crate::model::parameter::{ParamType, Parameter};
use crate::model::preset::Preset;
use crate::model::{Transition, WorkspaceStatus};
use crate::wire::agents::{AgentLog, MetadataView};
use crate::wire::jobs::{JobLog, LogsPage};
use crate::wire::templates::TemplateView;
use crate::wire::workspaces::{BuildView, WorkspaceView, WorkspacesPage};
use crate::wire::Timestamp;

const VIEWS: &[(&str, &str)] = &[
    ("base.html", include_str!("base.html")),
    ("login.html", include_str!("login.html")),
    ("error.html", include_str!("error.html")),
    ("workspaces.html", include_str!("workspaces.html")),
    ("workspace.html", include_str!("workspace.html")),
    ("agent.html", include_str!("agent.html")),
    ("build.html", include_str!("build.html")),
    ("templates.html", include_str!("templates.html")),
    ("create.html", include_str!("create.html")),
    ("terminal.html", include_str!("terminal.html")),
    ("update.html", include_str!("update.html")),
    ("template.html", include_str!("template.html")),
    ("edit.html", include_str!("edit.html")),
    ("external_auth.html", include_str!("external_auth.html")),
];

/// `/external-auth`: the providers and the viewer's links.
#[derive(Serialize)]
pub struct ExternalAuthPage {
    pub providers: Vec<crate::wire::external_auth::ExternalAuthView>,
    /// The provider the page was opened for (a link from an error), highlighted.
    pub focus: String,
    /// What the last link attempt did.
    pub notice: Option<String>,
    pub error: Option<String>,
}

fn tera() -> &'static tera::Tera {
    static TERA: OnceLock<tera::Tera> = OnceLock::new();
    TERA.get_or_init(|| {
        let mut t = tera::Tera::default();
        // `.html` names turn autoescaping on: every value from the database is escaped.
        t.add_raw_templates(VIEWS.iter().copied())
            .expect("the web views parse (checked by the views test)");
        t.set_escape_fn(escape_html);
        t.register_filter("urlencode_path", urlencode_path);
        t
    })
}

/// Escapes what can end text or an attribute value. Unlike tera's default it leaves `/`
/// alone, so links such as `/@owner/name` read as written in the page source.
fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// Renders a page; `user` is who is logged in (the layout shows it and a logout button).
pub fn render(name: &str, ctx: &impl Serialize, user: Option<&str>) -> Result<String, ApiError> {
    let mut context = tera::Context::from_serialize(ctx)
        .map_err(|e| anyhow::anyhow!("{e:?}").context(format!("the context of {name}")))?;
    context.insert("user", &user);
    tera()
        .render(name, &context)
        // tera's Display hides the cause (an unknown variable, a bad filter) in `source`.
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("rendering {name}: {e:?}")))
}

pub fn workspace_href(owner: &str, name: &str) -> String {
    format!("/@{owner}/{name}")
}

#[derive(Serialize, Default)]
pub struct LoginPage {
    /// What was typed, so a wrong password does not make the user retype the login.
    pub login: String,
    pub error: Option<String>,
    /// Where to go after logging in (a path on this server).
    pub next: String,
}

#[derive(Serialize)]
pub struct ErrorPage {
    pub status: u16,
    pub reason: String,
    pub message: String,
}

/// One line of the list: the columns of `hangar list`.
#[derive(Serialize)]
pub struct ListRow {
    pub href: String,
    pub owner: String,
    pub name: String,
    pub favorite: bool,
    pub template: String,
    pub template_icon: String,
    pub status: WorkspaceStatus,
    /// Empty unless running: health means nothing for a stopped workspace.
    pub healthy: String,
    pub last_built: String,
    pub version: String,
    pub outdated: bool,
    /// Which per-row actions make sense now.
    pub can_start: bool,
    pub can_stop: bool,
    /// The web terminal of its one agent, while it runs (the owner's rows only).
    pub terminal: Option<String>,
}

impl ListRow {
    /// The row as `viewer` sees it: only a workspace's owner gets its terminal.
    pub fn new(w: &WorkspaceView, viewer: &str) -> Self {
        let actions = Actions::of(w);
        let agents: Vec<_> = w.agents().collect();
        let connected = |a: &&crate::wire::agents::AgentView| {
            a.status == crate::model::agent::AgentStatus::Connected
        };
        let terminal = (w.status == WorkspaceStatus::Running
            && w.owner == viewer
            && agents.len() == 1
            && connected(&agents[0])
            && agents[0].display_apps.web_terminal)
            .then(|| {
                format!(
                    "{}.{}/terminal",
                    workspace_href(&w.owner, &w.name),
                    agents[0].name
                )
            });
        ListRow {
            can_start: actions.start,
            can_stop: actions.stop,
            terminal,
            href: workspace_href(&w.owner, &w.name),
            owner: w.owner.clone(),
            name: w.name.clone(),
            favorite: w.favorite,
            template: w.template.clone(),
            template_icon: w.template_icon.clone(),
            status: w.status,
            healthy: health_word(w),
            last_built: Timestamp::ago(w.latest_build.created_at),
            version: w.template_version.clone(),
            outdated: w.outdated && actions.update,
        }
    }
}

/// `true`/`false` for a running workspace, `waiting` for an external one whose agent
/// has not connected yet (its machine is the user's to start: not a fault), else empty.
pub fn health_word(w: &WorkspaceView) -> String {
    use crate::model::agent::AgentStatus;
    if w.status != WorkspaceStatus::Running {
        return String::new();
    }
    let waiting = w.external
        && w.external_agents
            .iter()
            .any(|a| a.status == AgentStatus::Connecting);
    if waiting && !w.healthy {
        "waiting".into()
    } else {
        w.healthy.to_string()
    }
}

/// What can be done to a workspace in its current state, on the list and its page.
#[derive(Serialize, Default, Clone, Copy)]
pub struct Actions {
    pub start: bool,
    pub stop: bool,
    pub restart: bool,
    pub update: bool,
    pub cancel: bool,
    pub delete: bool,
}

impl Actions {
    pub fn of(ws: &WorkspaceView) -> Actions {
        let busy = ws.status.is_busy();
        let running = ws.status == WorkspaceStatus::Running;
        let gone = ws.status == WorkspaceStatus::Deleted;
        // External workspaces run on the user's machine: Hangar cannot start or stop them.
        let manageable = !busy && !ws.external && !gone;
        let stop = manageable
            && (running
                || (ws.status == WorkspaceStatus::Failed
                    && ws.latest_build.transition == Transition::Start));
        Actions {
            start: manageable && !running,
            stop,
            restart: manageable && running,
            update: ws.outdated && !busy && !gone,
            cancel: busy,
            // Deleting needs no running machine, so external workspaces can be deleted too.
            delete: !busy && !gone,
        }
    }
}

/// The web terminal's page.
#[derive(Serialize)]
pub struct TerminalPage {
    /// `owner/workspace.agent`.
    pub place: String,
    pub back: String,
    /// The terminal's WebSocket path (by names, not the agent's id).
    pub socket: String,
}

#[derive(Serialize)]
pub struct ListPage {
    pub workspaces: Vec<ListRow>,
    pub search: String,
    /// How many match in all, and the links to the neighbouring pages (when they exist).
    pub count: i64,
    pub prev: Option<String>,
    pub next: Option<String>,
    /// The live stream of this page's versions, and the version rendered.
    pub live: String,
    pub version: String,
    /// This page's own URL, where its row actions return.
    pub here: String,
}

impl ListPage {
    pub fn new(
        list: &WorkspacesPage,
        viewer: &str,
        search: &str,
        page: i64,
        per_page: i64,
    ) -> ListPage {
        let link = |p: i64| {
            let mut url = format!("/?page={p}");
            if !search.is_empty() {
                url.push_str("&search=");
                url.push_str(&urlencode(search));
            }
            url
        };
        ListPage {
            workspaces: list
                .workspaces
                .iter()
                .map(|w| ListRow::new(w, viewer))
                .collect(),
            search: search.to_string(),
            count: list.count,
            live: String::new(),
            version: String::new(),
            here: "/".into(),
            prev: (page > 0).then(|| link(page - 1)),
            next: ((page + 1) * per_page < list.count).then(|| link(page + 1)),
        }
    }
}

/// A path for a URL (`/` kept, everything else outside the unreserved set encoded).
fn urlencode_path(
    value: &tera::Value,
    _: &std::collections::HashMap<String, tera::Value>,
) -> tera::Result<tera::Value> {
    let path = tera::try_get_value!("urlencode_path", "value", String, value);
    let parts: Vec<String> = path.split('/').map(urlencode).collect();
    Ok(tera::Value::String(parts.join("/")))
}

/// `text` for a URL's query string.
pub(crate) fn urlencode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// One line of a workspace's build history.
#[derive(Serialize)]
pub struct BuildRow {
    pub number: i64,
    pub href: String,
    pub transition: Transition,
    pub status: crate::model::JobStatus,
    pub initiator: String,
    pub created: String,
    /// Run time, empty until the build finished.
    pub duration: String,
}

/// What an agent reported: its latest script output, metadata values and resource use.
#[derive(Serialize)]
pub struct AgentDetail {
    pub agent: crate::wire::agents::AgentView,
    pub logs: Vec<AgentLog>,
    pub metadata: Vec<MetadataView>,
    pub usage: Option<UsageView>,
}

/// An agent's resource use: the latest figures and the recent history as chart lines.
#[derive(Serialize)]
pub struct UsageView {
    pub cpu: Gauge,
    pub memory: Gauge,
    pub disks: Vec<Gauge>,
}

/// One figure: its label, how full (percent), and its recent history as SVG polyline
/// points in a `CHART_W` × `CHART_H` box (empty without history).
#[derive(Serialize)]
pub struct Gauge {
    pub name: String,
    pub label: String,
    pub percent: f64,
    pub points: String,
}

pub const CHART_W: f64 = 160.0;
pub const CHART_H: f64 = 36.0;

/// Polyline points of percentages (0 to 100) over the chart's width, oldest at the left;
/// the chart is drawn by the browser's SVG from these, no chart code involved.
pub fn chart_points(percents: &[f64]) -> String {
    if percents.len() < 2 {
        return String::new();
    }
    let step = CHART_W / (percents.len() - 1) as f64;
    percents
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let y = CHART_H - p.clamp(0.0, 100.0) / 100.0 * CHART_H;
            format!("{:.1},{:.1}", i as f64 * step, y)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl UsageView {
    /// From the samples, oldest first (the last is the latest).
    pub fn new(history: &[crate::wire::agent::Usage]) -> Option<UsageView> {
        use crate::wire::agent::{human_bytes, percent};
        let latest = history.last()?;
        let cpu_pct = |u: &crate::wire::agent::Usage| {
            if u.cpu_total_cores > 0.0 {
                u.cpu_used_cores * 100.0 / u.cpu_total_cores
            } else {
                0.0
            }
        };
        let mem_pct =
            |u: &crate::wire::agent::Usage| percent(u.memory_used_bytes, u.memory_total_bytes);
        let series = |f: &dyn Fn(&crate::wire::agent::Usage) -> f64| {
            chart_points(&history.iter().map(f).collect::<Vec<_>>())
        };
        Some(UsageView {
            cpu: Gauge {
                name: "CPU".into(),
                label: format!(
                    "{:.2} of {} cores",
                    latest.cpu_used_cores, latest.cpu_total_cores
                ),
                percent: cpu_pct(latest).round(),
                points: series(&cpu_pct),
            },
            memory: Gauge {
                name: "Memory".into(),
                label: format!(
                    "{} of {}",
                    human_bytes(latest.memory_used_bytes),
                    human_bytes(latest.memory_total_bytes)
                ),
                percent: mem_pct(latest).round(),
                points: series(&mem_pct),
            },
            disks: latest
                .disks
                .iter()
                .map(|d| Gauge {
                    name: d.path.clone(),
                    label: format!(
                        "{} of {}",
                        human_bytes(d.used_bytes),
                        human_bytes(d.total_bytes)
                    ),
                    percent: percent(d.used_bytes, d.total_bytes).round(),
                    points: String::new(),
                })
                .collect(),
        })
    }
}

/// Why the latest build failed, and the end of its log.
#[derive(Serialize)]
pub struct Failure {
    pub error: String,
    pub log: Vec<JobLog>,
}

#[derive(Serialize)]
pub struct WorkspacePage {
    pub ws: WorkspaceView,
    pub builds: Vec<BuildRow>,
    pub agents: Vec<AgentDetail>,
    pub href: String,
    pub build_href: String,
    pub last_built: String,
    /// When a session or app last used it, e.g. "3 minutes ago"; empty when never.
    pub last_used: String,
    /// Where subdomain apps live (`.apps.example.com:3000`, and the scheme); unset
    /// without a wildcard access URL, and such apps are then served by path.
    pub app_host_suffix: Option<String>,
    pub app_scheme: String,
    /// A build is queued or running.
    pub busy: bool,
    /// `true`, `false`, `waiting` (see `health_word`) or empty.
    pub health: String,
    /// Resources the template does not hide.
    pub shown_resources: usize,
    /// The live stream of this page's versions, and the version rendered.
    pub live: String,
    pub version: String,
    pub actions: Actions,
    /// Set when the latest build failed.
    pub failure: Option<Failure>,
}

impl WorkspacePage {
    /// `builds` newest first, as `build_history` returns them.
    pub fn new(ws: WorkspaceView, builds: Vec<BuildView>, agents: Vec<AgentDetail>) -> Self {
        let href = workspace_href(&ws.owner, &ws.name);
        let busy = ws.status.is_busy();
        let builds = builds
            .into_iter()
            .map(|b| BuildRow {
                href: format!("{href}/builds/{}", b.number),
                number: b.number,
                transition: b.transition,
                status: b.status,
                created: Timestamp::ago(b.created_at),
                duration: match (b.job.started_at, b.job.completed_at) {
                    (Some(s), Some(c)) => seconds(c - s),
                    _ => String::new(),
                },
                initiator: b.initiator,
            })
            .collect();
        WorkspacePage {
            builds,
            agents,
            actions: Actions::of(&ws),
            health: health_word(&ws),
            shown_resources: ws.resources.iter().filter(|r| !r.hide).count(),
            failure: None,
            live: String::new(),
            version: String::new(),
            build_href: format!("{href}/builds/{}", ws.latest_build.number),
            last_built: Timestamp::ago(ws.latest_build.created_at),
            last_used: ws.last_used_at.map(Timestamp::ago).unwrap_or_default(),
            app_host_suffix: None,
            app_scheme: String::new(),
            busy,
            href,
            ws,
        }
    }
}

/// An update's preview page.
#[derive(Serialize)]
pub struct UpdatePage {
    pub owner: String,
    pub name: String,
    pub href: String,
    pub job: String,
    /// Its version now and the one it moves to.
    pub from: String,
    pub to: String,
    /// None while the plan runs.
    pub preview: Option<crate::wire::workspaces::UpdatePreview>,
    pub live: String,
    pub version: String,
}

#[derive(Serialize)]
pub struct Timing {
    pub stage: String,
    pub duration: String,
}

#[derive(Serialize)]
pub struct BuildPage {
    pub owner: String,
    pub workspace: String,
    pub workspace_href: String,
    pub build: BuildView,
    pub created: String,
    /// Queue wait and run time, empty until known.
    pub waited: String,
    pub took: String,
    pub timings: Vec<Timing>,
    pub logs: Vec<JobLog>,
    /// Where the live stream starts (the last line rendered here), and `None` once the job
    /// has finished, so a finished page opens no stream.
    pub stream_url: Option<String>,
    pub after: i64,
}

fn seconds(ms: i64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

impl BuildPage {
    pub fn new(owner: &str, workspace: &str, build: BuildView, page: LogsPage) -> Self {
        let job = &page.job;
        let timings = job
            .timings
            .iter()
            .map(|(stage, &ms)| Timing {
                stage: stage.trim_end_matches("_ms").to_string(),
                duration: seconds(ms),
            })
            .collect();
        let waited = job
            .started_at
            .map(|s| seconds(s - job.created_at))
            .unwrap_or_default();
        let took = match (job.started_at, job.completed_at) {
            (Some(s), Some(c)) => seconds(c - s),
            _ => String::new(),
        };
        let stream_url =
            (!job.status.is_final()).then(|| format!("/api/v2/jobs/{}/logs/stream", job.id));
        BuildPage {
            owner: owner.to_string(),
            workspace: workspace.to_string(),
            workspace_href: workspace_href(owner, workspace),
            created: Timestamp::ago(build.created_at),
            waited,
            took,
            timings,
            after: page.logs.last().map(|l| l.id).unwrap_or(0),
            logs: page.logs,
            stream_url,
            build,
        }
    }
}

#[derive(Serialize)]
pub struct TemplateRow {
    pub template: TemplateView,
    /// The active version's parameters.
    pub parameters: Vec<Parameter>,
}

/// A template's page: its versions (parameters and resource preview each), how many
/// workspaces use it, and, for template admins, Promote and the editor.
#[derive(Serialize)]
pub struct TemplatePage {
    pub template: TemplateView,
    pub versions: Vec<crate::wire::templates::VersionView>,
    pub workspaces: i64,
    pub can_manage: bool,
    /// Each preset's prebuilt workspaces (shown to template admins).
    pub prebuilds: Vec<crate::wire::templates::PrebuildView>,
}

/// The template editor: one file of the active version (or a new template's main.tf).
#[derive(Serialize)]
pub struct EditPage {
    /// Empty for a new template.
    pub template: String,
    pub version: String,
    pub files: Vec<String>,
    pub file: String,
    pub content: String,
    pub error: Option<String>,
    /// A new template's name and the version message, as typed.
    pub new_name: String,
    pub message: String,
}

#[derive(Serialize)]
pub struct TemplatesPage {
    pub templates: Vec<TemplateRow>,
    /// Template admins get New template.
    #[serde(default)]
    pub can_manage: bool,
}

/// One parameter's input on the create form.
#[derive(Serialize)]
pub struct ParamField {
    pub param: Parameter,
    pub required: bool,
    /// The control (`Parameter::control`): input, textarea, slider, checkbox, switch,
    /// radio, dropdown, multi-select or tag-select.
    pub control: &'static str,
    /// What was entered, else the default: a failed submit keeps what the user typed.
    pub value: String,
    /// The chosen values of a list parameter (multi-select, tag-select), one per line for
    /// tag-select's text area.
    pub chosen: Vec<String>,
    pub lines: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub error: Option<String>,
    /// Set by the chosen preset: shown, not editable (the server applies the preset).
    pub locked: bool,
}

#[derive(Serialize)]
pub struct CreatePage {
    pub template: String,
    pub action: String,
    pub name: String,
    pub name_error: Option<String>,
    /// Problems no field owns (a parameter the template does not have, say).
    pub errors: Vec<String>,
    pub fields: Vec<ParamField>,
    /// The version's presets; empty hides the chooser.
    pub presets: Vec<Preset>,
    /// The chosen preset's name; `None` for none.
    pub preset: Option<String>,
    pub preset_error: Option<String>,
    /// External accounts the template uses, linked or not.
    pub accounts: Vec<AccountNeed>,
    pub accounts_error: Option<String>,
}

#[derive(Serialize, Debug, Clone)]
pub struct AccountNeed {
    pub id: String,
    pub display_name: String,
    pub linked: bool,
    pub optional: bool,
    /// The server has this provider (else nothing can be linked).
    pub available: bool,
    pub link_url: String,
}

/// The form field of a parameter: `param.NAME`, beside the workspace's `name`.
pub const PARAM_PREFIX: &str = "param.";

impl CreatePage {
    /// `errors` are the API's field-level validations (`name`, `parameter.NAME`).
    pub fn new(
        template: &str,
        params: Vec<Parameter>,
        (presets, preset): (Vec<Preset>, Option<&str>),
        name: &str,
        entered: &std::collections::BTreeMap<String, String>,
        errors: Vec<FieldError>,
    ) -> Self {
        let chosen_preset = presets.iter().find(|p| Some(p.name.as_str()) == preset);
        let preset_values = chosen_preset
            .map(|p| p.parameters.clone())
            .unwrap_or_default();
        let mut errors = errors;
        let mut take = |field: &str| -> Option<String> {
            let (mine, rest): (Vec<FieldError>, Vec<FieldError>) =
                errors.drain(..).partition(|e| e.field == field);
            errors = rest;
            let details: Vec<String> = mine.into_iter().map(|e| e.detail).collect();
            (!details.is_empty()).then(|| details.join("; "))
        };
        let name_error = take("name");
        let preset_error = take("preset");
        let accounts_error = take("external_auth");
        let fields = params
            .into_iter()
            .map(|p| {
                let rules = p.validation.clone().unwrap_or_default();
                let locked = preset_values.get(&p.name);
                let value = locked
                    .or(entered.get(&p.name))
                    .or(p.default.as_ref())
                    .cloned()
                    .unwrap_or_default();
                let chosen: Vec<String> = if p.kind == ParamType::ListString {
                    serde_json::from_str(&value).unwrap_or_default()
                } else {
                    Vec::new()
                };
                ParamField {
                    locked: locked.is_some(),
                    error: take(&format!("parameter.{}", p.name)),
                    lines: chosen.join("\n"),
                    chosen,
                    value,
                    required: p.required(),
                    min: rules.min,
                    max: rules.max,
                    control: p.control(),
                    param: p,
                }
            })
            .collect();
        CreatePage {
            action: format!("/templates/{template}/create"),
            template: template.to_string(),
            name: name.to_string(),
            name_error,
            errors: errors.into_iter().map(|e| e.detail).collect(),
            fields,
            preset: chosen_preset.map(|p| p.name.clone()),
            presets,
            preset_error,
            accounts: Vec::new(),
            accounts_error,
        }
    }
}

#[cfg(test)]
mod tests;
