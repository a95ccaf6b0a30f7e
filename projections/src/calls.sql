-- Tables of the `calls` read model, created in the schema on the search path
-- (public when live, a side schema when rebuilt). `tables()` lists exactly these.
CREATE TABLE calls (
    id UUID PRIMARY KEY,
    organization_id UUID NOT NULL,
    vapi_call_id TEXT NULL,
    agent_id UUID NULL,
    phone_number_id UUID NULL,
    direction TEXT NULL,
    customer_number TEXT NULL,
    status TEXT NOT NULL,
    status_rank INT NOT NULL,
    ended_reason TEXT NULL,
    outcome TEXT NULL,
    started_at TIMESTAMPTZ NULL,
    ended_at TIMESTAMPTZ NULL,
    -- The event position of the end-of-call report shown.
    report_position BIGINT NULL,
    duration_seconds DOUBLE PRECISION NULL,
    cost DOUBLE PRECISION NULL,
    -- lz4: compressing transcripts with pglz cost more than writing the rest of the row.
    transcript TEXT COMPRESSION lz4 NULL,
    -- JSON kept as text: nothing queries inside it, and PostgreSQL would validate a `json` value on every write.
    messages TEXT COMPRESSION lz4 NOT NULL DEFAULT '[]',
    recording_url TEXT NULL,
    stereo_recording_url TEXT NULL,
    summary TEXT NULL,
    structured_data TEXT NULL,
    success_evaluation TEXT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX calls_newest_first ON calls (organization_id, created_at DESC, id DESC);
CREATE INDEX calls_by_customer ON calls (organization_id, customer_number);
CREATE INDEX calls_by_agent ON calls (organization_id, agent_id, created_at DESC);
-- Every Vapi message about a call we placed looks it up by its Vapi id.
CREATE INDEX calls_by_vapi_call ON calls (vapi_call_id) WHERE vapi_call_id IS NOT NULL;
CREATE TABLE call_timeline (
    call_id UUID NOT NULL,
    organization_id UUID NOT NULL,
    global_position BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    status TEXT NULL,
    at TIMESTAMPTZ NOT NULL,
    details TEXT NOT NULL,
    PRIMARY KEY (call_id, global_position)
);
CREATE TABLE organization_call_stats (
    organization_id UUID PRIMARY KEY,
    total_calls BIGINT NOT NULL,
    total_seconds DOUBLE PRECISION NOT NULL
);
