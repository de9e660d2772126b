-- POST /api/digests counts the digest's audience before it answers. With
-- 10 million readers a scan of the subscribers' heap (1.7 GB) took 1.3 s;
-- this index holds just the columns of the audience rule (see
-- src/db/audience.rs) for confirmed readers, so the count is an index-only
-- scan of a fraction of that size. Pending, unsubscribed and bounced
-- readers are not in it: a signup writes nothing here until it is
-- confirmed.
CREATE INDEX subscribers_audience_idx ON subscribers (frequency, paused_until, frequency_at, choice_id)
    WHERE status = 'confirmed';
