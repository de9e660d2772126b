-- The delivery rows this migration removed cannot be made again; going
-- down leaves the exceptions only.
ALTER TABLE delivery_chunks DROP COLUMN settled_at;
ALTER TABLE delivery_chunks DROP COLUMN passed;
ALTER TABLE delivery_chunks DROP COLUMN cursor;
ALTER TABLE digests DROP COLUMN cut_from;
ALTER TABLE digests DROP COLUMN audience_at;
