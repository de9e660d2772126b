-- Same story as migrations/postgres: the bounces table, and the consent
-- log's event CHECK widened to `complained` (SQLite rebuilds the table to
-- change a CHECK; consent_events has no foreign keys either way).
CREATE TABLE bounces (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
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

CREATE TABLE consent_events_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscriber_id TEXT NOT NULL,
    event TEXT NOT NULL CHECK (event IN ('requested', 'confirmed', 'unsubscribed', 'bounced', 'complained', 'imported', 'erased', 'preferences')),
    occurred_at TIMESTAMP NOT NULL,
    ip TEXT,
    user_agent TEXT,
    source TEXT,
    consent_text_version TEXT,
    method TEXT
);
INSERT INTO consent_events_new SELECT id, subscriber_id, event, occurred_at, ip, user_agent, source, consent_text_version, method FROM consent_events;
DROP TABLE consent_events;
ALTER TABLE consent_events_new RENAME TO consent_events;
CREATE INDEX consent_events_subscriber_idx ON consent_events (subscriber_id, id);
