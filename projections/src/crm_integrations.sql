-- Tables of the `crm_integrations` read model. `tables()` lists exactly these.
CREATE TABLE crm_integrations (
    id UUID PRIMARY KEY,
    organization_id UUID NOT NULL,
    provider TEXT NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT NULL,
    account_id TEXT NOT NULL,
    scopes JSONB NOT NULL,
    settings JSONB NULL,
    throttled_until TIMESTAMPTZ NULL,
    connected_at TIMESTAMPTZ NOT NULL,
    disconnected BOOLEAN NOT NULL DEFAULT false,
    last_sync_at TIMESTAMPTZ NULL,
    last_error TEXT NULL
);
CREATE INDEX crm_integrations_by_organization ON crm_integrations (organization_id, provider);
