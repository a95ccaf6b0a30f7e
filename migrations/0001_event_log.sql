-- The event log: every event of every organization, in one table (DESIGN.md §3).
CREATE TABLE events (
    global_position BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id UUID NOT NULL,
    stream_id TEXT NOT NULL,
    stream_type TEXT NOT NULL,
    stream_version BIGINT NOT NULL CHECK (stream_version > 0),
    event_id UUID NOT NULL,
    event_type TEXT NOT NULL,
    event_version INT NOT NULL CHECK (event_version > 0),
    payload JSONB NOT NULL,
    metadata JSONB NOT NULL DEFAULT '{}'::jsonb,
    idempotency_key TEXT NULL,
    transaction_id XID8 NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Optimistic concurrency guard. Global, not per organization: some streams
    -- (e-mail claims) must be unique across tenants.
    CONSTRAINT events_stream_version_unique UNIQUE (stream_id, stream_version)
);

-- A repeated idempotency key appends nothing.
CREATE UNIQUE INDEX events_idempotency_key_unique
    ON events (organization_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Gap-safe global reads walk (transaction_id, global_position).
CREATE INDEX events_transaction_order ON events (transaction_id, global_position);

-- Per-tenant reads by stream type.
CREATE INDEX events_organization_stream_type ON events (organization_id, stream_type, global_position);

-- Events are facts: the application may never change or remove them.
CREATE FUNCTION events_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only';
END;
$$;

CREATE TRIGGER events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_immutable();

-- One row per projection: how far it has applied the log, updated in the same
-- transaction as its read-model tables.
CREATE TABLE projection_checkpoints (
    name TEXT PRIMARY KEY,
    transaction_id BIGINT NOT NULL DEFAULT 0,
    global_position BIGINT NOT NULL DEFAULT 0,
    schema_version INT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Failed sign-in attempts per key (e-mail digest or client address), shared by all server processes.
CREATE TABLE login_throttle (
    key TEXT PRIMARY KEY,
    failures INT NOT NULL,
    window_started_at TIMESTAMPTZ NOT NULL,
    locked_until TIMESTAMPTZ NULL
);

-- Mail handed to the default Mailer: an outbox a delivery worker or an operator drains.
CREATE TABLE email_outbox (
    id UUID PRIMARY KEY,
    organization_id UUID NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at TIMESTAMPTZ NULL
);
CREATE INDEX email_outbox_unsent ON email_outbox (created_at) WHERE sent_at IS NULL;
