ALTER TABLE delivery_chunks DROP COLUMN lease_id;
UPDATE digests SET status = 'sent' WHERE status NOT IN ('sending', 'sent');
ALTER TABLE digests DROP COLUMN status_reason;
