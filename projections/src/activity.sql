-- Tables of the `activity` read model, created in the schema on the search path
-- (public when live, a side schema when rebuilt). `tables()` lists exactly these.
CREATE TABLE organization_activity (
    organization_id UUID NOT NULL,
    day DATE NOT NULL,
    event_type TEXT NOT NULL,
    events BIGINT NOT NULL,
    PRIMARY KEY (organization_id, day, event_type)
);
