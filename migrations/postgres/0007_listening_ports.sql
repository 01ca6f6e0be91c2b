-- The TCP ports listening in the workspace, as its agent last reported them (JSON list).
ALTER TABLE workspace_agents ADD COLUMN listening_ports TEXT NOT NULL DEFAULT '[]';
