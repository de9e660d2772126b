ALTER TABLE delivery_chunks DROP COLUMN lease_id;
ALTER TABLE digests DROP COLUMN status_reason;
UPDATE digests SET status = 'sent' WHERE status NOT IN ('sending', 'sent');
ALTER TABLE digests DROP CONSTRAINT digests_status_check;
ALTER TABLE digests ADD CONSTRAINT digests_status_check CHECK (status IN ('sending', 'sent'));
