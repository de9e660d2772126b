-- Same story as migrations/postgres: readers' votes on articles, one row
-- per (article URL, source, voter); a second vote updates the row. `voter`
-- is the SHA-256 of a browser's id (site votes) or the reader's id
-- (digest votes). Keyed by URL, not article id: a site may collect votes
-- on a page under site_url before the article reaches Tidings.
CREATE TABLE feedback_votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    url TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('site', 'digest')),
    voter TEXT NOT NULL,
    vote TEXT NOT NULL CHECK (vote IN ('yes', 'no')),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX feedback_votes_voter_idx ON feedback_votes (url, source, voter);
CREATE INDEX feedback_votes_updated_idx ON feedback_votes (updated_at);
