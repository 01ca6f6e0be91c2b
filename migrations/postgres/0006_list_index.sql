-- The workspace list walks live workspaces by name (then owner) a page at a time.
CREATE INDEX workspaces_live_name ON workspaces(name, owner_id) WHERE deleted = 0;
