-- The reader's own page (GET/POST /preferences): a pause that ends by
-- itself, every digest or at most one a week (since `frequency_at`, when
-- it was chosen), and a choice of sections. A choice is a row of its own
-- (`section_choices`, a JSON array of names, sorted) so the fan-out
-- renders a digest once per distinct choice, never per reader.
ALTER TABLE subscribers ADD COLUMN paused_until TIMESTAMP;
ALTER TABLE subscribers ADD COLUMN frequency TEXT NOT NULL DEFAULT 'every' CHECK (frequency IN ('every', 'weekly'));
ALTER TABLE subscribers ADD COLUMN frequency_at TIMESTAMP;
ALTER TABLE subscribers ADD COLUMN choice_id BIGINT;

CREATE TABLE section_choices (
    id BIGSERIAL PRIMARY KEY,
    sections TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL
);

-- A weekly digest (no other weekly one in the week before it) goes to the
-- weekly readers who chose that at or before `weekly_before`.
ALTER TABLE digests ADD COLUMN weekly_before TIMESTAMP;

-- The digest as each section choice that matches some of its articles
-- gets it (NULL bodies: every article matched, the digest's own bodies).
-- A choice with no row here matches nothing: its readers get nothing.
CREATE TABLE digest_editions (
    digest_id BIGINT NOT NULL,
    choice_id BIGINT NOT NULL,
    subject TEXT,
    body_text TEXT,
    body_html TEXT,
    PRIMARY KEY (digest_id, choice_id)
);

-- An address change waits for its confirmation: the token row carries
-- the new address until it is confirmed (NULL: a signup's confirmation).
ALTER TABLE confirmation_tokens ADD COLUMN new_email TEXT;
