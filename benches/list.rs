//! The workspace list at scale: 10,000 workspaces (10 owners × 1,000, each a copy of one
//! real build with an agent and two resources), then p50/p99 of a page of 25 (first,
//! deep, filtered, a member's own) and of one workspace, over real HTTP on loopback.
//! SQLite by default; `HANGAR_BENCH_PG_URL=postgres://…/db` runs it on PostgreSQL too.
//! As a yardstick in the same run: an HTTP round trip to `GET /api/v2/buildinfo`, which
//! touches no database.

#[path = "../tests/common/seed.rs"]
mod seed;

use std::time::{Duration, Instant};

use hangar::client::Client;
use hangar::wire::workspaces::{CreateWorkspaceRequest, ListQuery};

/// The scale: 10 owners × 1,000 workspaces and 200 requests a figure under `cargo bench`;
/// a smoke run (2 × 50, 10 requests) when `cargo test --all-targets` runs it, which checks
/// that it still works without spending the suite's time.
struct Scale {
    owners: usize,
    per_owner: usize,
    samples: usize,
}

fn scale() -> Scale {
    if std::env::args().any(|a| a == "--bench") {
        Scale {
            owners: 10,
            per_owner: 1_000,
            samples: 200,
        }
    } else {
        Scale {
            owners: 2,
            per_owner: 50,
            samples: 10,
        }
    }
}

const TEMPLATE: &str = r#"terraform {
  required_providers {
    hangar = { source = "hangar/hangar" }
  }
}
data "hangar_workspace" "me" {}
resource "hangar_agent" "main" {
  os   = "linux"
  arch = "amd64"
}
resource "terraform_data" "host" {
  count = data.hangar_workspace.me.start_count
  input = hangar_agent.main.id
}
resource "terraform_data" "home" {}
"#;

fn percentiles(mut xs: Vec<Duration>) -> (f64, f64) {
    xs.sort();
    let at = |q: f64| xs[((xs.len() as f64 * q) as usize).min(xs.len() - 1)].as_secs_f64() * 1000.0;
    (at(0.50), at(0.99))
}

async fn measure<F, Fut>(label: &str, target_ms: Option<f64>, mut call: F)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for i in 0..10 {
        call(i).await;
    }
    let samples = scale().samples;
    let mut xs = Vec::with_capacity(samples);
    for i in 0..samples {
        let t = Instant::now();
        call(i).await;
        xs.push(t.elapsed());
    }
    let (p50, p99) = percentiles(xs);
    let target = target_ms
        .map(|t| {
            format!(
                "  (target p99 < {t} ms: {})",
                if p99 < t { "met" } else { "MISSED" }
            )
        })
        .unwrap_or_default();
    println!("  {label:<44} p50 {p50:6.2} ms   p99 {p99:6.2} ms{target}");
}

async fn run(db_url: &str, backend: &str) {
    let data = tempfile::tempdir().unwrap();
    let db = hangar::db::Database::connect(db_url).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut config = hangar::config::Config::new(data.path().to_path_buf(), url.clone());
    config.hangar_binary = env!("CARGO_BIN_EXE_hangar").into();
    tokio::spawn(hangar::server::serve(
        listener,
        config,
        db,
        std::future::pending(),
    ));
    let anon = Client::new(&url, None);
    let login = anon
        .create_first_user(&hangar::wire::users::CreateUserRequest {
            username: "bench".into(),
            email: "b@example.com".into(),
            password: "benchmark-password".into(),
            full_name: String::new(),
            role: None,
        })
        .await
        .unwrap();
    let client = anon.with_token(&login.session_token);
    let module = tempfile::tempdir().unwrap();
    std::fs::write(module.path().join("main.tf"), TEMPLATE).unwrap();
    let archive = hangar::model::archive::pack_dir(module.path()).unwrap();
    let v = client
        .push_template("t", archive, None, "", true)
        .await
        .unwrap();
    client.follow_job(&v.job.unwrap().id, |_| {}).await.unwrap();
    let real = client
        .create_workspace(&CreateWorkspaceRequest {
            name: "real".into(),
            template: "t".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .follow_job(&real.latest_build.job.id, |_| {})
        .await
        .unwrap();

    let mut owners = vec![(real.owner_id.clone(), client.clone())];
    let Scale {
        owners: n_owners,
        per_owner,
        samples,
    } = scale();
    for i in 1..n_owners {
        let name = format!("member{i}");
        client
            .create_user(&hangar::wire::users::CreateUserRequest {
                username: name.clone(),
                email: format!("{name}@example.com"),
                password: "benchmark-password".into(),
                full_name: String::new(),
                role: Some(hangar::model::Role::Member),
            })
            .await
            .unwrap();
        let login = anon.login(&name, "benchmark-password").await.unwrap();
        let member = anon.with_token(&login.session_token);
        owners.push((member.me().await.unwrap().id, member));
    }
    let pool = sqlx::AnyPool::connect(db_url).await.unwrap();
    let model = seed::model(&pool, &real.id).await;
    let plan: Vec<seed::Planned> = owners
        .iter()
        .flat_map(|(id, _)| {
            (0..per_owner).map(move |i| seed::Planned {
                owner_id: id.clone(),
                name: format!("ws-{i:05}"),
                stopped: i % 4 == 0,
            })
        })
        .collect();
    let t = Instant::now();
    seed::seed(&pool, &model, &plan).await;
    // A long-lived database has planner statistics (autovacuum, or SQLite's optimize);
    // a freshly seeded one would be planned blind.
    sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    let total = client
        .workspaces_page(&ListQuery {
            all: true,
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap()
        .count;
    println!(
        "{backend}: {total} workspaces (seeded in {:.1} s), {samples} requests each{}:",
        t.elapsed().as_secs_f64(),
        if cfg!(debug_assertions) {
            " (a debug build: run `cargo bench` for figures)"
        } else {
            ""
        }
    );

    let page = |client: &Client, search: &str, offset: i64, all: bool| {
        let client = client.clone();
        let q = ListQuery {
            all,
            search: search.into(),
            limit: Some(25),
            offset: Some(offset),
        };
        async move {
            let p = client.workspaces_page(&q).await.unwrap();
            assert!(!p.workspaces.is_empty());
        }
    };
    measure("GET /api/v2/buildinfo (no database)", None, |_| {
        let client = client.clone();
        async move {
            client.get::<serde_json::Value>("/buildinfo").await.unwrap();
        }
    })
    .await;
    measure("list, first page of 25 (everyone's)", Some(20.0), |_| {
        page(&client, "", 0, true)
    })
    .await;
    let deep = (n_owners * per_owner / 2) as i64;
    measure("list, page in the middle (offset N/2)", Some(20.0), |_| {
        page(&client, "", deep, true)
    })
    .await;
    measure("list, status:stopped owner:member1", Some(20.0), |_| {
        page(&client, "status:stopped owner:member1", 0, true)
    })
    .await;
    let member = owners[owners.len() - 1].1.clone();
    measure("list, a member's own, page 3", Some(20.0), |_| {
        page(&member, "", (per_owner / 2).min(50) as i64, false)
    })
    .await;
    measure(
        "one workspace (GET /workspaces/me/ws-…)",
        Some(5.0),
        |i| {
            let client = client.clone();
            async move {
                client
                    .workspace(&format!("ws-{:05}", (i * 37) % per_owner))
                    .await
                    .unwrap();
            }
        },
    )
    .await;
}

#[tokio::main]
async fn main() {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("hangar.db").display()
    );
    run(&sqlite, "SQLite").await;
    if let Ok(pg) = std::env::var("HANGAR_BENCH_PG_URL") {
        run(&pg, "PostgreSQL").await;
    }
}
