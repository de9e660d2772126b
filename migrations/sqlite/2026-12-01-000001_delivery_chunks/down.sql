DROP TABLE delivery_chunks;
CREATE TABLE deliveries_with_id (
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
INSERT INTO deliveries_with_id (digest_id, subscriber_id, status, attempts, next_attempt_at, last_error, sent_at)
SELECT digest_id, subscriber_id, status, attempts, next_attempt_at, last_error, sent_at
FROM deliveries ORDER BY digest_id, subscriber_id;
DROP TABLE deliveries;
ALTER TABLE deliveries_with_id RENAME TO deliveries;
CREATE INDEX deliveries_due_idx ON deliveries (status, next_attempt_at) WHERE status IN ('queued', 'sending');
CREATE INDEX deliveries_subscriber_idx ON deliveries (subscriber_id);
CREATE INDEX deliveries_queued_idx ON deliveries (id) WHERE status = 'queued';
