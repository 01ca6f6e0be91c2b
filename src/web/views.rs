//! The pages' tera views (the `.html` files beside this module, compiled into the binary)
//! and the context each one renders. Tera only checks a template when it renders it, so
//! the tests below render every view with a representative context.

use std::sync::OnceLock;

use serde::Serialize;

use crate::api::{ApiError, FieldError};
use crate::model::parameter::{ParamType, Parameter};
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
    ("build.html", include_str!("build.html")),
    ("templates.html", include_str!("templates.html")),
    ("create.html", include_str!("create.html")),
    ("terminal.html", include_str!("terminal.html")),
];

fn tera() -> &'static tera::Tera {
    static TERA: OnceLock<tera::Tera> = OnceLock::new();
    TERA.get_or_init(|| {
        let mut t = tera::Tera::default();
        // `.html` names turn autoescaping on: every value from the database is escaped.
        t.add_raw_templates(VIEWS.iter().copied())
            .expect("the web views parse (checked by the views test)");
        t.set_escape_fn(escape_html);
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
    pub status: WorkspaceStatus,
    /// Empty unless running: health means nothing for a stopped workspace.
    pub healthy: String,
    pub last_built: String,
    pub version: String,
    pub outdated: bool,
}

impl From<&WorkspaceView> for ListRow {
    fn from(w: &WorkspaceView) -> Self {
        ListRow {
            href: workspace_href(&w.owner, &w.name),
            owner: w.owner.clone(),
            name: w.name.clone(),
            favorite: w.favorite,
            template: w.template.clone(),
            status: w.status,
            healthy: if w.status == WorkspaceStatus::Running {
                w.healthy.to_string()
            } else {
                String::new()
            },
            last_built: Timestamp::ago(w.latest_build.created_at),
            version: w.template_version.clone(),
            outdated: w.outdated,
        }
    }
}

/// The web terminal's page.
#[derive(Serialize)]
pub struct TerminalPage {
    /// `owner/workspace.agent`.
    pub place: String,
    pub back: String,
    pub agent_id: String,
}

#[derive(Serialize)]
pub struct ListPage {
    pub workspaces: Vec<ListRow>,
    pub search: String,
    /// How many match in all, and the links to the neighbouring pages (when they exist).
    pub count: i64,
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl ListPage {
    pub fn new(list: &WorkspacesPage, search: &str, page: i64, per_page: i64) -> ListPage {
        let link = |p: i64| {
            let mut url = format!("/?page={p}");
            if !search.is_empty() {
                url.push_str("&search=");
                url.push_str(&urlencode(search));
            }
            url
        };
        ListPage {
            workspaces: list.workspaces.iter().map(ListRow::from).collect(),
            search: search.to_string(),
            count: list.count,
            prev: (page > 0).then(|| link(page - 1)),
            next: ((page + 1) * per_page < list.count).then(|| link(page + 1)),
        }
    }
}

/// `text` for a URL's query string.
fn urlencode(text: &str) -> String {
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

/// What an agent reported: its latest script output and metadata values.
#[derive(Serialize)]
pub struct AgentDetail {
    pub name: String,
    pub logs: Vec<AgentLog>,
    pub metadata: Vec<MetadataView>,
}

#[derive(Serialize)]
pub struct WorkspacePage {
    pub ws: WorkspaceView,
    pub builds: Vec<BuildRow>,
    pub agents: Vec<AgentDetail>,
    pub href: String,
    pub build_href: String,
    pub last_built: String,
    /// A build is queued or running: the page refreshes itself until it settles.
    pub busy: bool,
    pub can_start: bool,
    pub can_stop: bool,
    pub can_delete: bool,
}

impl WorkspacePage {
    /// `builds` newest first, as `build_history` returns them.
    pub fn new(ws: WorkspaceView, builds: Vec<BuildView>, agents: Vec<AgentDetail>) -> Self {
        let href = workspace_href(&ws.owner, &ws.name);
        let busy = ws.status.is_busy();
        let running = ws.status == WorkspaceStatus::Running;
        // External workspaces run on the user's machine: Hangar cannot start or stop them.
        let manageable = !busy && !ws.external && ws.status != WorkspaceStatus::Deleted;
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
            // Deleting needs no running machine, so external workspaces can be deleted too.
            can_delete: !busy && ws.status != WorkspaceStatus::Deleted,
            build_href: format!("{href}/builds/{}", ws.latest_build.number),
            last_built: Timestamp::ago(ws.latest_build.created_at),
            can_start: manageable && !running,
            can_stop: manageable
                && (running
                    || (ws.status == WorkspaceStatus::Failed
                        && ws.latest_build.transition == Transition::Start)),
            busy,
            href,
            ws,
        }
    }
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
                stage: stage.clone(),
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

#[derive(Serialize)]
pub struct TemplatesPage {
    pub templates: Vec<TemplateRow>,
}

/// One parameter's input on the create form.
#[derive(Serialize)]
pub struct ParamField {
    pub param: Parameter,
    pub required: bool,
    /// `select` (options), `number`, `checkbox` (bool) or `text`.
    pub input: &'static str,
    /// What was entered, else the default: a failed submit keeps what the user typed.
    pub value: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub error: Option<String>,
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
}

/// The form field of a parameter: `param.NAME`, beside the workspace's `name`.
pub const PARAM_PREFIX: &str = "param.";

impl CreatePage {
    /// `errors` are the API's field-level validations (`name`, `parameter.NAME`).
    pub fn new(
        template: &str,
        params: Vec<Parameter>,
        name: &str,
        entered: &std::collections::BTreeMap<String, String>,
        errors: Vec<FieldError>,
    ) -> Self {
        let mut errors = errors;
        let mut take = |field: &str| -> Option<String> {
            let (mine, rest): (Vec<FieldError>, Vec<FieldError>) =
                errors.drain(..).partition(|e| e.field == field);
            errors = rest;
            let details: Vec<String> = mine.into_iter().map(|e| e.detail).collect();
            (!details.is_empty()).then(|| details.join("; "))
        };
        let name_error = take("name");
        let fields = params
            .into_iter()
            .map(|p| {
                let input = if !p.options.is_empty() && p.kind != ParamType::ListString {
                    "select"
                } else {
                    match p.kind {
                        ParamType::Number => "number",
                        ParamType::Bool => "checkbox",
                        _ => "text",
                    }
                };
                let rules = p.validation.clone().unwrap_or_default();
                ParamField {
                    error: take(&format!("parameter.{}", p.name)),
                    value: entered
                        .get(&p.name)
                        .or(p.default.as_ref())
                        .cloned()
                        .unwrap_or_default(),
                    required: p.required(),
                    min: rules.min,
                    max: rules.max,
                    input,
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::agent::{AgentStatus, Lifecycle};
    use crate::model::resource::{Kind, Lifetime};
    use crate::model::{now_ms, JobKind, JobStatus};
    use crate::wire::agents::AgentView;
    use crate::wire::jobs::Job;
    use crate::wire::workspaces::{ResourceMetadata, ResourceView};

    fn now() -> Timestamp {
        Timestamp(now_ms())
    }

    fn job(status: JobStatus) -> Job {
        let now = now_ms();
        Job {
            id: "job-1".into(),
            kind: JobKind::WorkspaceBuild,
            status,
            input: serde_json::json!({}),
            worker_id: Some("w".into()),
            created_at: Timestamp(now - 3000),
            started_at: Some(Timestamp(now - 2500)),
            updated_at: Timestamp(now),
            completed_at: status.is_final().then_some(Timestamp(now)),
            canceled_at: None,
            error: (status == JobStatus::Failed).then(|| "apply failed: <disk full>".into()),
            error_code: (status == JobStatus::Failed).then(|| "apply_failed".into()),
            timings: [("plan".to_string(), 1200), ("apply".to_string(), 800)].into(),
            result: serde_json::json!({}),
        }
    }

    fn build(status: JobStatus) -> BuildView {
        BuildView {
            id: "b-1".into(),
            number: 3,
            transition: Transition::Start,
            status,
            workspace_status: WorkspaceStatus::derive(Transition::Start, status),
            template_version: "v2".into(),
            template_version_id: "tv-2".into(),
            initiator: "owner".into(),
            parameters: [("region".to_string(), "eu".to_string())].into(),
            orphan: false,
            created_at: Timestamp(now_ms() - 4000),
            job: job(status),
        }
    }

    fn resource(
        address: &str,
        kind: Kind,
        lifetime: Lifetime,
        metadata: Vec<ResourceMetadata>,
        agents: Vec<AgentView>,
    ) -> ResourceView {
        ResourceView {
            id: format!("r-{address}"),
            address: address.into(),
            type_: "terraform_data".into(),
            name: address.rsplit('.').next().unwrap().into(),
            kind,
            lifetime,
            hide: false,
            icon: String::new(),
            daily_cost: 7,
            metadata,
            agents,
        }
    }

    fn agent(name: &str, host: Option<&str>) -> AgentView {
        AgentView {
            id: format!("a-{name}"),
            name: name.into(),
            workspace_id: "w-1".into(),
            workspace_name: "dev".into(),
            owner_name: "owner".into(),
            host_address: host.map(Into::into),
            external: host.is_none(),
            os: "linux".into(),
            arch: "amd64".into(),
            version: "0.1.0".into(),
            hostname: "box".into(),
            lifecycle: Lifecycle::Ready,
            status: AgentStatus::Connected,
            healthy: true,
            first_connected_at: Some(now()),
            last_connected_at: Some(now()),
            disconnected_at: None,
            created_at: now(),
            troubleshooting_url: String::new(),
            apps: vec![crate::wire::agent::AppSpec {
                slug: "files".into(),
                display_name: "Files".into(),
                url: "http://localhost:8000".into(),
                ..Default::default()
            }],
            listening_ports: vec![3000, 8000],
        }
    }

    fn workspace(status: JobStatus) -> WorkspaceView {
        let item = |key: &str, value: &str, sensitive| ResourceMetadata {
            key: key.into(),
            value: Some(value.into()),
            sensitive,
        };
        let vm = resource(
            "terraform_data.vm[0]",
            Kind::Computational,
            Lifetime::Ephemeral,
            vec![item("size", "large", false), item("password", "***", true)],
            vec![agent("main", Some("terraform_data.vm[0]"))],
        );
        let disk = resource(
            "terraform_data.disk",
            Kind::Peripheral,
            Lifetime::Persistent,
            vec![],
            vec![],
        );
        let b = build(status);
        WorkspaceView {
            id: "w-1".into(),
            name: "dev".into(),
            owner: "owner".into(),
            owner_id: "u-1".into(),
            template: "local".into(),
            template_id: "t-1".into(),
            template_version: "v2".into(),
            active_version: Some("v3".into()),
            outdated: true,
            status: b.workspace_status,
            healthy: true,
            favorite: true,
            external: false,
            created_at: Timestamp(now_ms() - 60_000),
            latest_build: b,
            resources: vec![vm, disk],
            external_agents: vec![agent("laptop", None)],
            daily_cost: 14,
        }
    }

    fn logs(status: JobStatus) -> LogsPage {
        LogsPage {
            logs: vec![
                JobLog {
                    id: 41,
                    at: now(),
                    stage: "plan".into(),
                    level: "info".into(),
                    text: "Plan: 2 to add <script>alert(1)</script>".into(),
                },
                JobLog {
                    id: 42,
                    at: now(),
                    stage: "apply".into(),
                    level: "error".into(),
                    text: "Error: disk full".into(),
                },
            ],
            job: job(status),
        }
    }

    fn parameter() -> Parameter {
        serde_json::from_value(serde_json::json!({
            "name": "region", "display_name": "Region", "description": "Where it runs",
            "type": "string", "default": "eu", "mutable": true
        }))
        .unwrap()
    }

    /// A settled workspace with two builds and an agent that reported logs and metadata.
    fn workspace_page(ws: WorkspaceView) -> WorkspacePage {
        let mut first = build(JobStatus::Succeeded);
        first.number = 2;
        first.transition = Transition::Stop;
        let detail = AgentDetail {
            name: "main".into(),
            logs: (1..=5)
                .map(|i| AgentLog {
                    id: i,
                    at: now(),
                    source: "startup_script".into(),
                    level: "info".into(),
                    text: format!("agent-line-{i} <b>"),
                })
                .collect(),
            metadata: vec![
                MetadataView {
                    key: "load".into(),
                    display_name: "Load average".into(),
                    interval: 10,
                    value: "0.42".into(),
                    error: String::new(),
                    collected_at: Some(now()),
                },
                MetadataView {
                    key: "disk".into(),
                    display_name: "Disk".into(),
                    interval: 10,
                    value: String::new(),
                    error: "df: not found".into(),
                    collected_at: Some(now()),
                },
            ],
        };
        WorkspacePage::new(ws, vec![build(JobStatus::Succeeded), first], vec![detail])
    }

    fn create_parameters() -> Vec<Parameter> {
        serde_json::from_value(serde_json::json!([
            {"name": "size", "display_name": "Size", "description": "CPUs", "type": "number",
             "default": "2", "mutable": true, "validation": {"min": 1.0, "max": 8.0}},
            {"name": "region", "type": "string", "options": [
                {"name": "Europe", "value": "eu"}, {"name": "America", "value": "us"}]},
            {"name": "gpu", "type": "bool", "default": "false"},
            {"name": "dotfiles", "type": "string", "description": "A git URL"}
        ]))
        .unwrap()
    }

    /// Renders every view; returns the pages so each test can look at what matters to it.
    fn render_all() -> Vec<(&'static str, String)> {
        let user = Some("owner");
        let ws = workspace(JobStatus::Succeeded);
        let templates = TemplatesPage {
            templates: vec![
                TemplateRow {
                    template: TemplateView {
                        id: "t-1".into(),
                        name: "local".into(),
                        description: "Runs on the server".into(),
                        active_version: Some("v3".into()),
                        active_version_id: Some("tv-3".into()),
                        created_at: now(),
                        updated_at: now(),
                    },
                    parameters: vec![parameter()],
                },
                TemplateRow {
                    template: TemplateView {
                        id: "t-2".into(),
                        name: "broken".into(),
                        description: String::new(),
                        active_version: None,
                        active_version_id: None,
                        created_at: now(),
                        updated_at: now(),
                    },
                    parameters: vec![],
                },
            ],
        };
        let mut pages = vec![
            (
                "login",
                render("login.html", &LoginPage::default(), None).unwrap(),
            ),
            (
                "login-error",
                render(
                    "login.html",
                    &LoginPage {
                        login: "owner".into(),
                        error: Some("incorrect login or password".into()),
                    },
                    None,
                )
                .unwrap(),
            ),
            (
                "error",
                render(
                    "error.html",
                    &ErrorPage {
                        status: 404,
                        reason: "Not Found".into(),
                        message: "no workspace \"x\"".into(),
                    },
                    user,
                )
                .unwrap(),
            ),
            (
                "list",
                render(
                    "workspaces.html",
                    &ListPage::new(
                        &WorkspacesPage {
                            workspaces: vec![ws.clone(), workspace(JobStatus::Failed)],
                            count: 120,
                        },
                        "owner:me dev&x",
                        1,
                        50,
                    ),
                    user,
                )
                .unwrap(),
            ),
            (
                "list-empty",
                render(
                    "workspaces.html",
                    &ListPage::new(
                        &WorkspacesPage {
                            workspaces: vec![],
                            count: 0,
                        },
                        "",
                        0,
                        50,
                    ),
                    user,
                )
                .unwrap(),
            ),
            (
                "workspace",
                render("workspace.html", &workspace_page(ws), user).unwrap(),
            ),
            (
                "workspace-busy",
                render(
                    "workspace.html",
                    &WorkspacePage::new(
                        workspace(JobStatus::Running),
                        vec![build(JobStatus::Running)],
                        vec![],
                    ),
                    user,
                )
                .unwrap(),
            ),
            (
                "templates",
                render("templates.html", &templates, user).unwrap(),
            ),
        ];
        let blank = CreatePage::new(
            "local",
            create_parameters(),
            "",
            &Default::default(),
            vec![],
        );
        pages.push(("create", render("create.html", &blank, user).unwrap()));
        let entered = [
            ("size", "9"),
            ("region", "us"),
            ("gpu", "true"),
            ("dotfiles", "<x>"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
        let failed = CreatePage::new(
            "local",
            create_parameters(),
            "my-dev",
            &entered,
            vec![
                FieldError {
                    field: "parameter.size".into(),
                    detail: "parameter \"size\": 9 is above the maximum 8".into(),
                },
                FieldError {
                    field: "name".into(),
                    detail: "you already have a workspace named \"my-dev\"".into(),
                },
                FieldError {
                    field: "parameter.nope".into(),
                    detail: "the template has no parameter \"nope\"".into(),
                },
            ],
        );
        pages.push((
            "create-errors",
            render("create.html", &failed, user).unwrap(),
        ));
        for status in [JobStatus::Running, JobStatus::Failed, JobStatus::Succeeded] {
            let page = BuildPage::new("owner", "dev", build(status), logs(status));
            pages.push(("build", render("build.html", &page, user).unwrap()));
        }
        pages
    }

    #[test]
    fn every_view_renders_with_a_representative_context() {
        let pages = render_all();
        for (name, html) in &pages {
            assert!(html.starts_with("<!doctype html>"), "{name}: {html}");
            assert!(html.contains("</html>"), "{name}");
        }
        let page = |n: &str| &pages.iter().find(|(name, _)| *name == n).unwrap().1;
        assert!(page("login-error").contains("incorrect login or password"));
        let list = page("list");
        for column in [
            "WORKSPACE",
            "TEMPLATE",
            "STATUS",
            "HEALTHY",
            "LAST BUILT",
            "CURRENT VERSION",
            "OUTDATED",
        ] {
            assert!(list.contains(column), "{column}");
        }
        assert!(list.contains("href=\"/@owner/dev\""), "{list}");
        // Page 2 of 3 (120 at 50 a page), the search kept in both links and the box.
        assert!(list.contains("120 workspaces"), "{list}");
        for link in [
            "id=\"prev-page\" href=\"/?page=0&amp;search=owner%3Ame%20dev%26x\"",
            "id=\"next-page\" href=\"/?page=2&amp;search=owner%3Ame%20dev%26x\"",
            "value=\"owner:me dev&amp;x\"",
        ] {
            assert!(list.contains(link), "{link} missing in {list}");
        }
        assert!(!page("list-empty").contains("next-page"));
        let ws = page("workspace");
        for word in [
            "computational",
            "peripheral",
            "persistent",
            "ephemeral",
            "main",
            "***",
            "large",
            "/@owner/dev/builds/3",
            "outdated",
            "value=\"stop\"",
            "href=\"/@owner/dev.main/apps/files/\"",
            "href=\"/@owner/dev.main/ports/3000/\"",
            "hangar ssh dev.main",
        ] {
            assert!(ws.contains(word), "{word} missing in {ws}");
        }
        for word in [
            // Build history, newest first, with the agent's log tail and metadata.
            "href=\"/@owner/dev/builds/2\"",
            "agent-line-5 &lt;b&gt;",
            "Load average",
            "0.42",
            "df: not found",
            "value=\"delete\"",
            "data-confirm=\"Delete owner/dev?",
            "action=\"/@owner/dev/favorite\"",
            "Unfavorite",
        ] {
            assert!(ws.contains(word), "{word} missing in {ws}");
        }
        assert!(ws.find("builds/3\">#3").unwrap() < ws.find("builds/2\">#2").unwrap());
        assert!(!ws.contains("http-equiv=\"refresh\""));
        let busy = page("workspace-busy");
        assert!(
            !busy.contains("value=\"delete\""),
            "no delete while a build runs"
        );
        assert!(page("workspace-busy").contains("http-equiv=\"refresh\""));
        assert!(page("workspace-busy").contains("action=\"/@owner/dev/cancel\""));
        assert!(
            !page("workspace").contains("/cancel\""),
            "nothing to cancel when idle"
        );
        assert!(page("templates").contains("Where it runs"));
        assert!(page("templates").contains("href=\"/templates/local/create\""));
        assert!(!page("templates").contains("/templates/broken/create"));
        assert!(page("list").contains("New workspace"));
    }

    #[test]
    fn the_create_form_has_an_input_per_parameter_and_keeps_values_beside_errors() {
        let pages = render_all();
        let page = |n: &str| &pages.iter().find(|(name, _)| *name == n).unwrap().1;
        let blank = page("create");
        for input in [
            "type=\"number\" step=\"any\" name=\"param.size\" value=\"2\" min=\"1",
            "<select id=\"f-param-region\" name=\"param.region\" required>",
            "type=\"checkbox\" name=\"param.gpu\" value=\"true\"",
            "name=\"param.dotfiles\" value=\"\" required>",
            "action=\"/templates/local/create\"",
            "Size",
            "CPUs",
            "default 2",
        ] {
            assert!(blank.contains(input), "{input} missing in {blank}");
        }
        assert!(!blank.contains("class=\"field-error\""), "{blank}");
        assert!(
            !blank.contains(" checked"),
            "gpu defaults to false: {blank}"
        );

        let failed = page("create-errors");
        for kept in [
            "name=\"name\" value=\"my-dev\"",
            "name=\"param.size\" value=\"9\"",
            "<option value=\"us\" selected>",
            "value=\"true\" style=\"width: auto\" checked",
            "value=\"&lt;x&gt;\"",
        ] {
            assert!(failed.contains(kept), "{kept} missing in {failed}");
        }
        // Each message right after its own input, and one no field owns at the top.
        let size_input = failed.find("name=\"param.size\"").unwrap();
        let size_error = failed.find("id=\"error-size\"").unwrap();
        let region_input = failed.find("name=\"param.region\"").unwrap();
        assert!(
            size_input < size_error && size_error < region_input,
            "{failed}"
        );
        assert!(failed.contains("9 is above the maximum 8"));
        assert!(failed.contains("id=\"error-name\""));
        let unknown = failed.find("no parameter &quot;nope&quot;").unwrap();
        assert!(unknown < failed.find("id=\"create\"").unwrap(), "{failed}");
    }

    #[test]
    fn build_pages_stream_only_while_the_job_runs_and_escape_log_text() {
        let pages = render_all();
        let builds: Vec<&str> = pages
            .iter()
            .filter(|(n, _)| *n == "build")
            .map(|(_, h)| h.as_str())
            .collect();
        let (running, failed, done) = (builds[0], builds[1], builds[2]);
        assert!(
            running.contains("data-stream=\"/api/v2/jobs/job-1/logs/stream\""),
            "{running}"
        );
        assert!(running.contains("data-after=\"42\""), "{running}");
        assert!(!done.contains("data-stream="), "{done}");
        assert!(
            failed.contains("apply failed: &lt;disk full&gt;"),
            "{failed}"
        );
        assert!(
            done.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{done}"
        );
        assert!(!done.contains("<script>alert(1)"));
        assert!(done.contains("plan") && done.contains("1.2s"), "{done}");
    }
}
