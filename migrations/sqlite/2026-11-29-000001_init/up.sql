-- Tidings schema (SQLite). migrations/postgres tells the same story.

CREATE TABLE app_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE subscribers (
    id TEXT PRIMARY KEY,
    -- normalised address (trimmed, domain lower-cased); NULL once erased
    email TEXT,
    -- lower-cased address: uniqueness is case-insensitive
    email_key TEXT UNIQUE,
    name TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'unsubscribed', 'bounced', 'erased')),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    confirmed_at TIMESTAMP,
    last_confirmation_at TIMESTAMP
);
CREATE INDEX subscribers_status_idx ON subscribers (status, created_at);
CREATE INDEX subscribers_confirmed_at_idx ON subscribers (confirmed_at);

CREATE TABLE confirmation_tokens (
    token_hash TEXT PRIMARY KEY,
    subscriber_id TEXT NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX confirmation_tokens_subscriber_idx ON confirmation_tokens (subscriber_id);

-- Append-only: nothing updates or deletes rows here except erasure, which
-- blanks the personal columns and keeps the events.
CREATE TABLE consent_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscriber_id TEXT NOT NULL REFERENCES subscribers (id),
    event TEXT NOT NULL CHECK (event IN ('requested', 'confirmed', 'unsubscribed', 'bounced', 'imported', 'erased')),
    occurred_at TIMESTAMP NOT NULL,
    ip TEXT,
    user_agent TEXT,
    source TEXT,
    consent_text_version TEXT,
    method TEXT
);
CREATE INDEX consent_events_subscriber_idx ON consent_events (subscriber_id, id);

-- Transactional outbox for single emails (confirmation links).
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    subscriber_id TEXT REFERENCES subscribers (id) ON DELETE CASCADE,
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
CREATE INDEX outbox_due_idx ON outbox (status, next_attempt_at);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP
);

CREATE TABLE digests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    status TEXT NOT NULL CHECK (status IN ('sending', 'sent')),
    subject TEXT NOT NULL,
    body_text TEXT NOT NULL,
    body_html TEXT NOT NULL,
    article_count INTEGER NOT NULL,
    total INTEGER NOT NULL,
    idempotency_key TEXT UNIQUE,
    created_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP
);

CREATE TABLE articles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    url TEXT NOT NULL UNIQUE,
    guid TEXT UNIQUE,
    title TEXT NOT NULL,
    summary TEXT,
    published_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    digest_id INTEGER REFERENCES digests (id)
);
CREATE INDEX articles_published_idx ON articles (published_at);
CREATE INDEX articles_undigested_idx ON articles (digest_id, published_at);

-- One row per (digest, reader): the unique key makes a repeat a no-op.
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    digest_id INTEGER NOT NULL REFERENCES digests (id),
    subscriber_id TEXT NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    status TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'skipped')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    locked_until TIMESTAMP,
    last_error TEXT,
    sent_at TIMESTAMP,
    UNIQUE (digest_id, subscriber_id)
);
CREATE INDEX deliveries_due_idx ON deliveries (status, next_attempt_at) WHERE status IN ('queued', 'sending');
CREATE INDEX deliveries_subscriber_idx ON deliveries (subscriber_id);

-- One scheduler leader per (job, tick) across instances.
CREATE TABLE job_runs (
    job TEXT NOT NULL,
    tick TEXT NOT NULL,
    started_at TIMESTAMP NOT NULL,
    PRIMARY KEY (job, tick)
);

CREATE TABLE feed_state (
    feed_url TEXT PRIMARY KEY,
    etag TEXT,
    last_modified TEXT,
    last_polled_at TIMESTAMP
);

CREATE TABLE admins (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE admin_sessions (
    id_hash TEXT PRIMARY KEY,
    admin_id INTEGER NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);

-- Keyed hashes (HMAC with secret_key) of erased addresses: never mailed again.
CREATE TABLE suppressions (
    email_hash TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
