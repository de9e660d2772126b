DROP INDEX deliveries_queued_idx;
