-- Tables of the `appointments` read model. `tables()` lists exactly these.
CREATE TABLE appointments (
    id UUID PRIMARY KEY,
    organization_id UUID NOT NULL,
    integration_id UUID NOT NULL,
    agent_id UUID NULL,
    call_id UUID NULL,
    status TEXT NOT NULL,
    title TEXT NOT NULL,
    attendee_name TEXT NOT NULL,
    attendee_email TEXT NULL,
    attendee_phone TEXT NULL,
    start_at TIMESTAMPTZ NOT NULL,
    end_at TIMESTAMPTZ NOT NULL,
    meeting_link TEXT NULL,
    provider_event_id TEXT NULL,
    rescheduled_from UUID NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX appointments_by_organization ON appointments (organization_id, start_at);
CREATE INDEX appointments_by_agent ON appointments (organization_id, agent_id, start_at);
