-- What a news desk's digest shows of an article: its image, byline and
-- sections (a JSON array of names), and whether its date came from the
-- source (a feed item with no usable date gets the poll time and sorts
-- after the dated ones).
ALTER TABLE articles ADD COLUMN image_url TEXT;
ALTER TABLE articles ADD COLUMN author TEXT;
ALTER TABLE articles ADD COLUMN sections TEXT;
ALTER TABLE articles ADD COLUMN dated BOOLEAN NOT NULL DEFAULT TRUE;
