-- Fan-out without a row per reader. A digest no longer writes one delivery
-- row per reader when it is queued: it records its audience (the readers
-- confirmed by audience_at) and is cut into chunks (ranges of reader ids)
-- as workers get to them, from cut_from on (NULL: cut to the end). A chunk
-- reads its readers from subscribers at send time and keeps a cursor: the
-- last reader of its range whose send is settled, every one before it
-- settled too; passed once the whole range is. Delivery rows are left only
-- for exceptions: retrying, failed, skipped, and whatever went out after a
-- retry.
ALTER TABLE digests ADD COLUMN audience_at TIMESTAMP;
ALTER TABLE digests ADD COLUMN cut_from TEXT;
ALTER TABLE delivery_chunks ADD COLUMN cursor TEXT;
ALTER TABLE delivery_chunks ADD COLUMN passed BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE delivery_chunks ADD COLUMN settled_at TIMESTAMP;

-- Digests so far were cut whole at fan-out; a chunk that is done has
-- passed its whole range.
UPDATE digests SET audience_at = created_at;
UPDATE delivery_chunks SET passed = done, settled_at = due_at;

-- Deliveries that are not exceptions go: the sends of finished digests
-- (their chunks' ranges say who was sent) and the deliveries never tried
-- (the chunk reads them from subscribers again). Sends of a digest still
-- going stay, so no reader of a half-sent chunk is sent twice.
DELETE FROM deliveries WHERE status = 'sent'
  AND digest_id IN (SELECT id FROM digests WHERE status IN ('sent', 'cancelled'));
DELETE FROM deliveries WHERE status = 'queued' AND attempts = 0;
