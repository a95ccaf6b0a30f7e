-- Work reactors owe the outside world, enqueued by projections from the event
-- log (exactly once, with their checkpoint) and leased by workers.
CREATE TABLE reactor_work (
    reactor TEXT NOT NULL,
    work_key TEXT NOT NULL,
    organization_id UUID NOT NULL,
    due_at TIMESTAMPTZ NOT NULL,
    attempts INT NOT NULL DEFAULT 0,
    -- Bumped by every enqueue: finishing an older generation keeps newer work.
    generation BIGINT NOT NULL DEFAULT 1,
    leased_until TIMESTAMPTZ NULL,
    last_error TEXT NULL,
    PRIMARY KEY (reactor, work_key)
);
CREATE INDEX reactor_work_due ON reactor_work (reactor, due_at);
