-- Each claim of reactor work gets a token: only the holder of the current
-- lease renews or finishes it, so a worker whose lease ran out cannot undo
-- another's progress.
ALTER TABLE reactor_work ADD COLUMN lease_token UUID NULL;
-- The log position of the newest event that made the work due (NULL for work
-- not triggered by an event, such as scheduled summaries): reactors compare
-- it with their target's own history and with read models' checkpoints.
ALTER TABLE reactor_work ADD COLUMN trigger_transaction_id BIGINT NULL;
ALTER TABLE reactor_work ADD COLUMN trigger_position BIGINT NULL;
