//! GDPR access and erasure through the ops API: what the export holds, what
//! erasure leaves (a consent skeleton, a suppression hash) and what it must
//! not (the address, name or user agent anywhere in the database, the raw
//! SQLite file included).

use std::time::Duration;

use serde_json::json;

use crate::helpers::{spawn_app, tidings, wait_until, TestApp};

const ADDRESS: &str = "Zed.Erasable@Example.org";
const STORED: &str = "Zed.Erasable@example.org";
const KEY: &str = "zed.erasable@example.org";
const NAME: &str = "Zelda Quillfeather";
const AGENT: &str = "SecretAgentBrowser/9.9";

/// A confirmed reader with a name, a user agent on both consent events and a
/// digest delivered to them. Returns their id.
async fn known_reader(app: &TestApp, token: &str) -> String {
    let res = app
        .client
        .post(app.url("/subscriptions"))
        .header("User-Agent", AGENT)
        .header("Referer", "https://news.example/articles/7")
        .form(&[("email", ADDRESS), ("name", NAME)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let mail = app.wait_mail_to(STORED, 1).await;
    let confirm = crate::helpers::confirmation_token(&mail);
    let res = app
        .client
        .post(app.url("/subscriptions/confirm"))
        .header("User-Agent", AGENT)
        .form(&[("token", confirm.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    app.outbox_drained().await;

    let res = app
        .api_post(
            token,
            "/api/articles",
            &json!({"url": "https://news.example/a", "title": "An article"}),
        )
        .await;
    assert!(res.status().is_success());
    let res = app.api_post(token, "/api/digests", &json!({})).await;
    assert_eq!(res.status().as_u16(), 201);
    app.wait_mail_to(STORED, 2).await;
    wait_until(Duration::from_secs(15), || async {
        app.db
            .count("SELECT COALESCE(SUM(sent), 0) FROM delivery_chunks")
            == 1
    })
    .await;
    app.db
        .query_strings(&format!(
            "SELECT id AS v FROM subscribers WHERE email_key = '{KEY}'"
        ))
        .remove(0)
}

async fn api_delete(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client
        .delete(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn export_holds_the_row_consent_events_and_deliveries() {
    // Arrange
    let app = spawn_app().await;
    let token = app.api_token().await;
    let id = known_reader(&app, &token).await;
    app.signup("waiting@example.com").await;
    app.outbox_drained().await;
    let waiting = app
        .db
        .query_strings("SELECT id AS v FROM subscribers WHERE email = 'waiting@example.com'")
        .remove(0);

    // Act
    let res = app
        .api_get(&token, &format!("/api/subscribers/{id}/export"))
        .await;

    // Assert
    assert_eq!(res.status().as_u16(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    let s = &body["subscriber"];
    assert_eq!(s["id"], id.as_str());
    assert_eq!(s["email"], STORED);
    assert_eq!(s["name"], NAME);
    assert_eq!(s["status"], "confirmed");
    assert!(s["created_at"].is_string() && s["confirmed_at"].is_string());
    let consent = body["consent"].as_array().unwrap();
    let events: Vec<&str> = consent
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["requested", "confirmed"]);
    assert_eq!(consent[0]["ip"], "127.0.0.1");
    assert_eq!(consent[0]["user_agent"], AGENT);
    assert_eq!(consent[0]["source"], "https://news.example/articles/7");
    assert_eq!(consent[0]["method"], "form");
    assert_eq!(
        consent[0]["consent_text_version"],
        tidings::domain::CONSENT_TEXT_VERSION
    );
    let deliveries = body["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1);
    assert!(deliveries[0]["digest_id"].is_i64());
    assert_eq!(deliveries[0]["status"], "sent");
    assert!(deliveries[0]["sent_at"].is_string());
    assert_eq!(body["confirmation_pending"], false);

    let pending: serde_json::Value = app
        .api_get(&token, &format!("/api/subscribers/{waiting}/export"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(pending["confirmation_pending"], true);
    assert_eq!(pending["subscriber"]["status"], "pending");
    assert_eq!(pending["deliveries"], json!([]));
}

#[tokio::test]
async fn privacy_routes_need_a_token_and_a_known_id() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let id = uuid::Uuid::new_v4();
    for res in [
        app.get(&format!("/api/subscribers/{id}/export")).await,
        app.client
            .delete(app.url(&format!("/api/subscribers/{id}")))
            .send()
            .await
            .unwrap(),
        app.api_get("tid_wrong", &format!("/api/subscribers/{id}/export"))
            .await,
        api_delete(&app, "tid_wrong", &format!("/api/subscribers/{id}")).await,
    ] {
        assert_eq!(res.status().as_u16(), 401);
        let body: serde_json::Value = res.json().await.unwrap();
        assert!(body["error"].is_string());
    }
    for res in [
        app.api_get(&token, &format!("/api/subscribers/{id}/export"))
            .await,
        api_delete(&app, &token, &format!("/api/subscribers/{id}")).await,
        api_delete(&app, &token, "/api/subscribers/not-even-a-uuid").await,
    ] {
        assert_eq!(res.status().as_u16(), 404);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"], "no such subscriber");
    }
}

#[tokio::test]
async fn erasure_keeps_a_consent_skeleton_and_nothing_personal() {
    // Arrange
    let app = spawn_app().await;
    let token = app.api_token().await;
    let id = known_reader(&app, &token).await;
    app.confirmed_reader("bystander@example.com").await;
    app.outbox_drained().await;
    // A bounce whose SMTP reply quotes the address, as real ones do.
    app.db.execute(&format!(
        "INSERT INTO consent_events (subscriber_id, event, occurred_at, source, method) \
         VALUES ('{id}', 'bounced', '2026-11-30 00:00:00', \
         'smtp: 550 5.1.1 <{STORED}>: Recipient address rejected', 'bounce')"
    ));

    // Act
    let res = api_delete(&app, &token, &format!("/api/subscribers/{id}")).await;

    // Assert: the answer, then what the API still shows.
    assert_eq!(res.status().as_u16(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body, json!({"id": id, "status": "erased"}));
    let path = format!("/api/subscribers/{id}");
    assert_eq!(
        app.api_get(&token, &format!("{path}/export"))
            .await
            .status()
            .as_u16(),
        404
    );
    assert_eq!(api_delete(&app, &token, &path).await.status().as_u16(), 404);

    let detail: serde_json::Value = app.api_get(&token, &path).await.json().await.unwrap();
    assert_eq!(detail["status"], "erased");
    assert_eq!(detail["email"], serde_json::Value::Null);
    assert_eq!(detail["name"], serde_json::Value::Null);
    let consent = detail["consent"].as_array().unwrap();
    let events: Vec<&str> = consent
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["requested", "confirmed", "bounced", "erased"]);
    for e in consent {
        assert_eq!(e["ip"], serde_json::Value::Null, "{e}");
        assert_eq!(e["user_agent"], serde_json::Value::Null, "{e}");
        assert!(e["occurred_at"].is_string(), "{e}");
        assert!(e["method"].is_string(), "{e}");
    }
    assert_eq!(
        consent[0]["consent_text_version"],
        tidings::domain::CONSENT_TEXT_VERSION
    );
    assert_eq!(consent[0]["source"], "https://news.example/articles/7");
    assert_eq!(consent[2]["source"], tidings::privacy::REMOVED_SOURCE);
    assert_eq!(consent[3]["method"], "api");
    assert_eq!(consent[3]["source"], "api token \"test\"");

    // Erased readers are not listed by a search on their address, nor exported.
    let list: serde_json::Value = app
        .api_get(&token, "/api/subscribers?q=erasable")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 0);

    // Tables: tokens and mail of theirs gone, the settled delivery kept
    // anonymously, one suppression hash.
    for (sql, n) in [
        (
            "SELECT COUNT(*) FROM confirmation_tokens WHERE subscriber_id = '{id}'",
            0,
        ),
        (
            "SELECT COUNT(*) FROM outbox WHERE subscriber_id = '{id}'",
            0,
        ),
        (
            // The digest's count of sends stays whole ('{id}' aside).
            "SELECT COALESCE(SUM(sent), 0) FROM delivery_chunks WHERE '{id}' <> ''",
            1,
        ),
        ("SELECT COUNT(*) FROM suppressions", 1),
        (
            "SELECT COUNT(*) FROM subscribers WHERE email IS NOT NULL",
            1,
        ),
    ] {
        assert_eq!(app.db.count(&sql.replace("{id}", &id)), n, "{sql}");
    }

    // Nothing readable left anywhere.
    let secrets = [STORED, KEY, NAME, AGENT];
    if app.db.is_postgres() {
        let tables = app.db.query_strings(
            "SELECT table_name::text AS v FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
        );
        assert!(tables.len() > 10, "{tables:?}");
        for table in tables {
            for secret in secrets {
                let n = app.db.count(&format!(
                    "SELECT COUNT(*) FROM {table} t WHERE t::text ILIKE '%{secret}%'"
                ));
                assert_eq!(n, 0, "{secret:?} still in table {table}");
            }
        }
    } else {
        let db_path = app.db.url.trim_start_matches("sqlite://").to_string();
        let mut bytes = std::fs::read(&db_path).unwrap();
        bytes.extend(std::fs::read(format!("{db_path}-wal")).unwrap_or_default());
        let lower = String::from_utf8_lossy(&bytes).to_lowercase();
        for secret in secrets {
            assert!(
                !lower.contains(&secret.to_lowercase()),
                "{secret:?} still readable in the SQLite file"
            );
        }
        // The bystander is still there, so the search would have found a live one.
        assert!(lower.contains("bystander@example.com"));
    }
}

#[tokio::test]
async fn an_erased_address_is_not_signed_up_by_json_or_imported_again() {
    // Arrange
    let app = spawn_app().await;
    let token = app.api_token().await;
    let id = known_reader(&app, &token).await;
    let res = api_delete(&app, &token, &format!("/api/subscribers/{id}")).await;
    assert_eq!(res.status().as_u16(), 200);
    let mails_before = app.sink.messages_to(STORED).len();

    // Act: the news site's JSON signup, in another case.
    let res = app
        .post_json("/subscriptions", &json!({"email": KEY.to_uppercase()}))
        .await;

    // Assert: the same answer as always, and nothing stored or sent.
    assert_eq!(res.status().as_u16(), 202);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap(),
        json!({"status": "pending"})
    );
    app.outbox_drained().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.sink.messages_to(STORED).len(), mails_before);
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM subscribers WHERE email IS NOT NULL"),
        0
    );

    // Act: an import that lists the address among others.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("list.csv");
    std::fs::write(
        &file,
        format!("email,name\n{ADDRESS},{NAME}\nnew.reader@example.com,New\n"),
    )
    .unwrap();
    let out = tidings()
        .env("TIDINGS_DATABASE_URL", &app.db.url)
        .args(["subscribers", "import"])
        .arg(&file)
        .args(["--source", "old list"])
        .output()
        .unwrap();

    // Assert
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.trim(),
        "imported 1, skipped: 0 existing, 1 suppressed, 0 invalid"
    );
    assert_eq!(
        app.db
            .query_strings("SELECT email AS v FROM subscribers WHERE email IS NOT NULL"),
        vec!["new.reader@example.com"]
    );
}

#[tokio::test]
async fn two_erasures_at_once_erase_once() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.confirmed_reader("twice@example.com").await;
    let id = app
        .db
        .query_strings("SELECT id AS v FROM subscribers")
        .remove(0);
    let path = format!("/api/subscribers/{id}");

    let (a, b) = tokio::join!(
        api_delete(&app, &token, &path),
        api_delete(&app, &token, &path)
    );

    let mut codes = [a.status().as_u16(), b.status().as_u16()];
    codes.sort();
    assert_eq!(codes, [200, 404]);
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM consent_events WHERE event = 'erased'"),
        1
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM suppressions"), 1);
}

/// A plus address and every way a URL or form may have written it.
const PLUS: &str = "gina+news@example.com";
const PLUS_FORMS: [&str; 10] = [
    "gina+news@example.com",
    "gina%2bnews%40example.com",
    "gina+news%40example.com",
    "gina%2bnews@example.com",
    "gina news@example.com",
    "gina news%40example.com",
    "gina%20news%40example.com",
    "gina%252bnews%2540example.com",
    "gina+news",
    "gina%2bnews",
];

/// How many of `forms` (lower case) are still somewhere in the database:
/// on PostgreSQL every row of every table as text, on SQLite the bytes of
/// the database file and its write-ahead log.
fn still_stored(app: &TestApp, forms: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    if app.db.is_postgres() {
        let tables = app.db.query_strings(
            "SELECT table_name::text AS v FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
        );
        assert!(tables.len() > 10, "{tables:?}");
        for table in tables {
            for form in forms {
                let n = app.db.count(&format!(
                    "SELECT COUNT(*) FROM {table} t WHERE strpos(lower(t::text), '{form}') > 0"
                ));
                if n > 0 {
                    found.push(format!("{form} in {table}"));
                }
            }
        }
    } else {
        let db_path = app.db.url.trim_start_matches("sqlite://").to_string();
        let mut bytes = std::fs::read(&db_path).unwrap();
        bytes.extend(std::fs::read(format!("{db_path}-wal")).unwrap_or_default());
        let lower = String::from_utf8_lossy(&bytes).to_lowercase();
        found.extend(
            forms
                .iter()
                .filter(|f| lower.contains(*f))
                .map(|f| format!("{f} in the SQLite file")),
        );
    }
    found
}

#[tokio::test]
async fn erasure_leaves_no_encoding_of_the_address_in_any_column() {
    // Arrange: a reader who signed up from a page whose URL named them.
    let app = spawn_app().await;
    let token = app.api_token().await;
    let res = app
        .client
        .post(app.url("/subscriptions"))
        .header(
            "Referer",
            "https://news.example/join?email=gina%2Bnews%40example.com#x",
        )
        .form(&[("email", PLUS)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let mail = app.wait_mail_to(PLUS, 1).await;
    let confirm = crate::helpers::confirmation_token(&mail);
    let res = app
        .post_form("/subscriptions/confirm", &[("token", &confirm)])
        .await;
    assert_eq!(res.status().as_u16(), 200);
    app.confirmed_reader("bystander@example.com").await;
    app.outbox_drained().await;
    let id = app
        .db
        .query_strings(&format!(
            "SELECT id AS v FROM subscribers WHERE email_key = '{PLUS}'"
        ))
        .remove(0);
    // The consent log keeps the page, not its query string or fragment.
    let detail: serde_json::Value = app
        .api_get(&token, &format!("/api/subscribers/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail["consent"][0]["source"], "https://news.example/join");
    // Sources stored before that, with the address in every encoding.
    for form in [
        "gina%2Bnews%40example.com",
        "gina%2bnews%40example.com",
        "gina+news%40example.com",
        "gina+news@example.com",
        "gina%2BNEWS%40EXAMPLE.COM",
        "gina news@example.com",
        "gina%20news%40example.com",
        "gina%252Bnews%2540example.com",
    ] {
        app.db.execute(&format!(
            "INSERT INTO consent_events (subscriber_id, event, occurred_at, source, method) \
             VALUES ('{id}', 'requested', '2026-11-30 00:00:00', \
             'https://news.example/join?email={form}#x', 'form')"
        ));
    }
    assert!(!still_stored(&app, &PLUS_FORMS).is_empty());

    // Act
    let res = api_delete(&app, &token, &format!("/api/subscribers/{id}")).await;

    // Assert: no spelling of the address is left anywhere; the bystander is.
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(still_stored(&app, &PLUS_FORMS), Vec::<String>::new());
    assert!(!still_stored(&app, &["bystander@example.com"]).is_empty());
    let detail: serde_json::Value = app
        .api_get(&token, &format!("/api/subscribers/{id}"))
        .await
        .json()
        .await
        .unwrap();
    let sources: Vec<&str> = detail["consent"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["source"].as_str())
        .collect();
    assert_eq!(sources[0], "https://news.example/join");
    assert_eq!(
        sources
            .iter()
            .filter(|s| **s == tidings::privacy::REMOVED_SOURCE)
            .count(),
        8,
        "{sources:?}"
    );
}
