-- Tables of the `phone_numbers` read model, created in the schema on the search path
-- (public when live, a side schema when rebuilt). `tables()` lists exactly these.
CREATE TABLE credentials (
    id UUID PRIMARY KEY,
    organization_id UUID NOT NULL,
    provider TEXT NOT NULL,
    name TEXT NOT NULL,
    hint TEXT NOT NULL,
    registered_with_vapi BOOLEAN NOT NULL DEFAULT false,
    removed BOOLEAN NOT NULL DEFAULT false,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX credentials_by_organization ON credentials (organization_id, created_at);
CREATE TABLE phone_numbers (
    id UUID PRIMARY KEY,
    organization_id UUID NOT NULL,
    provider TEXT NOT NULL,
    name TEXT NULL,
    number TEXT NULL,
    area_code TEXT NULL,
    agent_id UUID NULL,
    credential_id UUID NULL,
    status TEXT NULL,
    revision INT NOT NULL,
    synced_revision INT NOT NULL DEFAULT 0,
    sync_failed BOOLEAN NOT NULL DEFAULT false,
    vapi_phone_number_id TEXT NULL,
    last_sync_error TEXT NULL,
    removed BOOLEAN NOT NULL DEFAULT false,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX phone_numbers_by_organization ON phone_numbers (organization_id, created_at);
-- Inbound Vapi messages find their number by its Vapi id.
CREATE INDEX phone_numbers_by_vapi_number ON phone_numbers (vapi_phone_number_id) WHERE vapi_phone_number_id IS NOT NULL;
