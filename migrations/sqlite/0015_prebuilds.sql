-- Prebuilt workspaces (presets' `prebuilds`): owned by the system user `prebuilds`
-- (created with the first one) until a user claims one. A row here is what makes a
-- workspace a prebuild; a claim deletes it (atomically: two users never get one).
CREATE TABLE prebuilds (
    workspace_id        TEXT PRIMARY KEY REFERENCES workspaces(id),
    template_id         TEXT NOT NULL,
    template_version_id TEXT NOT NULL,
    preset              TEXT NOT NULL,
    created_at          INTEGER NOT NULL
);
CREATE INDEX prebuilds_by_preset ON prebuilds (template_id, preset);
-- How each preset's prebuilds fare: failures in a row (the next attempt backs off) and
-- the last error, for template admins.
CREATE TABLE prebuild_status (
    template_id     TEXT NOT NULL,
    preset          TEXT NOT NULL,
    failures        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT '',
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (template_id, preset)
);
-- A claim in progress: the prebuild's agents stay connected through the claim build.
CREATE TABLE prebuild_claims (
    workspace_id TEXT PRIMARY KEY,
    claimed_at   INTEGER NOT NULL
);
-- Agents of a claim build that still run with the prebuild's token: each is handed a
-- token of its own (over its connection, or when it next connects), and its row goes.
CREATE TABLE agent_token_rotations (
    agent_id TEXT PRIMARY KEY
);
