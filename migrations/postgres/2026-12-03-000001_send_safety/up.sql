-- Send safety: a digest can be paused (by an operator, or by the breaker
-- after repeated refusals of the sender or the content) and cancelled; the
-- reason is kept. A chunk's lease carries the id of the claim that holds
-- it, so a worker that lost its lease (it stalled past it) cannot settle or
-- renew over the claim of whoever took the chunk over.
ALTER TABLE digests DROP CONSTRAINT digests_status_check;
ALTER TABLE digests ADD CONSTRAINT digests_status_check
    CHECK (status IN ('draft', 'scheduled', 'sending', 'paused', 'cancelled', 'sent'));
ALTER TABLE digests ADD COLUMN status_reason TEXT;
ALTER TABLE delivery_chunks ADD COLUMN lease_id TEXT;
