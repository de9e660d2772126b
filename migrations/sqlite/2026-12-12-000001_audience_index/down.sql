DROP INDEX subscribers_audience_idx;
