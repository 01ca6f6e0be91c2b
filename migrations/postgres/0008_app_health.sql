-- Each app's health by slug, as its agent's healthcheck last found it (JSON object).
ALTER TABLE workspace_agents ADD COLUMN app_health TEXT NOT NULL DEFAULT '{}';
