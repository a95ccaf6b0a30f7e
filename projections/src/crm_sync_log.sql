-- Tables of the `crm_sync_log` read model. `tables()` lists exactly these.
CREATE TABLE crm_sync_log (
    id UUID PRIMARY KEY,
    organization_id UUID NOT NULL,
    provider TEXT NOT NULL,
    call_id UUID NOT NULL,
    action TEXT NOT NULL,
    status TEXT NOT NULL,
    external_id TEXT NULL,
    error TEXT NULL,
    retry_at TIMESTAMPTZ NULL,
    at TIMESTAMPTZ NOT NULL
);
CREATE INDEX crm_sync_log_newest ON crm_sync_log (organization_id, at DESC, id DESC);
CREATE INDEX crm_sync_log_by_call ON crm_sync_log (organization_id, call_id, at DESC);
