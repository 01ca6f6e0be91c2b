//! Many workspaces at once, for the list tests and the list benchmark. Each seeded
//! workspace copies the latest build of one real workspace (its resources and agents, with
//! fresh ids and token hashes), so the views read exactly what a real build stores.
#![allow(dead_code)]

use sqlx::{AnyPool, Row};

use hangar::db::placeholder_rows;

/// Rows inserted per statement.
const CHUNK: usize = 100;

pub struct Model {
    template_id: String,
    version_id: String,
    initiator_id: String,
    parameters: String,
    resources: Vec<Vec<String>>,
    agents: Vec<Vec<String>>,
}

const RESOURCE_COLUMNS: &str = "address, type, name, kind, lifetime, icon, metadata";
const AGENT_COLUMNS: &str = "name, host_address, os, arch, manifest, lifecycle";

/// What the latest build of workspace `id` holds, to copy.
pub async fn model(pool: &AnyPool, id: &str) -> Model {
    let w = sqlx::query(
        "SELECT w.template_id, b.id, b.template_version_id, b.initiator_id, b.parameters \
         FROM workspaces w JOIN workspace_builds b ON b.workspace_id = w.id \
         WHERE w.id = $1 ORDER BY b.number DESC LIMIT 1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap();
    let build_id: String = w.get(1);
    let texts = |row: &sqlx::any::AnyRow, n: usize| -> Vec<String> {
        (0..n)
            .map(|i| row.try_get::<String, _>(i).unwrap_or_default())
            .collect()
    };
    let resources = sqlx::query(&format!(
        "SELECT {RESOURCE_COLUMNS} FROM workspace_resources WHERE build_id = $1"
    ))
    .bind(&build_id)
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|r| texts(r, 7))
    .collect();
    let agents = sqlx::query(&format!(
        "SELECT {AGENT_COLUMNS} FROM workspace_agents WHERE build_id = $1"
    ))
    .bind(&build_id)
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|r| texts(r, 6))
    .collect();
    Model {
        template_id: w.get(0),
        version_id: w.get(2),
        initiator_id: w.get(3),
        parameters: w.get(4),
        resources,
        agents,
    }
}

/// One workspace to seed: its owner, name and whether its latest build is a stop.
pub struct Planned {
    pub owner_id: String,
    pub name: String,
    pub stopped: bool,
}

/// Inserts `plan` as workspaces like `model`, each with one succeeded build.
pub async fn seed(pool: &AnyPool, model: &Model, plan: &[Planned]) {
    let now = hangar::model::now_ms();
    for chunk in plan.chunks(CHUNK) {
        let mut tx = pool.begin().await.unwrap();
        let mut jobs = Vec::new();
        let mut workspaces = Vec::new();
        let mut builds = Vec::new();
        let mut resources = Vec::new();
        let mut agents = Vec::new();
        for p in chunk {
            let (ws, build, job) = (new_id(), new_id(), new_id());
            let transition = if p.stopped { "stop" } else { "start" };
            jobs.push(vec![
                job.clone(),
                "workspace_build".into(),
                "succeeded".into(),
                format!("{{\"build_id\":\"{build}\"}}"),
            ]);
            workspaces.push(vec![
                ws.clone(),
                p.name.clone(),
                p.owner_id.clone(),
                model.template_id.clone(),
                build.clone(),
            ]);
            builds.push(vec![
                build.clone(),
                ws,
                transition.into(),
                model.version_id.clone(),
                job,
                model.initiator_id.clone(),
                model.parameters.clone(),
            ]);
            for r in &model.resources {
                let mut row = vec![new_id(), build.clone()];
                row.extend(r.iter().cloned());
                resources.push(row);
            }
            if !p.stopped {
                for a in &model.agents {
                    let mut row = vec![new_id(), build.clone(), new_id()];
                    row.extend(a.iter().cloned());
                    agents.push(row);
                }
            }
        }
        insert(
            &mut tx,
            "jobs (id, kind, status, input, created_at, updated_at, completed_at)",
            &jobs,
            3,
            now,
        )
        .await;
        insert(
            &mut tx,
            "workspaces (id, name, owner_id, template_id, latest_build_id, created_at)",
            &workspaces,
            1,
            now,
        )
        .await;
        insert(
            &mut tx,
            "workspace_builds (id, workspace_id, transition, template_version_id, job_id, initiator_id, parameters, number, created_at)",
            &builds,
            // `number` is 1 for every seeded build.
            usize::MAX,
            now,
        )
        .await;
        insert(
            &mut tx,
            &format!("workspace_resources (id, build_id, {RESOURCE_COLUMNS})"),
            &resources,
            0,
            now,
        )
        .await;
        insert(
            &mut tx,
            &format!("workspace_agents (id, build_id, token_hash, {AGENT_COLUMNS}, created_at)"),
            &agents,
            1,
            now,
        )
        .await;
        tx.commit().await.unwrap();
    }
}

/// One multi-row INSERT of text `rows`, each followed by `times` copies of `now`
/// (`usize::MAX`: the build's number 1, then `now`).
async fn insert(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    table: &str,
    rows: &[Vec<String>],
    times: usize,
    now: i64,
) {
    if rows.is_empty() {
        return;
    }
    let extra: Vec<i64> = if times == usize::MAX {
        vec![1, now]
    } else {
        vec![now; times]
    };
    let columns = rows[0].len() + extra.len();
    let sql = format!(
        "INSERT INTO {table} VALUES {}",
        placeholder_rows(rows.len(), columns)
    );
    let mut q = sqlx::query(&sql);
    for row in rows {
        for v in row {
            q = q.bind(v.as_str());
        }
        for t in &extra {
            q = q.bind(*t);
        }
    }
    q.execute(&mut **tx).await.unwrap();
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
