ALTER TABLE confirmation_tokens DROP COLUMN new_email;
DROP TABLE digest_editions;
ALTER TABLE digests DROP COLUMN weekly_before;
DROP TABLE section_choices;
ALTER TABLE subscribers DROP COLUMN choice_id;
ALTER TABLE subscribers DROP COLUMN frequency_at;
ALTER TABLE subscribers DROP COLUMN frequency;
ALTER TABLE subscribers DROP COLUMN paused_until;
