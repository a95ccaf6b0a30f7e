-- Tables of the `dnc` read model: each number an organization put on its
-- do-not-call list (rows stay, unlisted, after a removal).
CREATE TABLE dnc_numbers (
    id UUID PRIMARY KEY,
    organization_id UUID NOT NULL,
    phone TEXT NOT NULL,
    listed BOOLEAN NOT NULL,
    reason TEXT NULL,
    source TEXT NULL,
    added_at TIMESTAMPTZ NULL
);
CREATE UNIQUE INDEX dnc_numbers_by_phone ON dnc_numbers (organization_id, phone);
CREATE INDEX dnc_numbers_listed ON dnc_numbers (organization_id, added_at DESC, phone) WHERE listed;
