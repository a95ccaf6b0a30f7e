-- Per-organization counters of costly actions in fixed windows (outbound
-- calls per minute, numbers bought per day), shared by every server process.
CREATE TABLE usage_counters (
    organization_id UUID NOT NULL,
    kind TEXT NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    used INT NOT NULL,
    PRIMARY KEY (organization_id, kind, window_start)
);
