-- Claims take the lowest queued ids. Walking this index in id order stops
-- after one batch; the (status, next_attempt_at) index made every claim read
-- and sort all queued rows of a digest (quadratic over a million readers).
CREATE INDEX deliveries_queued_idx ON deliveries (id) WHERE status = 'queued';
