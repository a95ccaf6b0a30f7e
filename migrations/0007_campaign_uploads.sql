-- Contact files as uploaded, until (and after) their import: input staging,
-- not domain state (the import's events are the record). Scoped to an
-- organization and a campaign like everything else.
CREATE TABLE campaign_uploads (
    id UUID PRIMARY KEY,
    organization_id UUID NOT NULL,
    campaign_id UUID NOT NULL,
    content BYTEA NOT NULL,
    result JSONB NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX campaign_uploads_by_campaign ON campaign_uploads (organization_id, campaign_id, created_at);
