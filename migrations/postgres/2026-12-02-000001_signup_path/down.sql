DROP INDEX subscribers_confirmed_at_idx;
CREATE INDEX subscribers_confirmed_at_idx ON subscribers (confirmed_at);
DROP INDEX outbox_due_idx;
CREATE INDEX outbox_due_idx ON outbox (status, next_attempt_at);
ALTER TABLE outbox ADD CONSTRAINT outbox_subscriber_id_fkey
    FOREIGN KEY (subscriber_id) REFERENCES subscribers (id) ON DELETE CASCADE;
ALTER TABLE confirmation_tokens ADD CONSTRAINT confirmation_tokens_subscriber_id_fkey
    FOREIGN KEY (subscriber_id) REFERENCES subscribers (id) ON DELETE CASCADE;
ALTER TABLE consent_events ADD CONSTRAINT consent_events_subscriber_id_fkey
    FOREIGN KEY (subscriber_id) REFERENCES subscribers (id);
