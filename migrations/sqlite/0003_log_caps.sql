-- Bytes of log text stored for an agent so far: the cap is checked against it on every
-- message without summing the agent's rows.
ALTER TABLE workspace_agents ADD COLUMN log_bytes BIGINT NOT NULL DEFAULT 0;
-- Builds are found by their job (authorization of job routes, log followers).
CREATE INDEX IF NOT EXISTS workspace_builds_job ON workspace_builds(job_id);
