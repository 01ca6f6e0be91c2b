-- Users' linked external auth accounts (OAuth2): the tokens builds and workspaces get.
-- The tokens are usable secrets (they are handed to builds), so they are stored as given;
-- they never leave the server except to the owner's own builds and workspaces.
CREATE TABLE external_auth_links (
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider_id   TEXT NOT NULL,
    access_token  TEXT NOT NULL,
    refresh_token TEXT,
    expires_at    BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (user_id, provider_id)
);
