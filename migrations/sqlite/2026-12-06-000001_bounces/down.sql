DROP TABLE bounces;
CREATE TABLE consent_events_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscriber_id TEXT NOT NULL,
    event TEXT NOT NULL CHECK (event IN ('requested', 'confirmed', 'unsubscribed', 'bounced', 'imported', 'erased')),
    occurred_at TIMESTAMP NOT NULL,
    ip TEXT,
    user_agent TEXT,
    source TEXT,
    consent_text_version TEXT,
    method TEXT
);
INSERT INTO consent_events_new SELECT id, subscriber_id, event, occurred_at, ip, user_agent, source, consent_text_version, method FROM consent_events WHERE event NOT IN ('complained', 'preferences');
DROP TABLE consent_events;
ALTER TABLE consent_events_new RENAME TO consent_events;
CREATE INDEX consent_events_subscriber_idx ON consent_events (subscriber_id, id);
