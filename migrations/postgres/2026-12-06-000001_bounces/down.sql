DROP TABLE bounces;
ALTER TABLE consent_events DROP CONSTRAINT consent_events_event_check;
ALTER TABLE consent_events ADD CONSTRAINT consent_events_event_check
    CHECK (event IN ('requested', 'confirmed', 'unsubscribed', 'bounced', 'imported', 'erased'));
