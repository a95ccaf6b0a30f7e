-- Tables of the `campaigns` read model, created in the schema on the search path
-- (public when live, a side schema when rebuilt). `tables()` lists exactly these.
CREATE TABLE campaigns (
    id UUID PRIMARY KEY,
    organization_id UUID NOT NULL,
    settings JSONB NOT NULL,
    status TEXT NOT NULL,
    archived BOOLEAN NOT NULL DEFAULT false,
    total_contacts BIGINT NOT NULL DEFAULT 0,
    calls_made BIGINT NOT NULL DEFAULT 0,
    calls_connected BIGINT NOT NULL DEFAULT 0,
    calls_successful BIGINT NOT NULL DEFAULT 0,
    pending_contacts BIGINT NOT NULL DEFAULT 0,
    calling_contacts BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX campaigns_running ON campaigns (status) WHERE NOT archived;
CREATE INDEX campaigns_by_organization ON campaigns (organization_id, created_at DESC, id DESC) WHERE NOT archived;
