-- Link attempts in flight: the OAuth2 `state` (hashed) a callback must bring back, bound
-- to the user who started the attempt and its provider; one use, ten minutes.
CREATE TABLE external_auth_states (
    state_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider_id TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
