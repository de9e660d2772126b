-- Send safety: a digest can be paused (by an operator, or by the breaker
-- after repeated refusals of the sender or the content) and cancelled; the
-- reason is kept. A chunk's lease carries the id of the claim that holds it.
-- The digests table is rebuilt to widen its status CHECK (SQLite's
-- documented procedure: foreign keys off, copy, drop, rename, check).
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE digests_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    status TEXT NOT NULL CHECK (status IN ('draft', 'scheduled', 'sending', 'paused', 'cancelled', 'sent')),
    subject TEXT NOT NULL,
    body_text TEXT NOT NULL,
    body_html TEXT NOT NULL,
    article_count INTEGER NOT NULL,
    total INTEGER NOT NULL,
    idempotency_key TEXT UNIQUE,
    created_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    status_reason TEXT
);
INSERT INTO digests_new (id, status, subject, body_text, body_html, article_count, total, idempotency_key, created_at, finished_at)
SELECT id, status, subject, body_text, body_html, article_count, total, idempotency_key, created_at, finished_at FROM digests;
DROP TABLE digests;
ALTER TABLE digests_new RENAME TO digests;
ALTER TABLE delivery_chunks ADD COLUMN lease_id TEXT;
PRAGMA foreign_key_check;
COMMIT;
PRAGMA foreign_keys = ON;
