-- Tables of the `slack_integrations` read model, created in the schema on the search path
-- (public when live, a side schema when rebuilt). `tables()` lists exactly these.
CREATE TABLE slack_integrations (
    id UUID PRIMARY KEY,
    organization_id UUID NOT NULL,
    workspace_name TEXT NOT NULL,
    channel TEXT NOT NULL,
    webhook_hint TEXT NOT NULL,
    preferences JSONB NOT NULL,
    broken_reason TEXT NULL,
    disconnected BOOLEAN NOT NULL DEFAULT false,
    notifications_sent BIGINT NOT NULL DEFAULT 0,
    last_error TEXT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    connected_transaction_id BIGINT NOT NULL,
    connected_position BIGINT NOT NULL
);
CREATE INDEX slack_integrations_by_organization ON slack_integrations (organization_id, created_at);
