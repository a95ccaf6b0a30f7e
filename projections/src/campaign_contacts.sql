-- Tables of the `campaign_contacts` read model: every contact of every
-- campaign with its progress, for the contacts list and the runner's picks.
CREATE TABLE campaign_contacts (
    id UUID PRIMARY KEY,
    organization_id UUID NOT NULL,
    campaign_id UUID NOT NULL,
    phone TEXT NOT NULL,
    first_name TEXT NULL,
    last_name TEXT NULL,
    email TEXT NULL,
    company TEXT NULL,
    notes TEXT NULL,
    timezone TEXT NULL,
    custom_data JSONB NOT NULL,
    status TEXT NOT NULL,
    priority INT NOT NULL,
    attempt_count INT NOT NULL,
    last_attempt_at TIMESTAMPTZ NULL,
    next_attempt_at TIMESTAMPTZ NULL,
    last_result TEXT NULL,
    outcome TEXT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    ready_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX campaign_contacts_by_campaign ON campaign_contacts (campaign_id, id);
CREATE INDEX campaign_contacts_by_status ON campaign_contacts (campaign_id, status, id);
-- The runner's pace: dials of the last minute.
CREATE INDEX campaign_contacts_recent ON campaign_contacts (campaign_id, last_attempt_at) WHERE last_attempt_at IS NOT NULL;
-- "Next ready" for the runner: pending contacts in the order they became due
-- (a retry due now goes before a contact imported later), read as an index range.
CREATE INDEX campaign_contacts_ready ON campaign_contacts (campaign_id, ready_at, id) WHERE status = 'pending';
