-- The agent's latest sample of CPU, memory and disk use (JSON; empty until one arrived).
-- The server keeps the recent history in memory and writes this at most twice a minute.
ALTER TABLE workspace_agents ADD COLUMN last_usage TEXT NOT NULL DEFAULT '';
