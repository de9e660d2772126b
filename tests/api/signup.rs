//! Double opt-in: signup, confirmation mail through the outbox, consent.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{confirmation_token, spawn_app, spawn_app_with, start, wait_until};

#[tokio::test]
async fn signup_page_has_the_form_consent_text_and_honeypot() {
    let app = spawn_app().await;
    let res = app.get("/").await;
    assert_eq!(res.status().as_u16(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("We respect your privacy and will never share your information."));
    assert!(html.contains("name=\"email\""));
    assert!(html.contains("<label for=\"email\">"));
    assert!(html.contains("name=\"website\""), "honeypot field");
    assert!(html.contains("consent_version"));
}

#[tokio::test]
async fn happy_path_form_signup_confirm_and_consent_log() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/subscriptions"))
        .header("User-Agent", "TestBrowser/1.0")
        .header("Referer", "https://news.example/articles/42")
        .form(&[("email", "Reader@Example.COM"), ("name", "Ann Reader")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.text().await.unwrap().contains("Check your inbox"));

    let mail = app.wait_mail_to("Reader@example.com", 1).await;
    assert!(mail.subject().unwrap().contains("confirm"));
    assert!(mail.header("Message-ID").is_some());
    assert!(mail.header("Date").is_some());
    assert!(mail.html_body().unwrap().contains("Ann Reader"));
    let token = confirmation_token(&mail);

    // A link scanner's GET only shows a button.
    let page = app
        .get(&format!("/subscriptions/confirm?token={token}"))
        .await;
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("method=\"post\"") && html.contains(&token));
    assert_eq!(
        app.db.query_strings("SELECT status AS v FROM subscribers"),
        vec!["pending"]
    );

    let res = app
        .client
        .post(app.url("/subscriptions/confirm"))
        .header("User-Agent", "ConfirmBrowser/2.0")
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        app.db.query_strings("SELECT status AS v FROM subscribers"),
        vec!["confirmed"]
    );
    assert_eq!(
        app.db.query_strings("SELECT email AS v FROM subscribers"),
        vec!["Reader@example.com"]
    );

    let token_api = app.api_token().await;
    let list: serde_json::Value = app
        .api_get(&token_api, "/api/subscribers?status=confirmed&q=reader")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 1);
    let id = list["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(list["items"][0]["email"], "Reader@example.com");
    assert_eq!(list["items"][0]["name"], "Ann Reader");
    assert!(list["items"][0]["confirmed_at"].is_string());
    let detail: serde_json::Value = app
        .api_get(&token_api, &format!("/api/subscribers/{id}"))
        .await
        .json()
        .await
        .unwrap();
    let consent = detail["consent"].as_array().unwrap();
    assert_eq!(consent.len(), 2);
    assert_eq!(consent[0]["event"], "requested");
    assert_eq!(consent[0]["ip"], "127.0.0.1");
    assert_eq!(consent[0]["user_agent"], "TestBrowser/1.0");
    assert_eq!(consent[0]["source"], "https://news.example/articles/42");
    assert_eq!(consent[0]["method"], "form");
    assert_eq!(
        consent[0]["consent_text_version"],
        tidings::domain::CONSENT_TEXT_VERSION
    );
    assert_eq!(consent[1]["event"], "confirmed");
    assert_eq!(consent[1]["user_agent"], "ConfirmBrowser/2.0");
}

#[tokio::test]
async fn every_spelling_of_a_domain_is_one_reader_kept_in_ascii() {
    // Arrange
    let app = spawn_app().await;
    let token = app.api_token().await;

    // Act: the same reader typed four ways, through the form and as JSON.
    assert_eq!(app.signup("a@example.com").await.status().as_u16(), 200);
    assert_eq!(
        app.signup("a@ｅｘａｍｐｌｅ.com").await.status().as_u16(),
        200
    );
    let res = app
        .post_json(
            "/subscriptions",
            &json!({"email": "a@ＥＸＡＭＰＬＥ．ＣＯＭ"}),
        )
        .await;
    assert_eq!(res.status().as_u16(), 202);
    let res = app
        .post_json("/subscriptions", &json!({"email": "leser@Bücher.example"}))
        .await;
    assert_eq!(res.status().as_u16(), 202);
    let res = app
        .post_json(
            "/subscriptions",
            &json!({"email": "leser@XN--BCHER-KVA.example"}),
        )
        .await;
    assert_eq!(res.status().as_u16(), 202);
    let bad = app
        .post_json("/subscriptions", &json!({"email": "a@exa_mple.com"}))
        .await;

    // Assert: one row each, in ASCII; the full-width spellings got the
    // same answer and no second link (the first is recent).
    let mut emails = app
        .db
        .query_strings("SELECT email || '|' || email_key AS v FROM subscribers");
    emails.sort();
    assert_eq!(
        emails,
        [
            "a@example.com|a@example.com",
            "leser@xn--bcher-kva.example|leser@xn--bcher-kva.example",
        ]
    );
    app.wait_mail_to("a@example.com", 1).await;
    app.outbox_drained().await;
    assert_eq!(app.sink.messages_to("a@example.com").len(), 1);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM outbox"), 2);
    let list: serde_json::Value = app
        .api_get(&token, "/api/subscribers?q=example.com")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 1);
    assert_eq!(bad.status().as_u16(), 422);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(body["field"], "email");
}

#[tokio::test]
async fn confirm_is_idempotent() {
    let app = spawn_app().await;
    let token = app.confirmed_reader("twice@example.com").await;
    let res = app
        .post_form("/subscriptions/confirm", &[("token", &token)])
        .await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM consent_events WHERE event = 'confirmed'"),
        1
    );
}

#[tokio::test]
async fn json_signup_and_validation_errors() {
    let app = spawn_app().await;
    let res = app
        .post_json("/subscriptions", &json!({"email": "json@example.com"}))
        .await;
    assert_eq!(res.status().as_u16(), 202);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap(),
        json!({"status": "pending"})
    );
    app.wait_mail_to("json@example.com", 1).await;
    assert_eq!(
        app.db
            .query_strings("SELECT method AS v FROM consent_events"),
        vec!["api"]
    );

    for (body, field) in [
        (json!({"email": "not-an-address"}), "email"),
        (json!({}), "email"),
        (
            json!({"email": "a@example.com", "name": "x".repeat(101)}),
            "name",
        ),
        (
            json!({"email": "a@example.com", "name": "Eve\r\nBcc: x@evil.test"}),
            "name",
        ),
        (json!({"email": 42}), "email"),
    ] {
        let res = app.post_json("/subscriptions", &body).await;
        assert_eq!(res.status().as_u16(), 422, "{body}");
        let err: serde_json::Value = res.json().await.unwrap();
        assert_eq!(err["field"], field, "{body}");
        assert!(err["error"].as_str().unwrap().len() > 3);
    }
    // Nothing was stored by the bad requests.
    assert_eq!(app.db.count("SELECT COUNT(*) FROM subscribers"), 1);
}

#[tokio::test]
async fn invalid_form_rerenders_with_message_and_values() {
    let app = spawn_app().await;
    let res = app
        .post_form(
            "/subscriptions",
            &[("email", "broken@"), ("name", "Bo <b>")],
        )
        .await;
    assert_eq!(res.status().as_u16(), 422);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("Email is not a valid email address"),
        "{html}"
    );
    assert!(html.contains("value=\"broken@\""));
    assert!(html.contains("Bo &lt;b&gt;"), "typed values are escaped");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM subscribers"), 0);
}

#[tokio::test]
async fn no_enumeration_same_answer_for_every_state() {
    let app = spawn_app().await;
    app.confirmed_reader("confirmed@example.com").await;
    app.signup("pending@example.com").await;
    let answers = [
        app.signup("fresh@example.com").await,
        app.signup("pending@example.com").await,
        app.signup("confirmed@example.com").await,
    ];
    let mut bodies = Vec::new();
    for res in answers {
        assert_eq!(res.status().as_u16(), 200);
        bodies.push(res.text().await.unwrap());
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    for email in ["new@example.com", "confirmed@example.com"] {
        let res = app
            .post_json("/subscriptions", &json!({"email": email}))
            .await;
        assert_eq!(res.status().as_u16(), 202);
        assert_eq!(res.text().await.unwrap(), "{\"status\":\"pending\"}");
    }
    // A confirmed reader who signs up again gets no new mail.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.sink.messages_to("confirmed@example.com").len(), 1);
}

#[tokio::test]
async fn pending_address_gets_a_new_link_at_most_every_few_minutes() {
    let app = spawn_app().await;
    app.signup("again@example.com").await;
    app.wait_mail_to("again@example.com", 1).await;
    app.signup("again@example.com").await;
    app.outbox_drained().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.sink.messages_to("again@example.com").len(), 1);
    // Six minutes later (moved back in the database), a new link goes out.
    let past = if app.db.is_postgres() {
        "NOW() AT TIME ZONE 'UTC' - INTERVAL '6 minutes'"
    } else {
        "datetime('now', '-6 minutes')"
    };
    app.db.execute(&format!(
        "UPDATE subscribers SET last_confirmation_at = {past}"
    ));
    app.signup("again@example.com").await;
    let second = app.wait_mail_to("again@example.com", 2).await;
    let first = app.sink.messages_to("again@example.com")[0].clone();
    assert_ne!(confirmation_token(&first), confirmation_token(&second));
    // Both links work until one is used.
    let res = app
        .post_form(
            "/subscriptions/confirm",
            &[("token", &confirmation_token(&first))],
        )
        .await;
    assert_eq!(res.status().as_u16(), 200);
}

#[tokio::test]
async fn unsubscribed_reader_signing_up_again_gets_a_fresh_opt_in() {
    let app = spawn_app().await;
    app.confirmed_reader("back@example.com").await;
    let id = app
        .db
        .query_strings("SELECT id AS v FROM subscribers")
        .remove(0);
    let token = tidings::domain::token::unsubscribe_token(&app.state.secret, &id);
    let res = app
        .post_form(&format!("/unsubscribe?token={token}"), &[])
        .await;
    assert_eq!(res.status().as_u16(), 200);
    app.signup("back@example.com").await;
    app.wait_mail_to("back@example.com", 2).await;
    assert_eq!(
        app.db.query_strings("SELECT status AS v FROM subscribers"),
        vec!["pending"]
    );
}

#[tokio::test]
async fn honeypot_answers_normally_and_stores_nothing() {
    let app = spawn_app().await;
    let normal = app.signup("person@example.com").await.text().await.unwrap();
    let res = app
        .post_form(
            "/subscriptions",
            &[
                ("email", "bot@example.com"),
                ("website", "http://spam.example"),
            ],
        )
        .await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.text().await.unwrap(), normal);
    app.outbox_drained().await;
    assert_eq!(app.db.count("SELECT COUNT(*) FROM subscribers"), 1);
    assert!(app.sink.messages_to("bot@example.com").is_empty());
}

#[tokio::test]
async fn expired_and_unknown_tokens() {
    let app = spawn_app().await;
    app.signup("late@example.com").await;
    let token = confirmation_token(&app.wait_mail_to("late@example.com", 1).await);
    let past = if app.db.is_postgres() {
        "NOW() AT TIME ZONE 'UTC' - INTERVAL '1 hour'"
    } else {
        "datetime('now', '-1 hour')"
    };
    app.db.execute(&format!(
        "UPDATE confirmation_tokens SET expires_at = {past}"
    ));
    let res = app
        .post_form("/subscriptions/confirm", &[("token", &token)])
        .await;
    assert_eq!(res.status().as_u16(), 410);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("action=\"/subscriptions\""),
        "offers a new link"
    );
    assert!(html.contains("late@example.com"));
    assert_eq!(
        app.db.query_strings("SELECT status AS v FROM subscribers"),
        vec!["pending"]
    );

    let unknown = "A".repeat(32);
    let res = app
        .post_form("/subscriptions/confirm", &[("token", &unknown)])
        .await;
    assert_eq!(res.status().as_u16(), 404);
    let res = app
        .get(&format!("/subscriptions/confirm?token={unknown}"))
        .await;
    assert_eq!(res.status().as_u16(), 404);
    let res = app.get("/subscriptions/confirm").await;
    assert_eq!(res.status().as_u16(), 404);
}

#[tokio::test]
async fn confirm_and_unsubscribe_answer_json_when_asked() {
    let app = spawn_app().await;
    let post_json = |path: &str, body: serde_json::Value| {
        app.client
            .post(app.url(path))
            .header("Accept", "application/json")
            .json(&body)
            .send()
    };
    // Unknown and malformed links.
    let res = post_json("/subscriptions/confirm", json!({"token": "A".repeat(32)}))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
    assert!(res.json::<serde_json::Value>().await.unwrap()["error"].is_string());
    let res = app
        .client
        .post(app.url("/subscriptions/confirm"))
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["field"],
        "token"
    );
    let res = post_json("/unsubscribe?token=forged", json!({}))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
    assert!(res.json::<serde_json::Value>().await.unwrap()["error"].is_string());

    // An expired link, then a fresh one confirmed with a JSON body.
    app.signup("json@example.com").await;
    let token = confirmation_token(&app.wait_mail_to("json@example.com", 1).await);
    app.db
        .execute("UPDATE confirmation_tokens SET expires_at = created_at");
    let res = post_json("/subscriptions/confirm", json!({"token": token}))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 410);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "expired");
    assert!(!body.to_string().contains("json@example.com"));
    app.db
        .execute("UPDATE confirmation_tokens SET expires_at = '2999-01-01 00:00:00'");
    let res = post_json("/subscriptions/confirm", json!({"token": token}))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap(),
        json!({"status": "confirmed"})
    );
}

#[tokio::test]
async fn hostile_input_gets_4xx_and_is_escaped() {
    let app = spawn_app().await;
    // HTML in a name is stored as typed and escaped in the email.
    let res = app
        .post_form(
            "/subscriptions",
            &[
                ("email", "html@example.com"),
                ("name", "<script>alert(1)</script>"),
            ],
        )
        .await;
    assert_eq!(res.status().as_u16(), 200);
    let mail = app.wait_mail_to("html@example.com", 1).await;
    let html = mail.html_body().unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;"));

    // CRLF in the name cannot reach a header.
    let res = app
        .post_form(
            "/subscriptions",
            &[
                ("email", "crlf@example.com"),
                ("name", "Eve\r\nBcc: victim@example.com"),
            ],
        )
        .await;
    assert_eq!(res.status().as_u16(), 422);

    // 3 MB body.
    let big = "a".repeat(3 * 1024 * 1024);
    let res = app
        .client
        .post(app.url("/subscriptions"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("email=x%40example.com&name={big}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 413);

    // Broken JSON, wrong shape, invalid UTF-8 (raw and percent-encoded).
    for (ctype, body) in [
        ("application/json", b"{\"email\": ".to_vec()),
        ("application/json", b"[1,2]".to_vec()),
        (
            "application/json",
            b"{\"email\": \"\xff@example.com\"}".to_vec(),
        ),
        (
            "application/x-www-form-urlencoded",
            b"email=\xff\xfe@example.com".to_vec(),
        ),
        (
            "application/x-www-form-urlencoded",
            b"email=%FF%FE%40example.com".to_vec(),
        ),
    ] {
        let res = app
            .client
            .post(app.url("/subscriptions"))
            .header("Content-Type", ctype)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        assert!(
            (400..500).contains(&status),
            "{ctype} {body:?} gave {status}"
        );
    }

    // An internationalised domain is a valid address, kept in ASCII.
    let res = app
        .post_json("/subscriptions", &json!({"email": "leser@bücher.example"}))
        .await;
    assert_eq!(res.status().as_u16(), 202);
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM subscribers WHERE email = 'leser@xn--bcher-kva.example'"),
        1
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM subscribers"), 2);
}

#[tokio::test]
async fn smtp_down_at_first_then_back_mail_arrives_once() {
    let app = spawn_app().await;
    app.sink.stop().await;
    app.signup("patient@example.com").await;
    wait_until(Duration::from_secs(10), || async {
        app.db
            .count("SELECT COUNT(*) FROM outbox WHERE attempts >= 1 AND status = 'queued'")
            == 1
    })
    .await;
    assert!(app.db.query_strings("SELECT last_error AS v FROM outbox")[0].contains("connect"));
    app.sink.restart().await;
    app.wait_mail_to("patient@example.com", 1).await;
    app.outbox_drained().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.sink.messages_to("patient@example.com").len(), 1);
}

#[tokio::test]
async fn temporary_refusal_is_retried_and_permanent_one_bounces() {
    let app = spawn_app().await;
    app.sink.set_mode(crate::support::smtp::Mode::TempFail);
    app.signup("later@example.com").await;
    wait_until(Duration::from_secs(10), || async {
        app.sink.temp_failures() >= 1
    })
    .await;
    app.sink.set_mode(crate::support::smtp::Mode::Accept);
    app.wait_mail_to("later@example.com", 1).await;

    app.sink.reject_recipient("nobody@example.com");
    app.signup("nobody@example.com").await;
    wait_until(Duration::from_secs(10), || async {
        app.db
            .count("SELECT COUNT(*) FROM outbox WHERE status = 'failed'")
            == 1
    })
    .await;
    assert_eq!(
        app.db.query_strings(
            "SELECT status AS v FROM subscribers WHERE email = 'nobody@example.com'"
        ),
        vec!["bounced"]
    );
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM consent_events WHERE event = 'bounced'"),
        1
    );
}

#[tokio::test]
async fn raw_confirmation_token_is_never_stored() {
    let app = spawn_app().await;
    app.signup("secret@example.com").await;
    let token = confirmation_token(&app.wait_mail_to("secret@example.com", 1).await);
    let dump = if app.db.is_postgres() {
        app.db
            .query_strings(
                "SELECT COALESCE((SELECT string_agg(t::text, ' ') FROM outbox t), '') || \
                 COALESCE((SELECT string_agg(t::text, ' ') FROM confirmation_tokens t), '') || \
                 COALESCE((SELECT string_agg(t::text, ' ') FROM subscribers t), '') || \
                 COALESCE((SELECT string_agg(t::text, ' ') FROM consent_events t), '') AS v",
            )
            .join(" ")
    } else {
        let path = app.db.url.trim_start_matches("sqlite://").to_string();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
        String::from_utf8_lossy(&bytes).into_owned()
    };
    assert!(
        dump.contains(&tidings::domain::token::hash(&token)),
        "the hash is there"
    );
    assert!(!dump.contains(&token), "the raw token is not");
}

#[tokio::test]
async fn signups_are_rate_limited_per_ip() {
    let app = spawn_app_with(|s| {
        s.insert("signup_rate_per_minute".into(), "2".into());
    })
    .await;
    assert_eq!(app.signup("r1@example.com").await.status().as_u16(), 200);
    assert_eq!(app.signup("r2@example.com").await.status().as_u16(), 200);
    let res = app.signup("r3@example.com").await;
    assert_eq!(res.status().as_u16(), 429);
    let res = app
        .post_json("/subscriptions", &json!({"email": "r4@example.com"}))
        .await;
    assert_eq!(res.status().as_u16(), 429);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM subscribers"), 2);
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let app = spawn_app_with(|s| {
        s.insert("trusted_proxies".into(), "127.0.0.1".into());
    })
    .await;
    app.client
        .post(app.url("/subscriptions"))
        .header("X-Forwarded-For", "203.0.113.9")
        .form(&[("email", "proxied@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        app.db.query_strings("SELECT ip AS v FROM consent_events"),
        vec!["203.0.113.9"]
    );

    let direct = spawn_app().await;
    direct
        .client
        .post(direct.url("/subscriptions"))
        .header("X-Forwarded-For", "203.0.113.9")
        .form(&[("email", "direct@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        direct
            .db
            .query_strings("SELECT ip AS v FROM consent_events"),
        vec!["127.0.0.1"]
    );
}

#[tokio::test]
async fn cors_allows_configured_origins_only() {
    let app = spawn_app_with(|s| {
        s.insert("cors_origins".into(), "https://news.example".into());
    })
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/subscriptions"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "content-type")
            .send()
    };
    let ok = preflight("https://news.example").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://news.example"
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn api_needs_a_valid_token() {
    let app = spawn_app().await;
    assert_eq!(app.get("/api/subscribers").await.status().as_u16(), 401);
    let res = app.api_get("wrong-token", "/api/subscribers").await;
    assert_eq!(res.status().as_u16(), 401);
    assert!(res.json::<serde_json::Value>().await.unwrap()["error"].is_string());
    // The token is checked before the query is read.
    for path in ["/api/subscribers?page=abc", "/api/articles?limit=x"] {
        assert_eq!(
            app.api_get("wrong-token", path).await.status(),
            401,
            "{path}"
        );
    }
    let token = app.api_token().await;
    assert_eq!(
        app.api_get(&token, "/api/subscribers")
            .await
            .status()
            .as_u16(),
        200
    );
    let res = app.api_get(&token, "/api/subscribers?status=nope").await;
    assert_eq!(res.status().as_u16(), 422);
    let res = app.api_get(&token, "/api/subscribers?page=abc").await;
    assert_eq!(res.status().as_u16(), 400);
    let res = app.api_get(&token, "/api/subscribers/does-not-exist").await;
    assert_eq!(res.status().as_u16(), 404);
}

#[test]
fn no_address_reaches_the_info_log() {
    use std::io::{BufRead, BufReader, Read};
    const PRIVATE: &str = "private.person@example.com";
    const REFUSED: &str = "refused.person@example.com";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sink = rt.block_on(crate::support::smtp::MailSink::start());
    // The server refuses this one quoting the address, as Postfix does.
    sink.reject_recipient(REFUSED);
    let db = crate::helpers::TestDb::new();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .env("TIDINGS_DATABASE_URL", &db.url)
        .env("TIDINGS_LISTEN", "127.0.0.1:0")
        .env("TIDINGS_SMTP_URL", sink.url())
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut port = 0u16;
    let mut line = String::new();
    while stdout.read_line(&mut line).unwrap() > 0 {
        if let Some(p) = line.split("(port ").nth(1) {
            port = p
                .trim_end_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .unwrap();
            break;
        }
        line.clear();
    }
    assert!(port > 0, "startup line names the port");
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
        for email in [PRIVATE, PRIVATE, REFUSED] {
            let res = client
                .post(url("/subscriptions"))
                .form(&[("email", email), ("name", "Private Person")])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status().as_u16(), 200);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while sink.messages_to(PRIVATE).is_empty() || sink.perm_failures() == 0 {
            assert!(tokio::time::Instant::now() < deadline, "mail and refusal");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        // An expired link: its outcome carries the address, for the page.
        let token = confirmation_token(&sink.messages_to(PRIVATE)[0]);
        db.execute("UPDATE confirmation_tokens SET expires_at = created_at");
        let res = client
            .post(url("/subscriptions/confirm"))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 410);
        // Searches for the address: a wrong API token (401), no console
        // session (redirect to the login page).
        let q = "?q=private.person%40example.com";
        let res = client
            .get(url(&format!("/api/subscribers{q}")))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 401);
        let res = client
            .get(url(&format!("/admin/subscribers{q}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 303);
        tokio::time::sleep(Duration::from_millis(300)).await;
    });
    let _ = child.kill();
    let _ = child.wait();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    // Each of those was logged, just not the address.
    assert!(log.contains("signup"), "the signup was logged: {log}");
    assert!(log.contains("send failed for good"), "{log}");
    assert!(log.contains("r***@e***.com"), "the refusal, masked: {log}");
    assert!(log.contains("outcome=\"expired\""), "{log}");
    for secret in ["private.person", "refused.person", "%40example"] {
        assert!(!log.contains(secret), "{secret} in: {log}");
        assert!(!rest.contains(secret), "{secret} in: {rest}");
    }
}

#[tokio::test]
async fn outbox_row_of_a_crashed_worker_is_sent_again_after_its_lease() {
    let app = spawn_app().await;
    app.signup("leased@example.com").await;
    app.wait_mail_to("leased@example.com", 1).await;
    app.outbox_drained().await;
    // As if a worker claimed the row and died before settling it.
    let past = if app.db.is_postgres() {
        "NOW() AT TIME ZONE 'UTC' - INTERVAL '1 minute'"
    } else {
        "datetime('now', '-1 minute')"
    };
    app.db.execute(&format!(
        "UPDATE outbox SET status = 'sending', locked_until = {past}"
    ));
    app.state.outbox.wake();
    app.wait_mail_to("leased@example.com", 2).await;
    app.outbox_drained().await;
    assert_eq!(
        app.db.query_strings("SELECT status AS v FROM outbox"),
        vec!["sent"]
    );
}

#[tokio::test]
async fn concurrent_signups_share_commits_and_each_gets_its_own_link() {
    let app = spawn_app().await;
    // One address known before (its link is fresh: nothing more is sent).
    app.signup("known@example.com").await;
    app.wait_mail_to("known@example.com", 1).await;
    // 40 new addresses, the known one among them, and one address five
    // times over.
    let mut addresses: Vec<String> = (0..40).map(|i| format!("crowd{i}@example.com")).collect();
    addresses.insert(20, "known@example.com".to_string());
    addresses.extend(std::iter::repeat_n("twice@example.com".to_string(), 5));
    let answers = futures_util::future::join_all(addresses.iter().map(|a| app.signup(a))).await;
    assert!(answers.iter().all(|r| r.status().as_u16() == 200));

    // A group writes rows only for the readers it inserted: none for the
    // known address, which was handled on its own.
    assert_eq!(app.db.count("SELECT COUNT(*) FROM subscribers"), 42);
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM consent_events WHERE event = 'requested'"),
        42
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM confirmation_tokens"), 42);
    app.outbox_drained().await;
    assert_eq!(app.sink.messages_to("known@example.com").len(), 1);
    // The repeated address got one link (the rest were within the resend
    // throttle), and every link confirms its own reader.
    assert_eq!(app.sink.messages_to("twice@example.com").len(), 1);
    for address in [
        "crowd0@example.com",
        "crowd39@example.com",
        "twice@example.com",
    ] {
        let token = confirmation_token(&app.wait_mail_to(address, 1).await);
        let res = app
            .post_form("/subscriptions/confirm", &[("token", &token)])
            .await;
        assert_eq!(res.status().as_u16(), 200);
        assert_eq!(
            app.db.query_strings(&format!(
                "SELECT status AS v FROM subscribers WHERE email = '{address}'"
            )),
            vec!["confirmed"]
        );
    }
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM subscribers WHERE status = 'confirmed'"),
        3
    );

    // Every new address was committed by a group transaction (the repeats
    // went one by one), in fewer commits than signups.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let read = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(read("tidings_signup_group_size_sum "), 42.0);
    let groups = read("tidings_signup_group_size_count ");
    assert!(groups < 42.0, "{groups} commits for 42 new addresses");
}

#[tokio::test]
async fn a_stop_gives_handed_over_mail_back_to_the_queue() {
    // One send a second: while the worker waits to send the second mail,
    // the next signups' mails wait in its hand-over queue.
    let app = spawn_app_with(|s| {
        s.insert("send_rate".into(), "1".into());
    })
    .await;
    app.signup("first@example.com").await;
    app.wait_mail_to("first@example.com", 1).await;
    app.signup("second@example.com").await;
    let waiting = ["c@example.com", "d@example.com", "e@example.com"];
    for addr in waiting {
        app.signup(addr).await;
    }
    let (db, sink, settings) = app.shutdown().await;
    assert_eq!(
        db.count("SELECT COUNT(*) FROM outbox WHERE status = 'sending'"),
        0,
        "nothing stays leased to a stopped worker"
    );
    assert!(
        db.count(
            "SELECT COUNT(*) FROM outbox WHERE status = 'queued' AND attempts = 0 \
             AND locked_until IS NULL"
        ) >= 1,
        "some mail was still waiting when the worker stopped"
    );
    // Back at once (not after the 120 s lease), each mail once.
    let app = start(db, sink, settings).await;
    for addr in waiting {
        app.wait_mail_to(addr, 1).await;
    }
    app.outbox_drained().await;
    for addr in ["first@example.com", "second@example.com"]
        .iter()
        .chain(&waiting)
    {
        assert_eq!(app.sink.messages_to(addr).len(), 1, "{addr}");
    }
}

#[tokio::test]
async fn mail_commands_are_pipelined_where_the_server_offers_it() {
    let app = spawn_app().await;
    app.signup("piped@example.com").await;
    app.signup("piped2@example.com").await;
    app.wait_mail_to("piped@example.com", 1).await;
    app.wait_mail_to("piped2@example.com", 1).await;
    assert_eq!(app.sink.pipelined(), 2, "MAIL, RCPT and DATA in one go");

    // A server without PIPELINING gets one command at a time, and the mail.
    let app = spawn_app().await;
    app.sink.set_pipelining(false);
    app.signup("stepwise@example.com").await;
    app.wait_mail_to("stepwise@example.com", 1).await;
    assert_eq!(app.sink.pipelined(), 0);
}
