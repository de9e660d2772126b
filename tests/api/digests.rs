//! Articles, digest composition, fan-out, delivery, unsubscribe, schedule.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, start, unsubscribe_token, wait_until, TestApp};
use crate::support::smtp::Mode;

pub(crate) async fn add_article(app: &TestApp, token: &str, url: &str, title: &str) -> i64 {
    let res = app
        .api_post(
            token,
            "/api/articles",
            &json!({"url": url, "title": title, "summary": "A <i>summary</i> & more"}),
        )
        .await;
    assert!(res.status().is_success(), "{:?}", res.text().await);
    res.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap()
}

/// Inserts `n` confirmed readers directly (arrangement for volume tests).
pub(crate) fn seed_confirmed(app: &TestApp, n: usize) {
    let mut sql = String::new();
    for i in 0..n {
        let id = uuid::Uuid::new_v4();
        sql.push_str(&format!(
            "INSERT INTO subscribers (id, email, email_key, status, created_at, updated_at, confirmed_at) \
             VALUES ('{id}', 'r{i}@bulk.example', 'r{i}@bulk.example', 'confirmed', '2026-11-01 00:00:00', '2026-11-01 00:00:00', '2026-11-01 00:00:00');\n"
        ));
    }
    app.db.execute(&sql);
}

pub(crate) async fn digest_status(app: &TestApp, token: &str, id: i64) -> serde_json::Value {
    app.api_get(token, &format!("/api/digests/{id}"))
        .await
        .json()
        .await
        .unwrap()
}

pub(crate) async fn wait_digest_sent(app: &TestApp, token: &str, id: i64) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = digest_status(app, token, id).await;
        if s["status"] == "sent" {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "digest not sent: {s}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn digest_reaches_each_confirmed_reader_exactly_once() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    for r in ["a@example.com", "b@example.com", "c@example.com"] {
        app.confirmed_reader(r).await;
    }
    app.signup("pending@example.com").await;
    app.confirmed_reader("gone@example.com").await;
    let gone_id = app
        .db
        .query_strings("SELECT id AS v FROM subscribers WHERE email = 'gone@example.com'")
        .remove(0);
    let t = tidings::domain::token::unsubscribe_token(&app.state.secret, &gone_id);
    app.post_form(&format!("/unsubscribe?token={t}"), &[]).await;
    app.outbox_drained().await;

    add_article(
        &app,
        &token,
        "https://news.example/one",
        "<b>Bold</b> & \"quoted\"",
    )
    .await;
    add_article(&app, &token, "https://news.example/two", "Second story").await;
    let res = app.api_post(&token, "/api/digests", &json!({})).await;
    assert_eq!(res.status().as_u16(), 201);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["articles"], 2);
    assert_eq!(body["recipients"], 3);
    let id = body["id"].as_i64().unwrap();

    let done = wait_digest_sent(&app, &token, id).await;
    assert_eq!(
        (
            done["total"].as_i64(),
            done["sent"].as_i64(),
            done["failed"].as_i64(),
            done["queued"].as_i64()
        ),
        (Some(3), Some(3), Some(0), Some(0))
    );
    for r in ["a@example.com", "b@example.com", "c@example.com"] {
        let mails = app.sink.messages_to(r);
        assert_eq!(mails.len(), 2, "confirmation + one digest for {r}");
        let digest = &mails[1];
        let html = digest.html_body().unwrap();
        assert!(
            html.contains("&lt;b&gt;Bold&lt;") && html.contains("&amp; &quot;quoted&quot;"),
            "{html}"
        );
        assert!(!html.contains("<b>Bold</b>"));
        assert!(html.contains("href=\"https://news.example/one\""));
        assert!(
            html.contains("A &lt;i&gt;summary&lt;&#x2f;i&gt; &amp; more"),
            "{html}"
        );
        assert!(digest
            .text_body()
            .unwrap()
            .contains("https://news.example/two"));
        let lu = digest.header("List-Unsubscribe").unwrap();
        // Without bounce_address nothing reads a mailbox: no mailto.
        assert!(
            lu.contains("<http://tidings.test/unsubscribe?token=") && !lu.contains("mailto:"),
            "{lu}"
        );
        assert_eq!(
            digest.header("List-Unsubscribe-Post").unwrap(),
            "List-Unsubscribe=One-Click"
        );
        assert!(digest
            .header("List-Id")
            .unwrap()
            .contains("<digest.tidings.test>"));
        assert!(digest.header("Message-ID").is_some() && digest.header("Date").is_some());
        // The link in the body is this reader's own.
        let own = unsubscribe_token(digest);
        assert!(html.contains(&own));
    }
    assert_eq!(app.sink.messages_to("pending@example.com").len(), 1);
    assert_eq!(app.sink.messages_to("gone@example.com").len(), 1);

    let again = app.api_post(&token, "/api/digests", &json!({})).await;
    assert_eq!(again.status().as_u16(), 200);
    assert_eq!(
        again.json::<serde_json::Value>().await.unwrap(),
        json!({"status": "nothing_new"})
    );
    let list: serde_json::Value = app
        .api_get(&token, "/api/digests")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn idempotency_key_returns_the_same_digest() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.confirmed_reader("idem@example.com").await;
    add_article(&app, &token, "https://news.example/idem", "Idem").await;
    let post = || {
        app.client
            .post(app.url("/api/digests"))
            .bearer_auth(&token)
            .header("Idempotency-Key", "weekly-2026-48")
            .send()
    };
    let first: serde_json::Value = post().await.unwrap().json().await.unwrap();
    add_article(&app, &token, "https://news.example/later", "Later").await;
    let second = post().await.unwrap();
    assert_eq!(second.status().as_u16(), 201);
    let second: serde_json::Value = second.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM digests"), 1);
}

#[tokio::test]
async fn one_click_unsubscribe_and_scanner_safe_page() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.confirmed_reader("leaver@example.com").await;
    add_article(&app, &token, "https://news.example/x", "X").await;
    app.api_post(&token, "/api/digests", &json!({})).await;
    let digest = app.wait_mail_to("leaver@example.com", 2).await;
    let unsub = unsubscribe_token(&digest);

    let page = app.get(&format!("/unsubscribe?token={unsub}")).await;
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("<button"));
    assert_eq!(
        app.db.query_strings("SELECT status AS v FROM subscribers"),
        vec!["confirmed"]
    );

    for _ in 0..2 {
        let res = app
            .client
            .post(app.url(&format!("/unsubscribe?token={unsub}")))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "200, never a redirect");
    }
    assert_eq!(
        app.db.query_strings("SELECT status AS v FROM subscribers"),
        vec!["unsubscribed"]
    );
    assert_eq!(
        app.db
            .query_strings("SELECT method AS v FROM consent_events WHERE event = 'unsubscribed'"),
        vec!["one-click"]
    );
    let res = app.post_form("/unsubscribe?token=forged.token", &[]).await;
    assert_eq!(res.status().as_u16(), 404);
    assert_eq!(app.get("/unsubscribe").await.status().as_u16(), 404);
}

#[tokio::test]
async fn articles_api_validates_and_upserts_by_url() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    for (body, field) in [
        (json!({"title": "No url"}), "url"),
        (json!({"url": "ftp://news.example/a", "title": "t"}), "url"),
        (json!({"url": "not a url", "title": "t"}), "url"),
        (json!({"url": "https://news.example/a"}), "title"),
        (
            json!({"url": "https://news.example/a", "title": "x".repeat(301)}),
            "title",
        ),
        (
            json!({"url": "https://news.example/a", "title": "t", "published_at": "yesterday"}),
            "published_at",
        ),
        (json!({"url": 5, "title": "t"}), "url"),
    ] {
        let res = app.api_post(&token, "/api/articles", &body).await;
        assert_eq!(res.status().as_u16(), 422, "{body}");
        let err: serde_json::Value = res.json().await.unwrap();
        assert_eq!(err["field"], field, "{body} -> {err}");
    }
    let res = app
        .client
        .post(app.url("/api/articles"))
        .bearer_auth(&token)
        .header("Content-Type", "application/json")
        .body("{broken")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);

    let a = json!({"url": "https://news.example/a", "title": "First", "published_at": "2026-11-20T10:00:00Z"});
    let res = app.api_post(&token, "/api/articles", &a).await;
    assert_eq!(res.status().as_u16(), 201);
    let id = res.json::<serde_json::Value>().await.unwrap()["id"].clone();
    let res = app
        .api_post(&token, "/api/articles", &json!({"url": "https://news.example/a", "title": "First, edited", "published_at": "2026-11-20T10:00:00Z"}))
        .await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["id"], id);
    app.api_post(&token, "/api/articles", &json!({"url": "https://news.example/b", "title": "Second", "published_at": "2026-11-25T10:00:00Z"})).await;
    let list: serde_json::Value = app
        .api_get(&token, "/api/articles")
        .await
        .json()
        .await
        .unwrap();
    let titles: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(titles, vec!["Second", "First, edited"]);
    let since: serde_json::Value = app
        .api_get(&token, "/api/articles?since=2026-11-22T00:00:00Z")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(since["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.api_get(&token, "/api/articles?since=soon")
            .await
            .status()
            .as_u16(),
        422
    );
}

#[tokio::test]
async fn first_digest_looks_back_one_period_only() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.confirmed_reader("archive@example.com").await;
    // Weekly cron: an article from a month ago is archive, not news.
    app.api_post(&token, "/api/articles", &json!({"url": "https://news.example/old", "title": "Old", "published_at": "2026-10-01T00:00:00Z"})).await;
    let res = app.api_post(&token, "/api/digests", &json!({})).await;
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["status"],
        "nothing_new"
    );
    add_article(&app, &token, "https://news.example/new", "New").await;
    let body: serde_json::Value = app
        .api_post(&token, "/api/digests", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["articles"], 1);
}

#[tokio::test]
async fn transient_smtp_refusals_are_retried_and_each_reader_gets_one() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    for r in ["t1@example.com", "t2@example.com"] {
        app.confirmed_reader(r).await;
    }
    add_article(&app, &token, "https://news.example/t", "T").await;
    app.sink.set_mode(Mode::TempFail);
    let body: serde_json::Value = app
        .api_post(&token, "/api/digests", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let id = body["id"].as_i64().unwrap();
    wait_until(Duration::from_secs(10), || async {
        app.sink.temp_failures() >= 2
    })
    .await;
    let mid = digest_status(&app, &token, id).await;
    assert_eq!(
        mid["status"], "sending",
        "4xx is not counted as done: {mid}"
    );
    assert_eq!(mid["sent"], 0);
    app.sink.set_mode(Mode::Accept);
    let done = wait_digest_sent(&app, &token, id).await;
    assert_eq!(done["sent"], 2);
    for r in ["t1@example.com", "t2@example.com"] {
        assert_eq!(app.sink.messages_to(r).len(), 2);
    }
}

#[tokio::test]
async fn permanent_refusal_fails_the_delivery_and_bounces_the_reader() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.confirmed_reader("ok@example.com").await;
    app.confirmed_reader("dead@example.com").await;
    app.sink.reject_recipient("dead@example.com");
    add_article(&app, &token, "https://news.example/p", "P").await;
    let body: serde_json::Value = app
        .api_post(&token, "/api/digests", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let done = wait_digest_sent(&app, &token, body["id"].as_i64().unwrap()).await;
    assert_eq!(
        (done["sent"].as_i64(), done["failed"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        app.db
            .query_strings("SELECT status AS v FROM subscribers WHERE email = 'dead@example.com'"),
        vec!["bounced"]
    );
}

#[tokio::test]
async fn stopped_mid_send_and_restarted_nobody_missed_nobody_twice() {
    let app = spawn_app_with(|s| {
        s.insert("send_rate".into(), "800".into());
    })
    .await;
    let token = app.api_token().await;
    seed_confirmed(&app, 1500);
    add_article(&app, &token, "https://news.example/big", "Big").await;
    let body: serde_json::Value = app
        .api_post(&token, "/api/digests", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["recipients"], 1500);
    let id = body["id"].as_i64().unwrap();
    wait_until(Duration::from_secs(20), || async {
        !app.sink.messages().is_empty()
    })
    .await;
    let (db, sink, settings) = app.shutdown().await;
    let sent_before = sink.messages().len();
    assert!(sent_before < 1500, "stopped mid-send ({sent_before})");
    let app = start(db, sink, settings).await;
    let done = wait_digest_sent(&app, &token, id).await;
    assert_eq!(done["sent"], 1500);
    let mut seen = std::collections::HashMap::new();
    for m in app.sink.messages() {
        *seen.entry(m.to[0].clone()).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 1500, "nobody missed");
    assert!(
        seen.values().all(|&n| n == 1),
        "nobody twice after a graceful stop"
    );
    assert_eq!(
        app.db.count(&format!(
            "SELECT COUNT(*) FROM delivery_chunks WHERE digest_id = {id}"
        )),
        2,
        "1,500 readers make two chunks of at most 1,000"
    );
    assert_eq!(
        app.db.count("SELECT COUNT(*) FROM deliveries"),
        0,
        "plain sends leave no row per reader"
    );
}

/// One confirmed reader, one article, one digest sent: `(api token, digest id)`.
async fn digest_sent_to_one_reader(app: &TestApp, reader: &str) -> (String, i64) {
    let token = app.api_token().await;
    app.confirmed_reader(reader).await;
    add_article(app, &token, "https://news.example/one", "One").await;
    let body: serde_json::Value = app
        .api_post(&token, "/api/digests", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let id = body["id"].as_i64().unwrap();
    wait_digest_sent(app, &token, id).await;
    (token, id)
}

#[tokio::test]
async fn crashed_worker_lease_expires_and_the_row_is_sent_again() {
    let app = spawn_app().await;
    let (token, id) = digest_sent_to_one_reader(&app, "lease@example.com").await;
    // A digest whose only delivery was claimed by a worker that died.
    let past = if app.db.is_postgres() {
        "NOW() AT TIME ZONE 'UTC' - INTERVAL '1 minute'"
    } else {
        "datetime('now', '-1 minute')"
    };
    // Its chunk is leased until a moment ago, and its send never committed.
    app.db.execute(&format!(
        "UPDATE delivery_chunks SET done = FALSE, passed = FALSE, cursor = NULL, sent = 0, \
           lease_id = 'dead', due_at = {past}; \
         UPDATE digests SET status = 'sending'"
    ));
    app.state.wake_deliveries.notify_one();
    wait_digest_sent(&app, &token, id).await;
    assert_eq!(
        app.sink.messages_to("lease@example.com").len(),
        3,
        "at most the in-flight send repeats"
    );
}

#[tokio::test]
async fn scheduler_fires_on_a_seconds_cron_and_skips_when_nothing_is_new() {
    let app = spawn_app_with(|s| {
        s.insert("digest_cron".into(), "*/1 * * * * *".into());
    })
    .await;
    let token = app.api_token().await;
    app.confirmed_reader("cron@example.com").await;
    add_article(&app, &token, "https://news.example/cron", "Cron").await;
    app.wait_mail_to("cron@example.com", 2).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(app.db.count("SELECT COUNT(*) FROM digests"), 1);
    assert!(
        app.db
            .count("SELECT COUNT(*) FROM job_runs WHERE job = 'digest'")
            >= 2,
        "ticks kept running"
    );
    assert_eq!(app.sink.messages_to("cron@example.com").len(), 2);
}

#[tokio::test]
async fn two_instances_on_one_database_compose_one_digest_per_tick() {
    let first = spawn_app_with(|s| {
        s.insert("digest_cron".into(), "*/2 * * * * *".into());
    })
    .await;
    let token = first.api_token().await;
    for i in 0..20 {
        first
            .confirmed_reader(&format!("pair{i}@example.com"))
            .await;
    }
    // A second instance on the same database and the same schedule.
    let mut settings = first.settings.clone();
    settings.insert("smtp_url".into(), first.sink.url());
    let second_db = crate::helpers::TestDb::new();
    let second_sink = crate::support::smtp::MailSink::start().await;
    let second = start(second_db, second_sink, settings).await;
    // All at once, so no tick falls between them (one digest, not two).
    let urls: Vec<String> = (0..5)
        .map(|i| format!("https://news.example/pair{i}"))
        .collect();
    futures_util::future::join_all(urls.iter().map(|u| add_article(&first, &token, u, "Pair")))
        .await;
    wait_until(Duration::from_secs(15), || async {
        let sent = first
            .db
            .count("SELECT COALESCE(SUM(sent), 0) FROM delivery_chunks");
        sent >= 20 && sent == 20 * first.db.count("SELECT COUNT(*) FROM digests")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Usually one digest; two when a loaded box lets a tick fall between
    // the five POSTs. Never a digest composed twice: no digest without
    // articles of its own, and each reader has each digest once.
    let digests = first.db.count("SELECT COUNT(*) FROM digests");
    assert!((1..=2).contains(&digests), "{digests} digests");
    assert_eq!(
        first.db.count(
            "SELECT COUNT(*) FROM digests d WHERE NOT EXISTS \
             (SELECT 1 FROM articles a WHERE a.digest_id = d.id)"
        ),
        0,
        "a digest with no articles: a tick composed twice"
    );
    assert_eq!(
        first
            .db
            .count("SELECT COUNT(*) FROM articles WHERE digest_id IS NOT NULL"),
        5
    );
    for i in 0..20 {
        assert_eq!(
            first
                .sink
                .messages_to(&format!("pair{i}@example.com"))
                .len() as i64,
            1 + digests
        );
    }
    drop(second);
}

#[tokio::test]
async fn dkim_signs_every_digest_including_the_unsubscribe_headers() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("dkim.key");
    // An Ed25519 key: base64 of a 32-byte seed.
    std::fs::write(&key, "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=").unwrap();
    let app = spawn_app_with(|s| {
        s.insert("dkim_domain".into(), "tidings.test".into());
        s.insert("dkim_selector".into(), "mail".into());
        s.insert("dkim_private_key_file".into(), key.display().to_string());
    })
    .await;
    let token = app.api_token().await;
    app.confirmed_reader("signed@example.com").await;
    add_article(&app, &token, "https://news.example/signed", "Signed").await;
    app.api_post(&token, "/api/digests", &json!({})).await;
    let digest = app.wait_mail_to("signed@example.com", 2).await;
    let sig = digest.header("DKIM-Signature").expect("DKIM-Signature");
    let compact: String = sig.split_whitespace().collect();
    assert!(
        compact.contains("d=tidings.test") && compact.contains("s=mail"),
        "{sig}"
    );
    assert!(compact.contains("a=ed25519-sha256"), "{sig}");
    let signed = compact
        .split(';')
        .find_map(|p| p.strip_prefix("h="))
        .unwrap()
        .to_ascii_lowercase();
    for h in [
        "from",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "list-id",
    ] {
        assert!(
            signed.split(':').any(|x| x == h),
            "{h} not signed: {signed}"
        );
    }
}

#[test]
fn digest_send_command_composes_sends_and_reports() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(spawn_app());
    let token = rt.block_on(app.api_token());
    let cli = || {
        let mut cmd = crate::helpers::tidings();
        cmd.env("TIDINGS_DATABASE_URL", &app.db.url)
            .env("TIDINGS_SMTP_URL", app.sink.url())
            .env("TIDINGS_MAIL_FROM", "news@tidings.test")
            .args(["digest", "send"]);
        cmd
    };
    let out = cli().output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing new"));

    rt.block_on(app.confirmed_reader("cli@example.com"));
    rt.block_on(add_article(
        &app,
        &token,
        "https://news.example/cli",
        "From the CLI",
    ));
    let out = cli().output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 sent, 0 failed"), "{stdout}");
    assert!(
        stdout.contains("composed: 1 article, 1 recipient\n"),
        "{stdout}"
    );
    let mails = app.sink.messages_to("cli@example.com");
    assert_eq!(mails.len(), 2);
    assert!(mails[1].subject().unwrap().contains("From the CLI"));
    assert_eq!(
        app.db.query_strings("SELECT status AS v FROM digests"),
        vec!["sent"]
    );
}

#[tokio::test]
async fn a_digest_with_no_readers_is_done_at_once() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    add_article(&app, &token, "https://news.example/alone", "Alone").await;
    let body: serde_json::Value = app
        .api_post(&token, "/api/digests", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["recipients"], 0);
    let status = digest_status(&app, &token, body["id"].as_i64().unwrap()).await;
    assert_eq!(status["status"], "sent", "{status}");
}

#[tokio::test]
async fn old_scheduler_ticks_are_pruned() {
    let app = spawn_app().await;
    app.db.execute(
        "INSERT INTO job_runs (job, tick, started_at) VALUES ('digest', 'old', '2026-01-01 00:00:00'); \
         INSERT INTO job_runs (job, tick, started_at) VALUES ('digest', 'new', '2099-01-01 00:00:00')",
    );
    let cutoff = tidings::db::now() - chrono::Duration::days(7);
    let n = tidings::db::run(&app.state.pool, move |c| {
        tidings::db::jobs::prune(c, cutoff)
    })
    .await
    .unwrap();
    // The housekeeping loop prunes at start too and may have got there first.
    assert!(n <= 1, "{n}");
    assert_eq!(
        app.db.query_strings("SELECT tick AS v FROM job_runs"),
        vec!["new"]
    );
}

#[tokio::test]
async fn delivery_stays_under_send_rate_and_send_concurrency() {
    let app = spawn_app_with(|s| {
        s.insert("send_rate".into(), "20".into());
        s.insert("send_concurrency".into(), "3".into());
    })
    .await;
    let token = app.api_token().await;
    seed_confirmed(&app, 60);
    add_article(&app, &token, "https://news.example/rate", "Rate").await;
    let started = std::time::Instant::now();
    let body: serde_json::Value = app
        .api_post(&token, "/api/digests", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    wait_digest_sent(&app, &token, body["id"].as_i64().unwrap()).await;
    // 60 emails at 20/s with a burst of at most 20: no faster than 2 s.
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(app.sink.messages().len(), 60);
    assert!(
        app.sink.peak_connections() <= 3,
        "peak {}",
        app.sink.peak_connections()
    );
}

#[tokio::test]
async fn a_digest_whose_last_chunks_settled_together_is_still_finished() {
    let app = spawn_app().await;
    let (token, id) = digest_sent_to_one_reader(&app, "last@example.com").await;
    // Two workers settling the last two chunks at once each see the other's
    // chunk open and leave the digest sending, with every chunk done.
    app.db.execute(&format!(
        "UPDATE digests SET status = 'sending', finished_at = NULL WHERE id = {id}"
    ));
    app.state.wake_deliveries.notify_one();
    wait_digest_sent(&app, &token, id).await;
    assert_eq!(
        app.sink.messages_to("last@example.com").len(),
        2,
        "nothing re-sent"
    );
}
