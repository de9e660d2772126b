-- A signup writes a consent event, a confirmation token and an outbox row
-- for the reader it inserts in the same transaction. Their foreign keys to
-- subscribers checked that reader once per row (a lookup and a row lock
-- each, three per signup): the largest single cost in PostgreSQL's share of
-- a signup. Rows here are only ever written with the id of a reader the
-- same transaction inserted or read, and readers are never deleted (erasure
-- blanks them in place; privacy.rs deletes their tokens and outbox rows
-- itself), so the checks could not fail. deliveries dropped its keys for the
-- same reason.
ALTER TABLE consent_events DROP CONSTRAINT consent_events_subscriber_id_fkey;
ALTER TABLE confirmation_tokens DROP CONSTRAINT confirmation_tokens_subscriber_id_fkey;
ALTER TABLE outbox DROP CONSTRAINT outbox_subscriber_id_fkey;

-- Workers look only for queued rows and expired leases: sent and failed
-- rows (nearly all of them) stay out of the index, so marking a row sent
-- adds no entry to it.
DROP INDEX outbox_due_idx;
CREATE INDEX outbox_due_idx ON outbox (status, next_attempt_at) WHERE status IN ('queued', 'sending');

-- Only confirmed readers have a confirmation time (the dashboard's chart
-- asks for them): a pending signup adds no entry here.
DROP INDEX subscribers_confirmed_at_idx;
CREATE INDEX subscribers_confirmed_at_idx ON subscribers (confirmed_at) WHERE confirmed_at IS NOT NULL;
