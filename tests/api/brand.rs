//! The newsletter's brand on the form, the confirmation email and the
//! digest; the digest's news-desk layout; digest_max_articles keeping the
//! HTML part under Gmail's clipping; templates_dir overrides and a broken
//! template stopping start-up.

use serde_json::json;

use crate::helpers::{spawn_app_with, tidings, TestApp};

fn brand(s: &mut std::collections::BTreeMap<String, String>) {
    for (k, v) in [
        ("site_name", "Daily Example"),
        ("site_url", "https://news.example/"),
        ("logo_url", "https://news.example/logo.png"),
        ("accent_color", "#C00"),
        ("postal_address", "1 Press Lane, Springfield"),
        ("privacy_url", "https://news.example/privacy"),
    ] {
        s.insert(k.into(), v.into());
    }
}

async fn article(app: &TestApp, token: &str, body: serde_json::Value) {
    let r = app.api_post(token, "/api/articles", &body).await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn form_and_confirmation_email_name_the_site() {
    let app = spawn_app_with(brand).await;
    let page = app.get("/").await.text().await.unwrap();
    assert!(
        page.contains("Daily Example: join our newsletter"),
        "{page}"
    );
    assert!(page.contains("href=\"https://news.example/privacy\""));
    assert!(page.contains("background: #c00"));

    app.signup("reader@example.com").await;
    let mail = app.wait_mail_to("reader@example.com", 1).await;
    assert_eq!(
        mail.subject().unwrap(),
        "Please confirm your subscription to Daily Example"
    );
    let html = mail.html_body().unwrap();
    assert!(html.contains("name=\"viewport\""));
    assert!(html.contains("max-width:560px"));
    assert!(!html
        .contains("width=\"560\" cellpadding=\"0\" cellspacing=\"0\" style=\"max-width:560px;"));
    assert!(html.contains("alt=\"Daily Example\""));
    assert!(html.contains("1 Press Lane, Springfield"));
    let text = mail.text_body().unwrap();
    assert!(text.contains("Daily Example newsletter"), "{text}");
}

#[tokio::test]
async fn the_digest_has_a_masthead_a_lead_story_bylines_and_a_footer() {
    let app = spawn_app_with(brand).await;
    let reader = "reader@example.com";
    app.confirmed_reader(reader).await;
    let token = app.api_token().await;
    let now = chrono::Utc::now();
    let at = |h: i64| (now - chrono::Duration::hours(h)).to_rfc3339();
    article(&app, &token, json!({
        "url": "https://news.example/lead", "title": "Council votes 27\u{2013}14 <for> the plan",
        "summary": "First paragraph.\n\nSecond paragraph.",
        "image_url": "https://cdn.news.example/lead.jpg", "author": "Ana Reporter",
        "sections": ["Politics", "Local"], "published_at": at(1),
    })).await;
    article(
        &app,
        &token,
        json!({
            "url": "https://news.example/second", "title": "Second story",
            "summary": "Short.", "image_url": "https://cdn.news.example/2.jpg",
            "author": "Bo Writer", "sections": ["Sport"], "published_at": at(2),
        }),
    )
    .await;
    let created: serde_json::Value = app
        .api_post(&token, "/api/digests", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_i64().unwrap();
    let mail = app.wait_mail_to(reader, 2).await;
    let html = mail.html_body().unwrap();
    assert!(!html.to_lowercase().contains("new on tidings.test"));
    assert!(html.contains(
        "src=\"https://news.example/logo.png\" alt=\"Daily Example\" width=\"160\" height=\"40\""
    ));
    assert!(
        html.contains(&format!("href=\"http://tidings.test/archive/{id}\"")),
        "view in browser"
    );
    let lead = html.find("https://cdn.news.example/lead.jpg").unwrap();
    let second = html.find("https://cdn.news.example/2.jpg").unwrap();
    assert!(lead < second, "lead story first");
    assert!(html.contains(
        "alt=\"Council votes 27\u{2013}14 &lt;for&gt; the plan\" width=\"536\" height=\"302\""
    ));
    assert!(html.contains("By Ana Reporter"));
    assert!(html.contains("Politics · Local"));
    assert!(html.contains("<p style=\"margin:0 0 10px;font-size:16px;line-height:1.5;word-break:break-word;\">Second paragraph.</p>"));
    assert!(html.contains("Read more"));
    assert!(html.contains("1 Press Lane, Springfield"));
    assert!(html.contains("href=\"https://news.example/privacy\""));
    assert!(html.contains("http://tidings.test/unsubscribe?token="));
    assert!(
        html.contains("You receive this because you subscribed to the Daily Example newsletter")
    );
    assert!(html.contains("#c00"));
    let text = mail.text_body().unwrap();
    assert!(text.starts_with("Daily Example"), "{text}");
    assert!(text.contains("[Politics · Local] Council votes 27\u{2013}14 <for> the plan"));
    assert!(text.contains("By Bo Writer"));
    assert!(text.contains("Read more: https://news.example/second"));
    assert!(text.contains("1 Press Lane, Springfield"));
}

#[tokio::test]
async fn digest_max_articles_keeps_the_html_part_under_100_kb() {
    let app = spawn_app_with(|_| {}).await;
    let token = app.api_token().await;
    let now = chrono::Utc::now();
    let long = "Full text paragraph with many words in it. ".repeat(110);
    assert!(long.len() < 5000);
    for i in 0..50 {
        article(&app, &token, json!({
            "url": format!("https://news.example/{i}"), "title": format!("Story number {i} with a longer headline"),
            "summary": long, "image_url": format!("https://cdn.news.example/{i}.jpg"),
            "author": "Ana Reporter", "sections": ["News"],
            "published_at": (now - chrono::Duration::minutes(i)).to_rfc3339(),
        })).await;
    }
    let first: serde_json::Value = app
        .api_post(&token, "/api/digests", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["articles"], 30);
    let id = first["id"].as_i64().unwrap();
    let size = app.db.count(&format!(
        "SELECT LENGTH(body_html) FROM digests WHERE id = {id}"
    ));
    assert!(size < 100_000, "HTML part is {size} bytes");
    // The newest 30 went; the other 20 wait for the next digest.
    let html = app.db.query_strings(&format!(
        "SELECT body_html AS v FROM digests WHERE id = {id}"
    ));
    assert!(html[0].contains("Story number 0 "));
    assert!(!html[0].contains("Story number 30 "));
    let second: serde_json::Value = app
        .api_post(&token, "/api/digests", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["articles"], 20);
}

#[tokio::test]
async fn templates_dir_overrides_a_built_in_template() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("emails/confirm")).unwrap();
    std::fs::write(
        dir.path().join("emails/confirm/subject.txt"),
        "Bitte bestätigen: {{ brand.site_name }}",
    )
    .unwrap();
    let path = dir.path().display().to_string();
    let app = spawn_app_with(|s| {
        s.insert("templates_dir".into(), path.clone());
        s.insert("site_name".into(), "Tageblatt".into());
    })
    .await;
    app.signup("leser@example.com").await;
    let mail = app.wait_mail_to("leser@example.com", 1).await;
    assert_eq!(mail.subject().unwrap(), "Bitte bestätigen: Tageblatt");
}

#[test]
fn a_broken_template_or_brand_setting_stops_start_up_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("pages")).unwrap();
    std::fs::write(
        dir.path().join("pages/signup.html"),
        "{% extends \"base.html\" %}\n{% block content %}{% if %}{% endblock %}\n",
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", data.path().join("t.db").display());
    let out = tidings()
        .env("TIDINGS_DATABASE_URL", &db)
        .env("TIDINGS_LISTEN", "127.0.0.1:0")
        .env("TIDINGS_TEMPLATES_DIR", dir.path())
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("pages/signup.html line 2"), "{stderr}");

    for (key, value) in [
        ("TIDINGS_ACCENT_COLOR", "red;background:url(x)"),
        ("TIDINGS_LOGO_URL", "javascript:alert(1)"),
        ("TIDINGS_DIGEST_MAX_ARTICLES", "0"),
        ("TIDINGS_TEMPLATES_DIR", "/no/such/folder"),
        ("TIDINGS_ARCHIVE_PUBLIC", "maybe"),
    ] {
        let out = tidings()
            .env("TIDINGS_DATABASE_URL", &db)
            .env(key, value)
            .arg("migrate")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{key}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let setting = key.trim_start_matches("TIDINGS_").to_lowercase();
        assert!(stderr.contains(&format!("setting {setting}:")), "{stderr}");
    }
}

/// The consent text is a setting; each version's wording is kept, and a
/// reader's record gives the exact text they were shown, after the text
/// changed too.
#[tokio::test]
async fn each_reader_s_consent_record_gives_the_wording_they_saw() {
    let first_text = "Get our morning briefing. We never share your address.";
    let app = spawn_app_with(|s| {
        s.insert("consent_text".into(), first_text.into());
    })
    .await;
    let page = app.get("/").await.text().await.unwrap();
    assert!(page.contains(first_text));
    let first_version = tidings::domain::consent_text_version(first_text);
    assert!(first_version.starts_with("sha256-"), "{first_version}");
    assert!(page.contains(&first_version));
    app.signup("early@example.com").await;
    let token = app.api_token().await;
    let (db, sink, mut settings) = app.shutdown().await;

    let second_text = "Get our morning briefing and offers from partners.";
    settings.insert("consent_text".into(), second_text.into());
    let app = crate::helpers::start(db, sink, settings).await;
    app.signup("late@example.com").await;
    for (email, text) in [
        ("early@example.com", first_text),
        ("late@example.com", second_text),
    ] {
        let list: serde_json::Value = app
            .api_get(&token, &format!("/api/subscribers?q={email}"))
            .await
            .json()
            .await
            .unwrap();
        let id = list["items"][0]["id"].as_str().unwrap().to_string();
        let reader: serde_json::Value = app
            .api_get(&token, &format!("/api/subscribers/{id}"))
            .await
            .json()
            .await
            .unwrap();
        let requested = &reader["consent"][0];
        assert_eq!(requested["event"], "requested");
        assert_eq!(
            requested["consent_text_version"],
            tidings::domain::consent_text_version(text)
        );
        assert_eq!(requested["consent_text"], text);
    }
}

#[tokio::test]
async fn welcome_email_after_confirmation_when_turned_on() {
    let app = spawn_app_with(|s| {
        s.insert("welcome_email".into(), "true".into());
        s.insert("site_name".into(), "Daily Example".into());
    })
    .await;
    let reader = "reader@example.com";
    app.confirmed_reader(reader).await;
    let welcome = app.wait_mail_to(reader, 2).await;
    assert_eq!(
        welcome.subject().unwrap(),
        "Welcome to the Daily Example newsletter"
    );
    let html = welcome.html_body().unwrap();
    assert!(html.contains("href=\"http://tidings.test/archive\""));
    let text = welcome.text_body().unwrap();
    let token = text
        .split("unsubscribe?token=")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap()
        .to_string();
    let r = app
        .post_form(
            &format!("/unsubscribe?token={token}"),
            &[("List-Unsubscribe", "One-Click")],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        app.db.query_strings("SELECT status AS v FROM subscribers"),
        vec!["unsubscribed"]
    );
}

#[tokio::test]
async fn no_welcome_email_by_default() {
    let app = spawn_app_with(|_| {}).await;
    let reader = "reader@example.com";
    app.confirmed_reader(reader).await;
    app.outbox_drained().await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.sink.messages_to(reader).len(), 1);
}
