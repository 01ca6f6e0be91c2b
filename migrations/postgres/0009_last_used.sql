-- When someone last used the workspace (a session or an app request; unix ms, at most
-- a minute behind): autostop will read it.
ALTER TABLE workspaces ADD COLUMN last_used_at BIGINT;
