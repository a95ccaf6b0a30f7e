-- lz4 instead of pglz for event payloads (end-of-call reports are several kB):
-- pglz compression was a visible share of the CPU the webhook path costs, and
-- lz4 also reads back faster for rebuilds. Applies to rows written from now on.
ALTER TABLE events ALTER COLUMN payload SET COMPRESSION lz4;
