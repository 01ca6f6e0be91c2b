//! Every view rendered with a representative context.

use super::*;
use crate::model::agent::AppHealth;
use crate::model::agent::{AgentStatus, Lifecycle};
use crate::model::resource::{Kind, Lifetime};
use crate::model::{now_ms, JobKind, JobStatus};
use crate::wire::agents::{AgentView, AppView};
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
        dir: "/home/me/src dir".into(),
        apps: vec![
            AppView {
                spec: crate::wire::agent::AppSpec {
                    slug: "files".into(),
                    display_name: "Files".into(),
                    url: "http://localhost:8000".into(),
                    healthcheck: Some(Default::default()),
                    ..Default::default()
                },
                health: AppHealth::Unhealthy,
            },
            AppView {
                spec: crate::wire::agent::AppSpec {
                    slug: "ide".into(),
                    url: "http://localhost:9000".into(),
                    subdomain: true,
                    ..Default::default()
                },
                health: AppHealth::Disabled,
            },
            AppView {
                spec: crate::wire::agent::AppSpec {
                    slug: "top".into(),
                    command: "top".into(),
                    ..Default::default()
                },
                health: AppHealth::Disabled,
            },
            AppView {
                spec: crate::wire::agent::AppSpec {
                    slug: "chat".into(),
                    url: "http://localhost:3284".into(),
                    tooltip: "Talk to the agent".into(),
                    ai_task: true,
                    ..Default::default()
                },
                health: AppHealth::Disabled,
            },
        ],
        display_apps: Default::default(),
        listening_ports: vec![3000, 8000],
        usage: None,
        alerts: Vec::new(),
        devcontainers: vec![crate::wire::agent::DevcontainerSpec {
            workspace_folder: "/workspaces/app".into(),
            config_path: String::new(),
        }],
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
        last_used_at: Some(Timestamp(now_ms() - 3 * 60_000)),
        id: "w-1".into(),
        name: "dev".into(),
        owner: "owner".into(),
        owner_id: "u-1".into(),
        template: "local".into(),
        template_icon: "/icon/docker.svg".into(),
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
    let samples: Vec<crate::wire::agent::Usage> = (0..4)
        .map(|i| crate::wire::agent::Usage {
            collected_at: i,
            cpu_used_cores: 0.5 * i as f64,
            cpu_total_cores: 2.0,
            memory_used_bytes: 1 << 30,
            memory_total_bytes: 4 << 30,
            disks: vec![crate::wire::agent::DiskUsage {
                path: "/home/me".into(),
                used_bytes: 3 << 30,
                total_bytes: 10 << 30,
            }],
        })
        .collect();
    let mut main = agent("main", Some("docker_container.dev"));
    main.alerts = vec!["memory is 96% used (the template alerts at 90%)".into()];
    let detail = AgentDetail {
        agent: main,
        usage: UsageView::new(&samples),
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
    let mut page = WorkspacePage::new(ws, vec![build(JobStatus::Succeeded), first], vec![detail]);
    page.app_host_suffix = Some(".apps.example.com:3000".into());
    page.app_scheme = "https".into();
    page
}

fn create_parameters() -> Vec<Parameter> {
    serde_json::from_value(serde_json::json!([
        {"name": "size", "display_name": "Size", "description": "CPUs", "type": "number",
         "default": "2", "mutable": true, "validation": {"min": 1.0, "max": 8.0}},
        {"name": "region", "type": "string", "options": [
            {"name": "Europe", "value": "eu"}, {"name": "America", "value": "us"}]},
        {"name": "gpu", "type": "bool", "default": "false"},
        {"name": "dotfiles", "type": "string", "description": "A git URL"},
        {"name": "zone", "type": "string", "form_type": "dropdown", "default": "b", "options": [
            {"name": "Zone A", "value": "a"}, {"name": "Zone B", "value": "b"}]},
        {"name": "ram", "type": "number", "form_type": "slider", "default": "4",
         "validation": {"min": 2.0, "max": 16.0}},
        {"name": "fast", "type": "bool", "form_type": "switch", "default": "true"},
        {"name": "notes", "type": "string", "form_type": "textarea", "default": "line"},
        {"name": "tags", "type": "list(string)", "default": "[\"x\",\"y\"]"},
        {"name": "ides", "type": "list(string)", "form_type": "multi-select",
         "default": "[\"vim\"]", "options": [
            {"name": "Vim", "value": "vim"}, {"name": "Emacs", "value": "emacs"}]}
    ]))
    .unwrap()
}

/// Renders every view; returns the pages so each test can look at what matters to it.
fn render_all() -> Vec<(&'static str, String)> {
    let user = Some("owner");
    let ws = workspace(JobStatus::Succeeded);
    let template_page = TemplatePage {
        template: TemplateView {
            id: "t-1".into(),
            name: "local".into(),
            display_name: "Local dev".into(),
            icon: "/icon/folder.svg".into(),
            description: "Runs on the server".into(),
            active_version: Some("v2".into()),
            active_version_id: Some("tv-2".into()),
            created_at: now(),
            updated_at: now(),
        },
        versions: vec![crate::wire::templates::VersionView {
            id: "tv-2".into(),
            template_id: "t-1".into(),
            template_name: "local".into(),
            name: "v2".into(),
            message: "bigger disks".into(),
            created_at: now(),
            active: false,
            parameters: vec![parameter()],
            resources: vec![
                serde_json::json!({"address": "docker_volume.home", "type": "docker_volume", "kind": "peripheral", "lifetime": "persistent"}),
            ],
            has_external_agent: false,
            job: Some(job(JobStatus::Succeeded)),
            presets: vec![preset()],
            tags: Default::default(),
            external_auth: Vec::new(),
            variables: Vec::new(),
        }],
        workspaces: 3,
        can_manage: true,
        prebuilds: vec![crate::wire::templates::PrebuildView {
            preset: "Big".into(),
            desired: 2,
            ready: 1,
            building: 0,
            failures: 2,
            last_error: Some("terraform apply failed".into()),
            next_attempt_at: Some(now()),
        }],
    };
    let edit_page = EditPage {
        template: "local".into(),
        version: "v2".into(),
        files: vec!["main.tf".into(), "modules/disk.tf".into()],
        file: "main.tf".into(),
        content: "resource \"x\" \"y\" {} # </textarea><b>".into(),
        error: Some("bad".into()),
        new_name: String::new(),
        message: String::new(),
    };
    let templates = TemplatesPage {
        can_manage: true,
        templates: vec![
            TemplateRow {
                template: TemplateView {
                    id: "t-1".into(),
                    name: "local".into(),
                    display_name: String::new(),
                    icon: String::new(),
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
                    display_name: String::new(),
                    icon: String::new(),
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
                    next: "/@owner/dev.main/terminal".into(),
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
                    "owner",
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
                    "owner",
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
        (
            "template",
            render("template.html", &template_page, user).unwrap(),
        ),
        ("edit", render("edit.html", &edit_page, user).unwrap()),
    ];
    let blank = CreatePage::new(
        "local",
        create_parameters(),
        (Vec::new(), None),
        "",
        &Default::default(),
        vec![],
    );
    pages.push(("create", render("create.html", &blank, user).unwrap()));
    let preset = CreatePage::new(
        "local",
        create_parameters(),
        (vec![preset()], Some("Big")),
        "",
        &Default::default(),
        vec![],
    );
    pages.push((
        "create-preset",
        render("create.html", &preset, user).unwrap(),
    ));
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
        (Vec::new(), None),
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

fn preset() -> crate::model::preset::Preset {
    crate::model::preset::Preset {
        name: "Big".into(),
        description: "Eight cores".into(),
        default: true,
        parameters: [("size".to_string(), "8".to_string())].into(),
        ..Default::default()
    }
}

#[test]
fn agents_show_dev_containers_and_ai_task_apps() {
    let pages = render_all();
    let page = &pages.iter().find(|(n, _)| *n == "workspace").unwrap().1;
    assert!(
        page.contains("Dev Containers") && page.contains("<code>/workspaces/app</code>"),
        "{page}"
    );
    assert!(
        page.contains(">AI task</span>") && page.contains("title=\"Talk to the agent\""),
        "{page}"
    );
}

#[test]
fn a_preset_fills_its_parameters_read_only() {
    let pages = render_all();
    let page = &pages.iter().find(|(n, _)| *n == "create-preset").unwrap().1;
    assert!(
        page.contains("<option value=\"Big\" selected>Big (default)</option>"),
        "{page}"
    );
    assert!(page.contains("Eight cores"));
    assert!(
        page.contains("id=\"f-param-size\" value=\"8\" readonly"),
        "the preset's value, read-only: {page}"
    );
    assert!(page.contains("Set by the preset Big."));
    let plain = &pages.iter().find(|(n, _)| *n == "create").unwrap().1;
    assert!(!plain.contains("f-preset"), "no presets, no chooser");
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
    assert!(page("login-error").contains("name=\"next\" value=\"/@owner/dev.main/terminal\""));
    let list = page("list");
    for column in ["Workspace", "Status", "Template", "Last built"] {
        assert!(list.contains(&format!("<th>{column}</th>")), "{column}");
    }
    // Status as a dot and its word, health as an icon, actions per row, a live region.
    for word in [
        "<img class=\"icon\" src=\"/icon/docker.svg\" alt=\"\">",
        "class=\"status running\">running",
        "✓ healthy",
        "class=\"status failed\">failed",
        "data-label=\"Status\"",
        "data-live=\"\"",
    ] {
        assert!(list.contains(word), "{word} missing in {list}");
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
        "id=\"last-used\">3m ago",
        // Health beside the app, a command app in the terminal, VS Code over Remote-SSH.
        "id=\"health-main-files\" title=\"unhealthy\">unhealthy",
        "href=\"/@owner/dev.main/terminal?app=top\"",
        "href=\"https://ide--main--dev--owner.apps.example.com:3000/\"",
        "href=\"vscode://vscode-remote/ssh-remote+hangar.dev.main/home/me/src%20dir\"",
    ] {
        assert!(ws.contains(word), "{word} missing in {ws}");
    }
    // An app without a healthcheck shows no health; Insiders is off by default.
    assert!(!ws.contains("health-main-top"));
    assert!(!ws.contains("vscode-insiders://"));
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
        "Unpin",
        // Usage: the figures, a chart line per history, the disk's bar, the alert.
        "1.50 of 2 cores",
        "1.0 GiB of 4.0 GiB",
        "Disk /home/me",
        "<polyline points=\"0.0,36.0 53.3,27.0 106.7,18.0 160.0,9.0\"/>",
        "memory is 96% used",
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
    assert!(page("workspace-busy").contains("Following build #3 live"));
    assert!(page("workspace-busy").contains("action=\"/@owner/dev/cancel\""));
    assert!(
        !page("workspace").contains("/cancel\""),
        "nothing to cancel when idle"
    );
    assert!(page("templates").contains("Where it runs"));
    assert!(page("templates").contains("href=\"/templates/local/create\""));
    assert!(!page("templates").contains("/templates/broken/create"));
    assert!(page("list").contains("New workspace"));
    let t = page("template");
    for word in [
        "3 workspaces use it",
        "Local dev <span class=\"muted\">local</span>",
        "src=\"/icon/folder.svg\"",
        "action=\"/templates/local/settings\"",
        "bigger disks",
        "docker_volume.home",
        "persistent",
        "value=\"v2\"><button class=\"small promote\">Promote",
        "href=\"/templates/local/edit\"",
        "Where it runs",
    ] {
        assert!(t.contains(word), "{word} missing in {t}");
    }
    let edit = page("edit");
    assert!(
        edit.contains("&lt;/textarea&gt;&lt;b&gt;"),
        "the content is escaped: {edit}"
    );
    assert!(
        edit.contains("href=\"/templates/local/edit?file=modules/disk.tf\""),
        "{edit}"
    );
    assert!(page("templates").contains("href=\"/templates/new\""));
}

#[test]
fn the_create_form_has_an_input_per_parameter_and_keeps_values_beside_errors() {
    let pages = render_all();
    let page = |n: &str| &pages.iter().find(|(name, _)| *name == n).unwrap().1;
    let blank = page("create");
    for input in [
        "type=\"number\" step=\"any\" name=\"param.size\" value=\"2\" min=\"1",
        // Each control Coder's form_type names, and the defaults by type and options.
        "type=\"radio\" id=\"f-param-region-1\" name=\"param.region\" value=\"us\">America",
        "<select id=\"f-param-zone\" name=\"param.zone\">",
        "<option value=\"b\" selected>Zone B",
        "type=\"range\" name=\"param.ram\" value=\"4\" min=\"2\" max=\"16\"",
        "name=\"param.fast\" value=\"true\" role=\"switch\" class=\"switch\" checked",
        "<textarea id=\"f-param-notes\" name=\"param.notes\" rows=\"4\">line</textarea>",
        "<textarea id=\"f-param-tags\" name=\"param.tags\" rows=\"3\" aria-describedby=\"f-param-tags-hint\">x\ny</textarea>",
        "type=\"checkbox\" id=\"f-param-ides-0\" name=\"param.ides\" value=\"vim\" checked",
        "type=\"checkbox\" id=\"f-param-ides-1\" name=\"param.ides\" value=\"emacs\">",
        "type=\"checkbox\" name=\"param.gpu\" value=\"true\">",
        "name=\"param.dotfiles\" value=\"\" required>",
        "immutable",
        "action=\"/templates/local/create\"",
        "Size",
        "CPUs",
        "default 2",
    ] {
        assert!(blank.contains(input), "{input} missing in {blank}");
    }
    assert!(!blank.contains("class=\"field-error\""), "{blank}");

    let failed = page("create-errors");
    for kept in [
        "name=\"name\" value=\"my-dev\"",
        "name=\"param.size\" value=\"9\"",
        "name=\"param.region\" value=\"us\" checked>",
        "name=\"param.gpu\" value=\"true\" checked>",
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
