-- Tables of the `ab_testing` read model, created in the schema on the search path
-- (public when live, a side schema when rebuilt). `tables()` lists exactly these.
CREATE TABLE ab_variants (
    id UUID PRIMARY KEY,
    organization_id UUID NOT NULL,
    agent_id UUID NOT NULL,
    spec JSONB NOT NULL,
    running_test_id UUID NULL,
    deleted BOOLEAN NOT NULL DEFAULT false,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX ab_variants_by_agent ON ab_variants (organization_id, agent_id, created_at);
CREATE TABLE ab_tests (
    id UUID PRIMARY KEY,
    organization_id UUID NOT NULL,
    agent_id UUID NOT NULL,
    settings JSONB NOT NULL,
    status TEXT NOT NULL,
    winner_id UUID NULL,
    decided_by TEXT NULL,
    looks_taken INT NOT NULL DEFAULT 0,
    started_at TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ NULL
);
CREATE INDEX ab_tests_by_agent ON ab_tests (organization_id, agent_id, started_at DESC);
CREATE TABLE ab_test_variants (
    test_id UUID NOT NULL,
    variant_id UUID NOT NULL,
    position INT NOT NULL,
    variant JSONB NOT NULL,
    calls BIGINT NOT NULL DEFAULT 0,
    finished BIGINT NOT NULL DEFAULT 0,
    qualified BIGINT NOT NULL DEFAULT 0,
    appointments BIGINT NOT NULL DEFAULT 0,
    sales BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (test_id, variant_id)
);
CREATE TABLE ab_assignments (
    call_id UUID PRIMARY KEY,
    organization_id UUID NOT NULL,
    test_id UUID NOT NULL,
    variant_id UUID NOT NULL,
    finished BOOLEAN NOT NULL DEFAULT false,
    outcome TEXT NULL,
    day DATE NOT NULL
);
CREATE TABLE ab_daily (
    test_id UUID NOT NULL,
    variant_id UUID NOT NULL,
    day DATE NOT NULL,
    calls BIGINT NOT NULL DEFAULT 0,
    conversions BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (test_id, variant_id, day)
);
