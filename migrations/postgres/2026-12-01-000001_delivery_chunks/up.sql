-- Deliveries are keyed by (digest, reader) and nothing else: one index to
-- maintain per row instead of five, and no foreign-key check per row (rows
-- are only ever made by the fan-out, from the digest and the readers it
-- reads in the same statement; readers are never deleted, only erased in
-- place). Fanning out a million readers spent most of its time on those.
--
-- Workers no longer claim rows one by one through status indexes: they lease
-- chunks of a digest's readers (ranges of reader ids, cut at fan-out), so a
-- delivery row is written twice in its life (queued, then settled).
CREATE TABLE deliveries_by_reader (
    digest_id BIGINT NOT NULL,
    subscriber_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'failed', 'skipped')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    last_error TEXT,
    sent_at TIMESTAMP,
    CONSTRAINT deliveries_by_reader_pkey PRIMARY KEY (digest_id, subscriber_id)
);
INSERT INTO deliveries_by_reader
SELECT digest_id, subscriber_id, CASE WHEN status = 'sending' THEN 'queued' ELSE status END,
       attempts, next_attempt_at, last_error, sent_at
FROM deliveries ORDER BY digest_id, subscriber_id;
DROP TABLE deliveries;
ALTER TABLE deliveries_by_reader RENAME TO deliveries;
ALTER INDEX deliveries_by_reader_pkey RENAME TO deliveries_pkey;

-- A chunk: the readers of a digest from first_subscriber up to (not
-- including) next_subscriber, or to the end when that is NULL. due_at is when
-- it may be claimed next: now for a new chunk, the lease's end while a worker
-- has it, the earliest retry when some of its sends wait for one. size is its
-- number of deliveries; sent, failed and skipped are counted each time a
-- worker settles it, so a digest's progress is a sum over its chunks.
CREATE TABLE delivery_chunks (
    id BIGSERIAL PRIMARY KEY,
    digest_id BIGINT NOT NULL REFERENCES digests (id),
    first_subscriber TEXT NOT NULL,
    next_subscriber TEXT,
    size INTEGER NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    done BOOLEAN NOT NULL DEFAULT FALSE,
    due_at TIMESTAMP NOT NULL
);
CREATE INDEX delivery_chunks_open_idx ON delivery_chunks (due_at, id) WHERE NOT done;
CREATE INDEX delivery_chunks_digest_idx ON delivery_chunks (digest_id);

-- Every digest so far: one chunk over all its readers, done unless the
-- digest is still sending.
INSERT INTO delivery_chunks (digest_id, first_subscriber, next_subscriber, size, sent, failed, skipped, done, due_at)
SELECT g.id, '', NULL,
       (SELECT COUNT(*) FROM deliveries d WHERE d.digest_id = g.id),
       (SELECT COUNT(*) FROM deliveries d WHERE d.digest_id = g.id AND d.status = 'sent'),
       (SELECT COUNT(*) FROM deliveries d WHERE d.digest_id = g.id AND d.status = 'failed'),
       (SELECT COUNT(*) FROM deliveries d WHERE d.digest_id = g.id AND d.status = 'skipped'),
       g.status <> 'sending', g.created_at
FROM digests g;
