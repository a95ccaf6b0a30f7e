-- Mail bodies carry reset and invitation links: kept encrypted (`sealed_body`)
-- until sent, then erased. Delivery is leased and retried like reactor work.
ALTER TABLE email_outbox ALTER COLUMN body DROP NOT NULL;
ALTER TABLE email_outbox ADD COLUMN sealed_body TEXT NULL;
ALTER TABLE email_outbox ADD COLUMN attempts INT NOT NULL DEFAULT 0;
ALTER TABLE email_outbox ADD COLUMN next_attempt_at TIMESTAMPTZ NULL;
ALTER TABLE email_outbox ADD COLUMN leased_until TIMESTAMPTZ NULL;
ALTER TABLE email_outbox ADD COLUMN last_error TEXT NULL;
