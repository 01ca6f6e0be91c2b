//! Walks every route of the API with every kind of caller and checks who gets in.
//!
//! The routes come from `api::route_table()`, which the router is built from, so a new
//! route cannot be added without this test walking it; the expected set of callers is
//! written here, independently of the table, for each route.

mod common;

use common::*;
use hangar::model::Role;
use hangar::wire::workspaces::CreateWorkspaceRequest;
use reqwest::{Method, StatusCode};

/// Who calls: the server's owner, a template-admin, alice (who owns the workspace every
/// path names), bob (another member), nobody, and alice's workspace agent.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Caller {
    Owner,
    TemplateAdmin,
    Alice,
    Bob,
    Anonymous,
    Agent,
}
use Caller::*;

const CALLERS: [Caller; 6] = [Owner, TemplateAdmin, Alice, Bob, Anonymous, Agent];

/// Who may call a route, written from what the route is for.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Everyone gets the same answer.
    Anyone,
    AgentOnly,
    AnyUser,
    Admins,
    OwnerOnly,
    /// Alice's resource: alice, owners and template-admins; bob sees a 404.
    AlicesAndAdmins,
    /// A template import: owners and template-admins; members see a 404.
    AdminsElse404,
    /// A session into alice's workspace: alice alone; every other user sees a 404.
    AliceOnly,
}

fn expect(method: &Method, path: &str) -> Expect {
    use Expect::*;
    match (method.as_str(), path) {
        ("GET", "/buildinfo")
        | ("GET", "/openapi.json")
        | (_, "/users/first")
        | ("POST", "/users/login")
        | ("GET", "/init-script/:os/:arch")
        | ("POST", "/workspaceagents/google-instance-identity")
        | ("POST", "/workspaceagents/aws-instance-identity")
        | ("POST", "/workspaceagents/azure-instance-identity")
        | ("GET", "/bin/:file") => Anyone,
        ("GET", "/workspaceagents/me")
        | ("GET", "/workspaceagents/me/ws")
        | ("GET", "/workspaceagents/me/external-auth") => AgentOnly,
        ("POST", "/users/logout")
        | ("GET", "/users/me")
        | (_, "/users/me/keys/tokens")
        | ("DELETE", "/users/me/keys/tokens/:name")
        | ("GET", "/external-auth")
        | ("GET", "/external-auth/:id/token")
        | ("DELETE", "/external-auth/:id")
        | ("GET", "/templates")
        | ("GET", "/templates/:name")
        | ("GET", "/templates/:name/versions")
        | ("GET", "/templates/:name/versions/:version")
        | ("GET", "/templates/:name/versions/:version/archive")
        | ("POST", "/templates/:name/versions/:version/dry-run")
        | (_, "/workspaces") => AnyUser,
        ("GET", "/users")
        | ("GET", "/templates/:name/prebuilds")
        | ("DELETE", "/templates/:name")
        | ("PATCH", "/templates/:name")
        | ("PUT", "/templates/:name/active")
        | ("POST", "/templates/:name/versions") => Admins,
        ("POST", "/users")
        | ("PUT", "/users/:user/status/suspend")
        | ("PUT", "/users/:user/status/activate")
        | ("GET", "/audit") => OwnerOnly,
        ("GET", "/workspaces/:owner/:name/agent-instructions")
        | ("GET", "/workspaceagents/:id/tcp")
        | ("GET", "/workspaceagents/:id/ssh")
        | ("GET", "/workspaceagents/:id/echo")
        | ("GET", "/workspaceagents/:id/pty") => AliceOnly,
        (_, p)
            if p.starts_with("/workspaces/:owner/:name")
                || p.starts_with("/workspacebuilds/:id")
                || p.starts_with("/workspaceagents/:id") =>
        {
            AlicesAndAdmins
        }
        // Jobs are walked once per kind, each with its own expectation (see below).
        (_, p) if p.starts_with("/jobs/:id") => AlicesAndAdmins,
        (m, p) => panic!("no expectation for {m} {p}: say in tests/authz.rs who may call it"),
    }
}

fn allowed(expect: Expect, caller: Caller) -> bool {
    use Expect::*;
    match expect {
        Anyone => true,
        AgentOnly => caller == Agent,
        AnyUser => matches!(caller, Owner | TemplateAdmin | Alice | Bob),
        Admins | AdminsElse404 => matches!(caller, Owner | TemplateAdmin),
        OwnerOnly => caller == Owner,
        AlicesAndAdmins => matches!(caller, Owner | TemplateAdmin | Alice),
        AliceOnly => caller == Alice,
    }
}

/// The refusal a caller gets: not logged in 401, wrong role 403, someone else's thing 404.
fn refusal(expect: Expect, caller: Caller) -> StatusCode {
    use Expect::*;
    match (expect, caller) {
        (AgentOnly, _) | (_, Anonymous) | (_, Agent) => StatusCode::UNAUTHORIZED,
        (AlicesAndAdmins | AdminsElse404 | AliceOnly, _) => StatusCode::NOT_FOUND,
        _ => StatusCode::FORBIDDEN,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_admits_exactly_its_callers() {
    // A provider, so its routes answer as they do on a configured server (it is never
    // contacted: nobody links an account here).
    let app = spawn_app_with(|c| {
        c.external_auth = serde_yaml::from_str(
            "- {id: github, client_id: c, client_secret: s, auth_url: 'http://127.0.0.1:9/a', token_url: 'http://127.0.0.1:9/t'}",
        )
        .unwrap();
    })
    .await;
    let external = push_builtin(&app, "external").await;
    let tadmin = app.user("tadmin", Role::TemplateAdmin).await;
    let alice = app.user("alice", Role::Member).await;
    let bob = app.user("bob", Role::Member).await;
    app.user("victim", Role::Member).await;
    alice
        .create_workspace(&CreateWorkspaceRequest {
            name: "box".into(),
            template: "external".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let ws = alice.workspace("box").await.unwrap();
    alice
        .follow_job(&ws.latest_build.job.id, |_| {})
        .await
        .unwrap();
    let ws = alice.workspace("box").await.unwrap();
    let agent = &ws.external_agents[0];
    let agent_token = alice
        .agent_instructions("box", None)
        .await
        .unwrap()
        .auth_token;
    let dry_run = alice
        .dry_run("external", &external.name, Default::default())
        .await
        .unwrap();
    let import_job = external.job.as_ref().unwrap().id.clone();
    let build_job = ws.latest_build.job.id.clone();

    let token_of = |c: Caller| -> Option<String> {
        match c {
            Owner => app.client.token().map(str::to_string),
            TemplateAdmin => tadmin.token().map(str::to_string),
            Alice => alice.token().map(str::to_string),
            Bob => bob.token().map(str::to_string),
            Anonymous => None,
            Agent => Some(agent_token.clone()),
        }
    };
    for c in [Owner, TemplateAdmin, Alice, Bob] {
        let client = hangar::client::Client::new(&app.url, token_of(c));
        client.create_token("walk", None).await.unwrap();
    }

    let (os, arch) = hangar::wire::agent::this_platform();
    let fill = |path: &str, job: &str| -> String {
        path.replace(":owner", "alice")
            .replace(":name/versions", "external/versions")
            .replace(":version", &external.name)
            .replace("/templates/:name", "/templates/external")
            .replace("/workspaces/alice/:name", "/workspaces/alice/box")
            .replace("/keys/tokens/:name", "/keys/tokens/walk")
            .replace(":user", "victim")
            .replace(":os", os)
            .replace(":arch", arch)
            .replace(":file", &format!("hangar-{os}-{arch}"))
            .replace(
                "/workspacebuilds/:id",
                &format!("/workspacebuilds/{}", ws.latest_build.id),
            )
            .replace(
                "/workspaceagents/:id",
                &format!("/workspaceagents/{}", agent.id),
            )
            .replace("/jobs/:id", &format!("/jobs/{job}"))
            .replace("/external-auth/:id", "/external-auth/github")
    };
    let body_for = |method: &Method, path: &str| -> serde_json::Value {
        match (method.as_str(), path) {
            ("POST", "/workspaces") => {
                serde_json::json!({"name": format!("w{}", rand_suffix()), "template": "external"})
            }
            ("POST", "/users/login") => {
                serde_json::json!({"login": "alice", "password": "wrong-password"})
            }
            ("PUT", "/templates/:name/active") => serde_json::json!({"version": external.name}),
            ("PUT", "/workspaces/:owner/:name/favorite") => serde_json::json!({"favorite": true}),
            ("POST", "/workspaces/:owner/:name/builds") => {
                serde_json::json!({"transition": "stop"})
            }
            ("POST", "/templates/:name/versions/:version/dry-run") => {
                serde_json::json!({"parameters": {}})
            }
            ("POST", "/users/me/keys/tokens") => {
                serde_json::json!({"name": format!("t{}", rand_suffix())})
            }
            _ => serde_json::json!({}),
        }
    };

    let http = reqwest::Client::new();
    let mut routes = hangar::api::route_table();
    // Logging out ends the caller's session: walk it last.
    routes.sort_by_key(|r| r.path == "/users/logout");
    let mut walked = 0;
    let mut failures = Vec::new();
    for route in &routes {
        let jobs: Vec<(&str, Expect)> = if route.path.starts_with("/jobs/:id") {
            vec![
                (build_job.as_str(), Expect::AlicesAndAdmins),
                (dry_run.id.as_str(), Expect::AlicesAndAdmins),
                (import_job.as_str(), Expect::AdminsElse404),
            ]
        } else {
            vec![("", expect(&route.method, route.path))]
        };
        for (job, expected) in jobs {
            let url = format!("{}/api/v2{}", app.url, fill(route.path, job));
            let mut anyone_status = None;
            for caller in CALLERS {
                // GETs go as HEAD: the same gate, without downloading binaries or streams.
                let method = if route.method == Method::GET {
                    Method::HEAD
                } else {
                    route.method.clone()
                };
                let mut req = http.request(method, &url);
                if let Some(t) = token_of(caller) {
                    req = req.bearer_auth(t);
                }
                if route.method != Method::GET {
                    req = req.json(&body_for(&route.method, route.path));
                }
                let status = req.send().await.unwrap().status();
                walked += 1;
                let ok = match expected {
                    Expect::Anyone => {
                        let first = *anyone_status.get_or_insert(status);
                        status == first
                            && status != StatusCode::FORBIDDEN
                            && status != StatusCode::NOT_FOUND
                    }
                    _ if allowed(expected, caller) => !matches!(
                        status,
                        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
                    ),
                    _ => status == refusal(expected, caller),
                };
                if !ok {
                    failures.push(format!(
                        "{} {} as {caller:?}: got {status}, expected {}",
                        route.method,
                        fill(route.path, job),
                        if allowed(expected, caller) {
                            "to be let in".to_string()
                        } else {
                            refusal(expected, caller).to_string()
                        }
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(walked >= routes.len() * CALLERS.len());
    app.stop().await;
}

fn rand_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}
