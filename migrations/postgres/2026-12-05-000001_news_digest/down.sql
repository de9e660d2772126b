ALTER TABLE articles DROP COLUMN digest_position;
ALTER TABLE digests DROP COLUMN scheduled_at;
ALTER TABLE digests DROP COLUMN custom_subject;
ALTER TABLE digests DROP COLUMN intro;
DROP TABLE consent_texts;
ALTER TABLE articles DROP COLUMN dated;
ALTER TABLE articles DROP COLUMN sections;
ALTER TABLE articles DROP COLUMN author;
ALTER TABLE articles DROP COLUMN image_url;
