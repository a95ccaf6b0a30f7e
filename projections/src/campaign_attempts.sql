-- Tables of the `campaign_attempts` read model: every call of every campaign
-- (SPEC's CampaignCall), keyed by our call id.
CREATE TABLE campaign_attempts (
    id UUID PRIMARY KEY,
    organization_id UUID NOT NULL,
    campaign_id UUID NOT NULL,
    contact_id UUID NOT NULL,
    phone TEXT NOT NULL,
    attempt_number INT NOT NULL,
    result TEXT NULL,
    outcome TEXT NULL,
    caller_number TEXT NOT NULL,
    dialed_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NULL
);
CREATE INDEX campaign_attempts_by_campaign ON campaign_attempts (campaign_id, id);
CREATE INDEX campaign_attempts_recent ON campaign_attempts (campaign_id, dialed_at);
-- Calls that never reported their end, for the runner's timeout.
CREATE INDEX campaign_attempts_unfinished ON campaign_attempts (dialed_at) WHERE result IS NULL;
