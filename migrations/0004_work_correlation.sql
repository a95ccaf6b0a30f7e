-- The correlation id of the event that made reactor work due, so the events
-- the reactor records (and its log lines) continue the same story.
ALTER TABLE reactor_work ADD COLUMN correlation_id UUID NULL;
