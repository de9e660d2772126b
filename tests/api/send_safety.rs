//! The send engine never hurts the list: refusals judged by the command
//! that failed, the breaker that pauses a digest, pause/resume/cancel,
//! lease renewal under a slow relay, and kill -9 in the middle of a digest
//! (the real binary as a child process).

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::digests::{add_article, digest_status, seed_confirmed, wait_digest_sent};
use crate::helpers::{spawn_app_with, tidings, wait_until, TestApp, TestDb};
use crate::support::smtp::{Command, MailSink};

/// Queues a digest of one new article; returns its id.
async fn queue_digest(app: &TestApp, token: &str, url: &str) -> i64 {
    add_article(app, token, url, "Breaking news").await;
    let res = app.api_post(token, "/api/digests", &json!({})).await;
    assert_eq!(res.status().as_u16(), 201);
    res.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap()
}

async fn wait_status(app: &TestApp, token: &str, id: i64, want: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = digest_status(app, token, id).await;
        if s["status"] == want {
            return s;
        }
        assert!(Instant::now() < deadline, "digest never {want}: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn bounced(app: &TestApp) -> (i64, i64) {
    (
        app.db
            .count("SELECT COUNT(*) FROM subscribers WHERE status = 'bounced'"),
        app.db
            .count("SELECT COUNT(*) FROM consent_events WHERE event = 'bounced'"),
    )
}

/// Each seeded reader (`r{i}@bulk.example`) got exactly one message.
fn assert_each_once(app: &TestApp, n: usize) {
    let counts = app.sink.counts_by_recipient();
    assert_each_once_among(&counts, n);
    assert_eq!(counts.len(), n);
}

fn assert_each_once_among(counts: &std::collections::HashMap<String, usize>, n: usize) {
    let missing: Vec<_> = (0..n)
        .map(|i| format!("r{i}@bulk.example"))
        .filter(|r| !counts.contains_key(r))
        .collect();
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(missing.is_empty(), "missed: {missing:?}");
    assert!(twice.is_empty(), "sent twice: {twice:?}");
}

#[tokio::test]
async fn a_sender_refused_at_mail_from_pauses_the_digest_and_bounces_nobody() {
    let app = spawn_app_with(|_| {}).await;
    let token = app.api_token().await;
    seed_confirmed(&app, 40);
    app.sink.script(
        Command::Mail,
        Some("550 5.7.1 <news@tidings.test>: Sender address rejected: not authorized"),
    );
    let id = queue_digest(&app, &token, "https://news.example/refused").await;

    let paused = wait_status(&app, &token, id, "paused").await;
    assert!(
        paused["reason"].as_str().unwrap().contains("5.7.1"),
        "{paused}"
    );
    assert_eq!(bounced(&app), (0, 0), "a sender refusal bounced readers");
    assert_eq!(app.sink.messages().len(), 0);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("tidings_digests_paused_total{by=\"breaker\"} 1"),
        "{metrics}"
    );
    // Paused means paused: nothing more is tried.
    let refused = app.sink.perm_failures();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        app.sink.perm_failures(),
        refused,
        "sends went on while paused"
    );

    app.sink.script(Command::Mail, None);
    let res = app
        .api_post(&token, &format!("/api/digests/{id}/resume"), &json!({}))
        .await;
    assert_eq!(res.status().as_u16(), 200);
    let done = wait_digest_sent(&app, &token, id).await;
    assert_eq!(
        (done["sent"].as_i64(), done["failed"].as_i64()),
        (Some(40), Some(0)),
        "{done}"
    );
    assert_each_once(&app, 40);
    assert_eq!(bounced(&app), (0, 0));
}

#[tokio::test]
async fn content_refused_after_data_bounces_nobody() {
    let app = spawn_app_with(|_| {}).await;
    let token = app.api_token().await;
    seed_confirmed(&app, 4);
    app.sink
        .script(Command::Message, Some("550 5.7.1 Message rejected as spam"));
    let id = queue_digest(&app, &token, "https://news.example/spam").await;
    wait_until(Duration::from_secs(10), || async {
        app.sink.perm_failures() >= 4
    })
    .await;
    assert_eq!(bounced(&app), (0, 0), "a content refusal bounced readers");
    let s = digest_status(&app, &token, id).await;
    assert_eq!(s["failed"], 0, "{s}");

    // The refusals were retried (with backoff), not given up.
    app.sink.script(Command::Message, None);
    wait_digest_sent(&app, &token, id).await;
    assert_each_once(&app, 4);
}

#[tokio::test]
async fn a_recipient_refused_at_rcpt_bounces_only_that_reader() {
    let app = spawn_app_with(|_| {}).await;
    let token = app.api_token().await;
    seed_confirmed(&app, 5);
    app.sink.reject_recipient("r2@bulk.example");
    let id = queue_digest(&app, &token, "https://news.example/rcpt").await;
    let done = wait_digest_sent(&app, &token, id).await;
    assert_eq!(
        (done["sent"].as_i64(), done["failed"].as_i64()),
        (Some(4), Some(1)),
        "{done}"
    );
    assert_eq!(
        app.db
            .query_strings("SELECT email AS v FROM subscribers WHERE status = 'bounced'"),
        vec!["r2@bulk.example"]
    );
    let source = app.db.query_strings(
        "SELECT c.source AS v FROM consent_events c JOIN subscribers s ON s.id = c.subscriber_id \
         WHERE c.event = 'bounced'",
    );
    assert!(
        source[0].contains("5.1.1"),
        "the reply is on the consent event: {source:?}"
    );
}

#[tokio::test]
async fn pause_resume_and_cancel_through_the_api() {
    let app = spawn_app_with(|s| {
        s.insert("send_concurrency".into(), "2".into());
    })
    .await;
    let token = app.api_token().await;
    seed_confirmed(&app, 30);
    app.sink.set_delay(Duration::from_millis(100));
    let id = queue_digest(&app, &token, "https://news.example/pause").await;
    wait_until(Duration::from_secs(10), || async {
        !app.sink.messages().is_empty()
    })
    .await;

    let res = app
        .api_post(&token, &format!("/api/digests/{id}/pause"), &json!({}))
        .await;
    assert_eq!(res.status().as_u16(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        (body["status"].as_str(), body["reason"].as_str()),
        (Some("paused"), Some("paused by an operator"))
    );
    // What was in flight finishes; then nothing.
    let at_pause = settled_count(&app, Duration::from_secs(1)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        app.sink.messages().len(),
        at_pause,
        "sending went on while paused"
    );
    assert!(at_pause < 30);

    let again = app
        .api_post(&token, &format!("/api/digests/{id}/pause"), &json!({}))
        .await;
    assert_eq!(again.status().as_u16(), 409);
    let res = app
        .api_post(&token, &format!("/api/digests/{id}/resume"), &json!({}))
        .await;
    assert_eq!(res.status().as_u16(), 200);
    wait_digest_sent(&app, &token, id).await;
    assert_each_once(&app, 30);

    let done = app
        .api_post(&token, &format!("/api/digests/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(
        done.status().as_u16(),
        409,
        "a sent digest cannot be cancelled"
    );
    for (path, status) in [
        ("/api/digests/999999/pause", 404),
        (&format!("/api/digests/{id}/explode") as &str, 404),
        ("/api/digests/abc/resume", 404),
    ] {
        let res = app.api_post(&token, path, &json!({})).await;
        assert_eq!(res.status().as_u16(), status, "{path}");
    }
}

#[tokio::test]
async fn a_cancelled_digest_sends_no_more() {
    let app = spawn_app_with(|s| {
        s.insert("send_concurrency".into(), "1".into());
    })
    .await;
    let token = app.api_token().await;
    seed_confirmed(&app, 20);
    app.sink.set_delay(Duration::from_millis(200));
    let id = queue_digest(&app, &token, "https://news.example/cancel").await;
    wait_until(Duration::from_secs(10), || async {
        !app.sink.messages().is_empty()
    })
    .await;
    let res = app
        .api_post(&token, &format!("/api/digests/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(res.status().as_u16(), 200);
    let at_cancel = app.sink.messages().len();
    // The sends already started finish (on a loaded box they take longer
    // than their 200 ms each); wait until the sink has been quiet for 1 s.
    let after = settled_count(&app, Duration::from_secs(1)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(app.sink.messages().len(), after, "a send after the drain");
    // In flight at the cancel: one window, and one more may start before
    // the next status look.
    let window = tidings::workers::SENDS_PER_CONNECTION;
    assert!(
        after <= at_cancel + 2 * window && after < 20,
        "{at_cancel} at cancel, {after} after"
    );
    let s = digest_status(&app, &token, id).await;
    assert_eq!(s["status"], "cancelled", "{s}");
    let res = app
        .api_post(&token, &format!("/api/digests/{id}/resume"), &json!({}))
        .await;
    assert_eq!(res.status().as_u16(), 409, "cancel is for good");
}

/// The sink's message count once it has not changed for `quiet` (at most 15 s).
async fn settled_count(app: &TestApp, quiet: Duration) -> usize {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = app.sink.messages().len();
    let mut since = Instant::now();
    while since.elapsed() < quiet {
        assert!(Instant::now() < deadline, "the sink never went quiet");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = app.sink.messages().len();
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
    last
}

#[tokio::test]
async fn a_relay_slower_than_the_lease_sends_nothing_twice() {
    // 12 readers, 2 at a time, 700 ms each: about 4.2 s, two leases of 2 s.
    // Without renewal the instance's other lane takes the chunk over.
    let app = spawn_app_with(|s| {
        s.insert("send_concurrency".into(), "2".into());
        s.insert("lease_seconds".into(), "2".into());
    })
    .await;
    let token = app.api_token().await;
    seed_confirmed(&app, 12);
    app.sink.set_delay(Duration::from_millis(700));
    let id = queue_digest(&app, &token, "https://news.example/slow").await;
    let done = wait_digest_sent(&app, &token, id).await;
    assert_eq!(done["sent"], 12, "{done}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_each_once(&app, 12);
}

/// Signs up `new{i}@fresh.example` for each i of `range`, all at once.
async fn sign_up_fresh(app: &TestApp, range: std::ops::Range<usize>) {
    let signups = range.map(|i| async move {
        let res = app
            .post_json(
                "/subscriptions",
                &json!({"email": format!("new{i}@fresh.example")}),
            )
            .await;
        assert_eq!(res.status().as_u16(), 202);
    });
    futures_util::future::join_all(signups).await;
}

/// After an outage: nobody got anything twice, each of the first
/// `signups` fresh readers got a confirmation and each of `readers` the
/// digest.
fn assert_outage_repeated_nothing(app: &TestApp, signups: usize, readers: usize) {
    let counts = app.sink.counts_by_recipient();
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent twice after the outage: {twice:?}");
    for i in 0..signups {
        assert!(
            counts.contains_key(&format!("new{i}@fresh.example")),
            "confirmation {i} lost"
        );
    }
    assert_each_once_among(&counts, readers);
}

#[tokio::test]
async fn the_database_taken_away_mid_send_repeats_nothing_and_loses_nothing() {
    const READERS: usize = 300;
    const SIGNUPS: usize = 60;
    let (app, mut outage) = crate::faults::app_with_outage_and(|s| {
        s.insert("send_concurrency".into(), "4".into());
    })
    .await;
    let token = app.api_token().await;
    seed_confirmed(&app, READERS);
    app.sink.set_delay(Duration::from_millis(30));
    let id = queue_digest(&app, &token, "https://news.example/outage").await;
    sign_up_fresh(&app, 0..SIGNUPS).await;
    wait_until(Duration::from_secs(20), || async {
        app.sink.messages().len() >= 20
    })
    .await;

    outage.begin();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let during = app.sink.messages().len();
    outage.end();

    wait_digest_sent(&app, &token, id).await;
    app.outbox_drained().await;
    assert!(
        during < READERS + SIGNUPS,
        "the outage came too late to test anything"
    );
    assert_outage_repeated_nothing(&app, SIGNUPS, READERS);
}

#[tokio::test]
async fn an_outage_longer_than_the_lease_hands_no_live_work_over() {
    // The leases (2 s) run out while the database is away (5 s): the
    // worker holding them is alive, with sends it could not record, so
    // neither its other lane nor the outbox's reclaim may take them over
    // the moment the database is back.
    const READERS: usize = 200;
    const SIGNUPS: usize = 40;
    let (app, mut outage) = crate::faults::app_with_outage_and(|s| {
        s.insert("send_concurrency".into(), "4".into());
        s.insert("lease_seconds".into(), "2".into());
    })
    .await;
    let token = app.api_token().await;
    seed_confirmed(&app, READERS);
    app.sink.set_delay(Duration::from_millis(40));
    let id = queue_digest(&app, &token, "https://news.example/long-outage").await;
    sign_up_fresh(&app, 0..SIGNUPS).await;
    wait_until(Duration::from_secs(20), || async {
        app.sink.messages().len() >= 20
    })
    .await;

    outage.begin();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = app.sink.messages().len();
    outage.end();
    // A signup after the outage wakes the outbox, whose claim then looks
    // for expired leases (the first tries may find the database still
    // coming back: 503).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let res = app
            .post_json(
                "/subscriptions",
                &json!({"email": format!("new{SIGNUPS}@fresh.example")}),
            )
            .await;
        match res.status().as_u16() {
            202 => break,
            503 if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            other => panic!("signup after the outage: {other}"),
        }
    }

    wait_digest_sent(&app, &token, id).await;
    app.outbox_drained().await;
    assert!(
        during < READERS + SIGNUPS,
        "the outage came too late to test anything"
    );
    assert_outage_repeated_nothing(&app, SIGNUPS + 1, READERS);
}

/// The real binary, on the test's database and sink.
fn child(db: &TestDb, sink: &MailSink, args: &[&str]) -> Child {
    tidings()
        .env("TIDINGS_DATABASE_URL", &db.url)
        .env("TIDINGS_SMTP_URL", sink.url())
        .env("TIDINGS_MAIL_FROM", "news@tidings.test")
        .env("TIDINGS_LISTEN", "127.0.0.1:0")
        .env("TIDINGS_SEND_CONCURRENCY", "4")
        .env("RUST_LOG", "warn")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tidings")
}

#[tokio::test]
async fn kill_9_mid_digest_repeats_at_most_the_sends_in_flight() {
    const READERS: usize = 1500;
    let app = spawn_app_with(|_| {}).await;
    let token = app.api_token().await;
    add_article(&app, &token, "https://news.example/crash", "Crash").await;
    seed_confirmed(&app, READERS);
    let (db, sink, _) = app.shutdown().await;
    sink.set_delay(Duration::from_millis(2));

    let mut first = child(&db, &sink, &["digest", "send"]);
    wait_until(Duration::from_secs(60), || async {
        sink.messages().len() >= READERS / 3
    })
    .await;
    first.kill().expect("kill -9");
    first.wait().expect("reap");
    let at_kill = sink.messages().len();
    assert!(at_kill < READERS, "the digest finished before the kill");

    let restarted = Instant::now();
    let mut second = child(&db, &sink, &["serve"]);
    let all_in = async {
        loop {
            if sink.counts_by_recipient().len() >= READERS {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let within = tokio::time::timeout(Duration::from_secs(30), all_in).await;
    let took = restarted.elapsed();
    wait_until(Duration::from_secs(10), || async {
        db.query_strings("SELECT status AS v FROM digests") == vec!["sent"]
    })
    .await;
    let _ = second.kill();
    let _ = second.wait();
    assert!(
        within.is_ok(),
        "not everyone had the digest 30 s after the restart"
    );

    let counts = sink.counts_by_recipient();
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    assert_eq!(counts.len(), READERS, "readers missed");
    assert!(
        duplicates <= tidings::workers::SENDS_PER_CONNECTION * 4,
        "{duplicates} duplicates (at most the window, 4 x send_concurrency, may repeat); killed at {at_kill}"
    );
    eprintln!("kill -9 at {at_kill}/{READERS}: {duplicates} duplicates, all delivered {took:?} after the restart");
}

#[test]
fn digest_send_stops_with_the_reason_when_the_relay_keeps_refusing() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(spawn_app_with(|_| {}));
    let token = rt.block_on(app.api_token());
    seed_confirmed(&app, 20);
    rt.block_on(add_article(
        &app,
        &token,
        "https://news.example/cli-refused",
        "Refused",
    ));
    app.sink
        .script(Command::Mail, Some("550 5.7.1 Sender not authorized"));
    let out = tidings()
        .env("TIDINGS_DATABASE_URL", &app.db.url)
        .env("TIDINGS_SMTP_URL", app.sink.url())
        .env("TIDINGS_MAIL_FROM", "news@tidings.test")
        .args(["digest", "send"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.trim().lines().last().unwrap_or_default();
    assert!(
        last.contains("paused") && last.contains("5.7.1"),
        "{stderr}"
    );
    assert_eq!(bounced(&app), (0, 0));
}

/// The workers' timings are on /metrics: every send timed, and every
/// outcome in exactly one settle commit.
#[tokio::test]
async fn metrics_time_each_send_and_count_each_outcome_in_one_commit() {
    let app = spawn_app_with(|_| {}).await;
    let token = app.api_token().await;
    seed_confirmed(&app, 30);
    let id = queue_digest(&app, &token, "https://news.example/timed").await;
    wait_digest_sent(&app, &token, id).await;
    assert_each_once(&app, 30);

    let metrics = app.get("/metrics").await.text().await.unwrap();
    for line in [
        "tidings_send_seconds_count{worker=\"delivery\"} 30",
        "tidings_settle_wait_seconds_count{worker=\"delivery\"} 30",
        "tidings_settle_size_sum{worker=\"delivery\"} 30",
    ] {
        assert!(metrics.lines().any(|l| l == line), "no {line} in {metrics}");
    }
    let commits = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tidings_settle_seconds_count{worker=\"delivery\"} "))
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap();
    assert!(
        (1..=30).contains(&commits),
        "{commits} commits for 30 sends"
    );
}
