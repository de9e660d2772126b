-- What a news desk's digest shows of an article: its image, byline and
-- sections (a JSON array of names), and whether its date came from the
-- source (a feed item with no usable date gets the poll time and sorts
-- after the dated ones).
ALTER TABLE articles ADD COLUMN image_url TEXT;
ALTER TABLE articles ADD COLUMN author TEXT;
ALTER TABLE articles ADD COLUMN sections TEXT;
ALTER TABLE articles ADD COLUMN dated BOOLEAN NOT NULL DEFAULT TRUE;

-- The full wording of every consent text version readers were shown, so
-- a reader's consent record can give the exact text they agreed to. The
-- built-in wording, recorded since the start as 2026-11-29.1, is the first.
CREATE TABLE consent_texts (
    version TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
INSERT INTO consent_texts (version, body, created_at) VALUES ('2026-11-29.1', 'Join our newsletter to receive updates on new articles and exclusive content. We respect your privacy and will never share your information.', CURRENT_TIMESTAMP);

-- Editorial control: a draft digest's intro, the subject an editor wrote
-- (NULL: the template's), when a scheduled digest goes out, and the order
-- an editor gave its articles (0: the default order).
ALTER TABLE digests ADD COLUMN intro TEXT;
ALTER TABLE digests ADD COLUMN custom_subject TEXT;
ALTER TABLE digests ADD COLUMN scheduled_at TIMESTAMP;
ALTER TABLE articles ADD COLUMN digest_position INTEGER NOT NULL DEFAULT 0;
