-- Hangar's schema (PostgreSQL twin of migrations/sqlite): TEXT ids, BIGINT unix-millisecond times,
-- flags as BIGINT 0/1 so both backends decode alike through sqlx::Any, BYTEA for archives and state.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    email         TEXT NOT NULL UNIQUE,
    full_name     TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    suspended     BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL
);

-- Session tokens and API tokens: only the SHA-256 of the secret is kept.
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id),
    name         TEXT NOT NULL,
    login_type   TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT
);
CREATE UNIQUE INDEX api_tokens_user_name ON api_tokens(user_id, name) WHERE login_type = 'token';

CREATE TABLE templates (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    description       TEXT NOT NULL DEFAULT '',
    active_version_id TEXT,
    created_by        TEXT NOT NULL REFERENCES users(id),
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);

CREATE TABLE jobs (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL,
    input        TEXT NOT NULL,
    worker_id    TEXT,
    created_at   BIGINT NOT NULL,
    started_at   BIGINT,
    updated_at   BIGINT NOT NULL,
    completed_at BIGINT,
    canceled_at  BIGINT,
    error        TEXT,
    error_code   TEXT,
    timings      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX jobs_pending ON jobs(status, created_at);

CREATE TABLE job_logs (
    id     BIGSERIAL PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs(id),
    at     BIGINT NOT NULL,
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
    archive            BYTEA NOT NULL,
    created_by         TEXT NOT NULL REFERENCES users(id),
    created_at         BIGINT NOT NULL,
    job_id             TEXT REFERENCES jobs(id),
    parameters         TEXT NOT NULL DEFAULT '[]',
    resources          TEXT NOT NULL DEFAULT '[]',
    graph              TEXT,
    has_external_agent BIGINT NOT NULL DEFAULT 0,
    UNIQUE (template_id, name)
);

CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    owner_id    TEXT NOT NULL REFERENCES users(id),
    template_id TEXT NOT NULL REFERENCES templates(id),
    favorite    BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    deleted     BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX workspaces_owner_name ON workspaces(owner_id, name) WHERE deleted = 0;

CREATE TABLE workspace_builds (
    id                  TEXT PRIMARY KEY,
    workspace_id        TEXT NOT NULL REFERENCES workspaces(id),
    number              BIGINT NOT NULL,
    transition          TEXT NOT NULL,
    template_version_id TEXT NOT NULL REFERENCES template_versions(id),
    job_id              TEXT NOT NULL REFERENCES jobs(id),
    initiator_id        TEXT NOT NULL REFERENCES users(id),
    parameters          TEXT NOT NULL DEFAULT '{}',
    state               BYTEA,
    orphan              BIGINT NOT NULL DEFAULT 0,
    created_at          BIGINT NOT NULL,
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
    hide       BIGINT NOT NULL DEFAULT 0,
    icon       TEXT NOT NULL DEFAULT '',
    daily_cost BIGINT NOT NULL DEFAULT 0,
    metadata   TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX workspace_resources_build ON workspace_resources(build_id);

CREATE TABLE workspace_agents (
    id                 TEXT PRIMARY KEY,
    build_id           TEXT NOT NULL REFERENCES workspace_builds(id),
    name               TEXT NOT NULL,
    host_address       TEXT,
    external           BIGINT NOT NULL DEFAULT 0,
    os                 TEXT NOT NULL,
    arch               TEXT NOT NULL,
    token_hash         TEXT NOT NULL UNIQUE,
    manifest           TEXT NOT NULL DEFAULT '{}',
    lifecycle          TEXT NOT NULL DEFAULT 'created',
    version            TEXT NOT NULL DEFAULT '',
    hostname           TEXT NOT NULL DEFAULT '',
    first_connected_at BIGINT,
    last_connected_at  BIGINT,
    disconnected_at    BIGINT,
    created_at         BIGINT NOT NULL
);
CREATE INDEX workspace_agents_build ON workspace_agents(build_id);

CREATE TABLE agent_logs (
    id       BIGSERIAL PRIMARY KEY,
    agent_id TEXT NOT NULL REFERENCES workspace_agents(id),
    at       BIGINT NOT NULL,
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
    collected_at BIGINT NOT NULL,
    PRIMARY KEY (agent_id, key)
);

CREATE TABLE audit_log (
    id      BIGSERIAL PRIMARY KEY,
    at      BIGINT NOT NULL,
    user_id TEXT,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT ''
);
