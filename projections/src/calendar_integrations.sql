-- Tables of the `calendar_integrations` read model. `tables()` lists exactly these.
CREATE TABLE calendar_integrations (
    id UUID PRIMARY KEY,
    organization_id UUID NOT NULL,
    provider TEXT NOT NULL,
    account TEXT NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT NULL,
    settings JSONB NOT NULL,
    connected_by UUID NOT NULL,
    connected_at TIMESTAMPTZ NOT NULL,
    disconnected BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX calendar_integrations_by_organization ON calendar_integrations (organization_id, connected_at);
