-- OAuth sign-ins in flight: a `state` handed to the browser, usable once, for
-- ten minutes. Only its SHA-256 is kept; the PKCE verifier is encrypted.
CREATE TABLE oauth_states (
    state_hash BYTEA PRIMARY KEY,
    organization_id UUID NOT NULL,
    user_id UUID NOT NULL,
    purpose TEXT NOT NULL,
    integration_id UUID NOT NULL,
    sealed_pkce_verifier TEXT NOT NULL,
    details JSONB NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX oauth_states_expiry ON oauth_states (expires_at);

-- Integrations' tokens, encrypted, outside the event log so that disconnecting
-- forgets them for good. A refresh locks the row, so one process refreshes at a
-- time and a rotated refresh token is never lost.
CREATE TABLE integration_tokens (
    organization_id UUID NOT NULL,
    owner TEXT NOT NULL,
    sealed_tokens TEXT NOT NULL,
    expires_at TIMESTAMPTZ NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, owner)
);
