-- Hangar's schema. TEXT ids, INTEGER unix-millisecond times, flags as INTEGER 0/1
-- (a SQLite BOOLEAN does not decode through sqlx::Any), BLOB for archives and state.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    email         TEXT NOT NULL UNIQUE,
    full_name     TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    suspended     INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

-- Session tokens and API tokens: only the SHA-256 of the secret is kept.
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id),
    name         TEXT NOT NULL,
    login_type   TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER
);
CREATE UNIQUE INDEX api_tokens_user_name ON api_tokens(user_id, name) WHERE login_type = 'token';

CREATE TABLE templates (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    description       TEXT NOT NULL DEFAULT '',
    active_version_id TEXT,
    created_by        TEXT NOT NULL REFERENCES users(id),
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);

CREATE TABLE jobs (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL,
    input        TEXT NOT NULL,
    worker_id    TEXT,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    updated_at   INTEGER NOT NULL,
    completed_at INTEGER,
    canceled_at  INTEGER,
    error        TEXT,
    error_code   TEXT,
    timings      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX jobs_pending ON jobs(status, created_at);

CREATE TABLE job_logs (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL REFERENCES jobs(id),
    at     INTEGER NOT NULL,
    stage  TEXT NOT NULL,
    level  TEXT NOT NULL,
    text   TEXT NOT NULL
);
CREATE INDEX job_logs_job ON job_logs(job_id, id);

CREATE TABLE template_versions (
    id                 TEXT PRIMARY KEY,
    template_id        TEXT NOT NULL REFERENCES templates(id),
    name               TEXT NOT NULL,
    message            TEXT NOT NULL DEFAULT '',
    archive            BLOB NOT NULL,
    created_by         TEXT NOT NULL REFERENCES users(id),
    created_at         INTEGER NOT NULL,
    job_id             TEXT REFERENCES jobs(id),
    parameters         TEXT NOT NULL DEFAULT '[]',
    resources          TEXT NOT NULL DEFAULT '[]',
    graph              TEXT,
    has_external_agent INTEGER NOT NULL DEFAULT 0,
    UNIQUE (template_id, name)
);

CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    owner_id    TEXT NOT NULL REFERENCES users(id),
    template_id TEXT NOT NULL REFERENCES templates(id),
    favorite    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    deleted     INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX workspaces_owner_name ON workspaces(owner_id, name) WHERE deleted = 0;

CREATE TABLE workspace_builds (
    id                  TEXT PRIMARY KEY,
    workspace_id        TEXT NOT NULL REFERENCES workspaces(id),
    number              INTEGER NOT NULL,
    transition          TEXT NOT NULL,
    template_version_id TEXT NOT NULL REFERENCES template_versions(id),
    job_id              TEXT NOT NULL REFERENCES jobs(id),
    initiator_id        TEXT NOT NULL REFERENCES users(id),
    parameters          TEXT NOT NULL DEFAULT '{}',
    state               BLOB,
    orphan              INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL,
    UNIQUE (workspace_id, number)
);

CREATE TABLE workspace_resources (
    id         TEXT PRIMARY KEY,
    build_id   TEXT NOT NULL REFERENCES workspace_builds(id),
    address    TEXT NOT NULL,
    type       TEXT NOT NULL,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    lifetime   TEXT NOT NULL,
    hide       INTEGER NOT NULL DEFAULT 0,
    icon       TEXT NOT NULL DEFAULT '',
    daily_cost INTEGER NOT NULL DEFAULT 0,
    metadata   TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX workspace_resources_build ON workspace_resources(build_id);

CREATE TABLE workspace_agents (
    id                 TEXT PRIMARY KEY,
    build_id           TEXT NOT NULL REFERENCES workspace_builds(id),
    name               TEXT NOT NULL,
    host_address       TEXT,
    external           INTEGER NOT NULL DEFAULT 0,
    os                 TEXT NOT NULL,
    arch               TEXT NOT NULL,
    token_hash         TEXT NOT NULL UNIQUE,
    manifest           TEXT NOT NULL DEFAULT '{}',
    lifecycle          TEXT NOT NULL DEFAULT 'created',
    version            TEXT NOT NULL DEFAULT '',
    hostname           TEXT NOT NULL DEFAULT '',
    first_connected_at INTEGER,
    last_connected_at  INTEGER,
    disconnected_at    INTEGER,
    created_at         INTEGER NOT NULL
);
CREATE INDEX workspace_agents_build ON workspace_agents(build_id);

CREATE TABLE agent_logs (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id TEXT NOT NULL REFERENCES workspace_agents(id),
    at       INTEGER NOT NULL,
    source   TEXT NOT NULL,
    level    TEXT NOT NULL,
    text     TEXT NOT NULL
);
CREATE INDEX agent_logs_agent ON agent_logs(agent_id, id);

CREATE TABLE agent_metadata (
    agent_id     TEXT NOT NULL REFERENCES workspace_agents(id),
    key          TEXT NOT NULL,
    value        TEXT NOT NULL DEFAULT '',
    error        TEXT NOT NULL DEFAULT '',
    collected_at INTEGER NOT NULL,
    PRIMARY KEY (agent_id, key)
);

CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    user_id TEXT,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT ''
);
