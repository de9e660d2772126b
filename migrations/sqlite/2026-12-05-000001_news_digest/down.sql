DROP TABLE consent_texts;
ALTER TABLE articles DROP COLUMN dated;
ALTER TABLE articles DROP COLUMN sections;
ALTER TABLE articles DROP COLUMN author;
ALTER TABLE articles DROP COLUMN image_url;
