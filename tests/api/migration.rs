//! The reader-ranges migration moves a database written by the per-reader
//! design: it is brought up to the migration before, filled the old way
//! (a row per reader, one sent digest and one half-sent), then started.

use std::time::Duration;

use diesel::Connection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};
use serde_json::Value;

use crate::helpers::{base_settings, start, wait_until, TestDb};
use crate::support::smtp::MailSink;

/// The last migration of the per-reader design.
const BEFORE: &str = "2026-12-03-000001";

fn up_to_before_pg(url: &str) {
    let mut c = diesel::PgConnection::establish(url).unwrap();
    up_to_before(&mut c, || tidings::db::PG_MIGRATIONS);
}

fn up_to_before_sqlite(url: &str) {
    let mut c = diesel::SqliteConnection::establish(url.trim_start_matches("sqlite://")).unwrap();
    up_to_before(&mut c, || tidings::db::SQLITE_MIGRATIONS);
}

fn up_to_before<DB: diesel::backend::Backend>(
    c: &mut impl MigrationHarness<DB>,
    all: impl Fn() -> EmbeddedMigrations,
) {
    loop {
        let pending = c.pending_migrations(all()).unwrap();
        let Some(next) = pending.first() else { break };
        let name = next.name().to_string();
        if name.as_str() > BEFORE && !name.starts_with(BEFORE) {
            break;
        }
        c.run_next_migration(all()).unwrap();
    }
}

const OLD_DATA: &str = "
INSERT INTO subscribers (id, email, email_key, name, status, created_at, updated_at, confirmed_at) VALUES
 ('01900000-0000-7000-8000-00000000000a', 'ann@example.com', 'ann@example.com', NULL, 'confirmed', '2026-11-01 08:00:00', '2026-11-01 08:00:00', '2026-11-01 08:00:00'),
 ('01900000-0000-7000-8000-00000000000b', 'bob@example.com', 'bob@example.com', NULL, 'confirmed', '2026-11-01 08:00:00', '2026-11-01 08:00:00', '2026-11-01 08:00:00'),
 ('01900000-0000-7000-8000-00000000000c', 'cat@example.com', 'cat@example.com', NULL, 'confirmed', '2026-11-01 08:00:00', '2026-11-01 08:00:00', '2026-11-01 08:00:00');
INSERT INTO consent_events (subscriber_id, event, occurred_at) VALUES
 ('01900000-0000-7000-8000-00000000000a', 'confirmed', '2026-11-01 08:00:00'),
 ('01900000-0000-7000-8000-00000000000b', 'confirmed', '2026-11-01 08:00:00'),
 ('01900000-0000-7000-8000-00000000000c', 'confirmed', '2026-11-01 08:00:00');
INSERT INTO digests (id, status, subject, body_text, body_html, article_count, total, created_at, finished_at) VALUES
 (1, 'sent', 'Old news', 'old', '<p>old</p>', 1, 3, '2026-11-23 08:00:00', '2026-11-23 08:01:00'),
 (2, 'sending', 'Half sent', 'half', '<p>half</p>', 1, 3, '2026-11-30 08:00:00', NULL);
INSERT INTO delivery_chunks (digest_id, first_subscriber, next_subscriber, size, sent, failed, skipped, done, due_at) VALUES
 (1, '', NULL, 3, 3, 0, 0, TRUE, '2026-11-23 08:01:00'),
 (2, '', NULL, 3, 1, 0, 0, FALSE, '2026-11-30 08:00:00');
INSERT INTO deliveries (digest_id, subscriber_id, status, attempts, next_attempt_at, sent_at) VALUES
 (1, '01900000-0000-7000-8000-00000000000a', 'sent', 1, '2026-11-23 08:00:00', '2026-11-23 08:00:30'),
 (1, '01900000-0000-7000-8000-00000000000b', 'sent', 1, '2026-11-23 08:00:00', '2026-11-23 08:00:30'),
 (1, '01900000-0000-7000-8000-00000000000c', 'sent', 1, '2026-11-23 08:00:00', '2026-11-23 08:00:30'),
 (2, '01900000-0000-7000-8000-00000000000a', 'sent', 1, '2026-11-30 08:00:00', '2026-11-30 08:00:30'),
 (2, '01900000-0000-7000-8000-00000000000b', 'queued', 0, '2026-11-30 08:00:00', NULL),
 (2, '01900000-0000-7000-8000-00000000000c', 'queued', 1, '2026-11-30 08:05:00', NULL);
";

async fn get_json(app: &crate::helpers::TestApp, token: &str, path: &str) -> Value {
    app.api_get(token, path).await.json().await.unwrap()
}

#[tokio::test]
async fn the_reader_ranges_migration_keeps_every_send_and_drops_the_rest() {
    let db = TestDb::new();
    if db.is_postgres() {
        up_to_before_pg(&db.url);
    } else {
        up_to_before_sqlite(&db.url);
    }
    db.execute(OLD_DATA);
    if db.is_postgres() {
        db.execute("SELECT setval('digests_id_seq', 2)");
    }
    let sink = MailSink::start().await;
    let settings = base_settings(&db, &sink);
    let app = start(db, sink, settings).await;
    let token = app.api_token().await;

    // The half-sent digest goes on: bob (never tried) and cat (a retry)
    // get it, ann (sent before the migration) does not get it again.
    wait_until(Duration::from_secs(20), || async {
        let d: Value = get_json(&app, &token, "/api/digests/2").await;
        d["status"] == "sent"
    })
    .await;
    for (reader, n) in [
        ("ann@example.com", 0),
        ("bob@example.com", 1),
        ("cat@example.com", 1),
    ] {
        assert_eq!(app.sink.messages_to(reader).len(), n, "{reader}");
    }
    let d: Value = get_json(&app, &token, "/api/digests/2").await;
    assert_eq!(
        (d["total"].as_i64(), d["sent"].as_i64()),
        (Some(3), Some(3)),
        "{d}"
    );

    // The sent digest's rows are gone; what it did is still known.
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM deliveries WHERE digest_id = 1"),
        0
    );
    let old: Value = get_json(&app, &token, "/api/digests/1").await;
    assert_eq!(
        (old["total"].as_i64(), old["sent"].as_i64()),
        (Some(3), Some(3)),
        "{old}"
    );
    let export: Value = get_json(
        &app,
        &token,
        "/api/subscribers/01900000-0000-7000-8000-00000000000a/export",
    )
    .await;
    let digests: Vec<(i64, String)> = export["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["digest_id"].as_i64().unwrap(),
                d["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        digests,
        vec![(1, "sent".into()), (2, "sent".into())],
        "{export}"
    );
}
