-- Favorites belong to a user, not to a workspace: an owner who marks someone else's
-- workspace (owners see everyone's) must not change what its owner sees. Existing marks
-- become the workspace owner's.
CREATE TABLE workspace_favorites (
    user_id      TEXT NOT NULL REFERENCES users(id),
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (user_id, workspace_id)
);
INSERT INTO workspace_favorites (user_id, workspace_id, created_at)
    SELECT owner_id, id, created_at FROM workspaces WHERE favorite = 1;
ALTER TABLE workspaces DROP COLUMN favorite;
