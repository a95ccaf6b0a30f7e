-- Tables of the `agents` read model, created in the schema on the search path
-- (public when live, a side schema when rebuilt). `tables()` lists exactly these.
CREATE TABLE agents (
    id UUID PRIMARY KEY,
    organization_id UUID NOT NULL,
    spec JSONB NOT NULL,
    active BOOLEAN NOT NULL,
    deleted BOOLEAN NOT NULL DEFAULT false,
    revision INT NOT NULL,
    synced_revision INT NOT NULL DEFAULT 0,
    sync_failed BOOLEAN NOT NULL DEFAULT false,
    vapi_assistant_id TEXT NULL,
    last_sync_error TEXT NULL,
    next_sync_attempt_at TIMESTAMPTZ NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX agents_by_organization ON agents (organization_id, created_at, id);
CREATE INDEX agents_by_vapi_assistant ON agents (vapi_assistant_id) WHERE vapi_assistant_id IS NOT NULL;
