-- Tables of the `crm_contacts` read model. `tables()` lists exactly these.
CREATE TABLE crm_contacts (
    id UUID PRIMARY KEY,
    organization_id UUID NOT NULL,
    provider TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    properties JSONB NOT NULL,
    phone_e164 TEXT NULL,
    mobilephone_e164 TEXT NULL,
    deleted BOOLEAN NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX crm_contacts_by_phone ON crm_contacts (organization_id, phone_e164) WHERE NOT deleted;
CREATE INDEX crm_contacts_by_mobilephone ON crm_contacts (organization_id, mobilephone_e164) WHERE NOT deleted;
