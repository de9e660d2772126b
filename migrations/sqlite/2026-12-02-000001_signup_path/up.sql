-- Same story as migrations/postgres: the three tables a signup writes lose
-- their foreign keys to subscribers (SQLite can only drop one by rebuilding
-- the table), and the outbox index keeps only rows workers look for.
CREATE TABLE confirmation_tokens_new (
    token_hash TEXT PRIMARY KEY,
    subscriber_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
INSERT INTO confirmation_tokens_new SELECT token_hash, subscriber_id, created_at, expires_at, used_at FROM confirmation_tokens;
DROP TABLE confirmation_tokens;
ALTER TABLE confirmation_tokens_new RENAME TO confirmation_tokens;
CREATE INDEX confirmation_tokens_subscriber_idx ON confirmation_tokens (subscriber_id);

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
INSERT INTO consent_events_new SELECT id, subscriber_id, event, occurred_at, ip, user_agent, source, consent_text_version, method FROM consent_events;
DROP TABLE consent_events;
ALTER TABLE consent_events_new RENAME TO consent_events;
CREATE INDEX consent_events_subscriber_idx ON consent_events (subscriber_id, id);

CREATE TABLE outbox_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    subscriber_id TEXT,
    recipient TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    locked_until TIMESTAMP,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP
);
INSERT INTO outbox_new SELECT id, kind, subscriber_id, recipient, payload, status, attempts, next_attempt_at, locked_until, last_error, created_at, sent_at FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_due_idx ON outbox (status, next_attempt_at) WHERE status IN ('queued', 'sending');

-- Only confirmed readers have a confirmation time (the dashboard's chart
-- asks for them): a pending signup adds no entry here.
DROP INDEX subscribers_confirmed_at_idx;
CREATE INDEX subscribers_confirmed_at_idx ON subscribers (confirmed_at) WHERE confirmed_at IS NOT NULL;
