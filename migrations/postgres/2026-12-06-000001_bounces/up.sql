-- Inbound bounces and complaints: every one is kept (kind, the status code
-- and diagnostic it gave, which email it was about, where it came in), and
-- the consent log learns the `complained` event. A bounce names its email
-- by digest (or none, for a confirmation) and reader, never by a delivery
-- row: those exist only for exceptions.
CREATE TABLE bounces (
    id BIGSERIAL PRIMARY KEY,
    subscriber_id TEXT NOT NULL,
    digest_id BIGINT,
    kind TEXT NOT NULL CHECK (kind IN ('hard', 'soft', 'complaint')),
    status_code TEXT,
    diagnostic TEXT,
    source TEXT NOT NULL CHECK (source IN ('smtp', 'pipe', 'webhook')),
    received_at TIMESTAMP NOT NULL
);
CREATE INDEX bounces_subscriber_idx ON bounces (subscriber_id, received_at);
CREATE INDEX bounces_digest_idx ON bounces (digest_id, kind) WHERE digest_id IS NOT NULL;
CREATE INDEX bounces_received_idx ON bounces (received_at);

ALTER TABLE consent_events DROP CONSTRAINT consent_events_event_check;
ALTER TABLE consent_events ADD CONSTRAINT consent_events_event_check
    CHECK (event IN ('requested', 'confirmed', 'unsubscribed', 'bounced', 'complained', 'imported', 'erased', 'preferences'));
