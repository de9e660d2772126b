//! The reader's own page: GET/POST /preferences from every email's footer.
//! Pause, frequency and sections decide who a digest goes to (and what is
//! in it); name, address, export, erasure and unsubscribe work from the
//! page; every change leaves a `preferences` consent event; bad links and
//! floods get a clear 4xx and change nothing.

use std::time::Duration;

use serde_json::json;

use crate::digests::wait_digest_sent;
use crate::helpers::{confirmation_token, spawn_app, TestApp};

/// A signed preferences token for `id`, issued `days_ago`.
fn token_for(app: &TestApp, id: &str, days_ago: i64) -> String {
    let today = tidings::domain::token::day_of(chrono::Utc::now().naive_utc());
    tidings::domain::token::preferences_token(&app.state.secret, id, today - days_ago)
}

fn id_of(app: &TestApp, email: &str) -> String {
    app.db
        .query_strings(&format!(
            "SELECT id AS v FROM subscribers WHERE email = '{email}'"
        ))
        .remove(0)
}

/// A confirmed reader and their preferences token.
async fn reader(app: &TestApp, email: &str) -> (String, String) {
    app.confirmed_reader(email).await;
    let id = id_of(app, email);
    let token = token_for(app, &id, 0);
    (id, token)
}

async fn post(app: &TestApp, token: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let mut form = vec![("token", token)];
    form.extend_from_slice(fields);
    app.post_form("/preferences", &form).await
}

fn events(app: &TestApp, id: &str, event: &str) -> i64 {
    app.db.count(&format!(
        "SELECT COUNT(*) FROM consent_events WHERE subscriber_id = '{id}' AND event = '{event}'"
    ))
}

async fn article(app: &TestApp, api: &str, url: &str, title: &str, sections: &[&str]) {
    let res = app
        .api_post(
            api,
            "/api/articles",
            &json!({"url": url, "title": title, "sections": sections}),
        )
        .await;
    assert!(res.status().is_success(), "{:?}", res.text().await);
}

/// Composes a digest of what is new, waits until it is sent; returns its
/// id and its total.
async fn digest(app: &TestApp, api: &str) -> (i64, i64) {
    let res = app.api_post(api, "/api/digests", &json!({})).await;
    assert_eq!(res.status().as_u16(), 201);
    let body: serde_json::Value = res.json().await.unwrap();
    let id = body["id"].as_i64().unwrap();
    let status = wait_digest_sent(app, api, id).await;
    (id, status["total"].as_i64().unwrap())
}

/// Digest emails each address got (confirmations not counted).
fn digests_to(app: &TestApp, email: &str) -> Vec<crate::support::smtp::ReceivedMail> {
    app.sink
        .messages_to(email)
        .into_iter()
        .filter(|m| m.header("List-Id").is_some())
        .collect()
}

/// Path and query of an absolute link under the test base_url.
fn local(link: &str) -> String {
    link.trim_start_matches("http://tidings.test").to_string()
}

#[tokio::test]
async fn every_digest_links_the_readers_own_page() {
    let app = spawn_app().await;
    let api = app.api_token().await;
    let (_, _) = reader(&app, "ann@example.com").await;
    app.outbox_drained().await;
    article(&app, &api, "https://news.example/a", "Harbour reopens", &[]).await;
    digest(&app, &api).await;

    let mail = digests_to(&app, "ann@example.com").remove(0);
    let link = mail
        .links()
        .into_iter()
        .find(|l| l.contains("/preferences?token="))
        .expect("a preferences link in the digest");
    assert!(mail.text_body().unwrap().contains("/preferences?token="));
    let res = app.get(&local(&link)).await;
    assert_eq!(res.status().as_u16(), 200);
    let page = res.text().await.unwrap();
    assert!(page.contains("ann@example.com"), "{page}");
    assert!(page.contains("Take a break"));
}

#[tokio::test]
async fn the_welcome_email_links_the_readers_own_page() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.insert("welcome_email".into(), "true".into());
    })
    .await;
    app.confirmed_reader("wes@example.com").await;
    let welcome = app.wait_mail_to("wes@example.com", 2).await;
    let link = welcome
        .links()
        .into_iter()
        .find(|l| l.contains("/preferences?token="))
        .expect("a preferences link in the welcome email");
    assert_eq!(app.get(&local(&link)).await.status().as_u16(), 200);
}

#[tokio::test]
async fn forged_or_expired_links_get_a_clear_4xx_and_change_nothing() {
    let app = spawn_app().await;
    let (id, good) = reader(&app, "bob@example.com").await;
    let forged = format!(
        "{id}.{}.AAAAAAAAAAAAAAAAAAAAAA",
        good.split('.').nth(1).unwrap()
    );
    let expired = token_for(&app, &id, 91);

    for (token, status) in [
        ("", 404),
        ("nonsense", 404),
        (forged.as_str(), 404),
        (expired.as_str(), 410),
    ] {
        let res = app.get(&format!("/preferences?token={token}")).await;
        assert_eq!(res.status().as_u16(), status, "GET {token}");
        let page = res.text().await.unwrap();
        assert!(!page.contains("bob@example.com"));
        let res = post(&app, token, &[("action", "pause"), ("weeks", "1")]).await;
        assert_eq!(res.status().as_u16(), status, "POST {token}");
    }
    let res = app.get(&format!("/preferences?token={expired}")).await;
    assert!(res.text().await.unwrap().contains("expired"));
    // Bad fields are a 422 on the page; a broken body a 400.
    for fields in [
        vec![("action", "pause"), ("weeks", "3")],
        vec![("action", "launch")],
        vec![("action", "settings"), ("frequency", "hourly")],
        vec![("action", "settings"), ("name", "x\u{7}y")],
        vec![("action", "email"), ("email", "not an address")],
    ] {
        let res = post(&app, &good, &fields).await;
        assert_eq!(res.status().as_u16(), 422, "{fields:?}");
    }
    let res = app
        .client
        .post(app.url("/preferences"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(vec![b't', b'=', 0xff, 0xfe])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    assert_eq!(events(&app, &id, "preferences"), 0, "nothing changed");
    assert_eq!(
        app.db.count(&format!(
            "SELECT COUNT(*) FROM subscribers WHERE id = '{id}' AND paused_until IS NULL \
             AND frequency = 'every' AND choice_id IS NULL AND name IS NULL"
        )),
        1
    );
}

#[tokio::test]
async fn a_flood_of_requests_gets_429() {
    let app = spawn_app().await;
    let mut statuses = Vec::new();
    for _ in 0..40 {
        statuses.push(app.get("/preferences?token=x.1.y").await.status().as_u16());
    }
    assert_eq!(statuses[0], 404);
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 404 || *s == 429));
}

#[tokio::test]
async fn a_paused_reader_gets_nothing_until_the_pause_ends_by_itself() {
    let app = spawn_app().await;
    let api = app.api_token().await;
    let (paused, token) = reader(&app, "pat@example.com").await;
    reader(&app, "sam@example.com").await;
    app.outbox_drained().await;

    let res = post(&app, &token, &[("action", "pause"), ("weeks", "2")]).await;
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.text().await.unwrap().contains("Paused until"));
    assert_eq!(events(&app, &paused, "preferences"), 1);

    article(&app, &api, "https://news.example/1", "First story", &[]).await;
    let (_, total) = digest(&app, &api).await;
    assert_eq!(total, 1, "the digest's total is who gets it");
    assert_eq!(digests_to(&app, "sam@example.com").len(), 1);
    assert_eq!(digests_to(&app, "pat@example.com").len(), 0);

    // Two weeks later (the pause is in the past): back by itself.
    app.db.execute(&format!(
        "UPDATE subscribers SET paused_until = '2000-01-01 00:00:00' WHERE id = '{paused}'"
    ));
    article(&app, &api, "https://news.example/2", "Second story", &[]).await;
    let (_, total) = digest(&app, &api).await;
    assert_eq!(total, 2);
    assert_eq!(digests_to(&app, "pat@example.com").len(), 1);
    assert_eq!(digests_to(&app, "sam@example.com").len(), 2);
}

#[tokio::test]
async fn resume_ends_a_pause_at_once() {
    let app = spawn_app().await;
    let api = app.api_token().await;
    let (id, token) = reader(&app, "ria@example.com").await;
    app.outbox_drained().await;
    post(&app, &token, &[("action", "pause"), ("weeks", "4")]).await;
    let res = post(&app, &token, &[("action", "resume")]).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(events(&app, &id, "preferences"), 2);
    article(&app, &api, "https://news.example/r", "Story", &[]).await;
    digest(&app, &api).await;
    assert_eq!(digests_to(&app, "ria@example.com").len(), 1);
}

/// The reader picks one section, every digest, no name.
async fn pick(app: &TestApp, token: &str, section: &str) {
    let fields = [
        ("action", "settings"),
        ("frequency", "every"),
        ("section", section),
        ("name", ""),
    ];
    assert_eq!(post(app, token, &fields).await.status().as_u16(), 200);
}

#[tokio::test]
async fn readers_get_only_their_sections_and_nothing_when_none_match() {
    let app = spawn_app().await;
    let api = app.api_token().await;
    reader(&app, "all@example.com").await;
    let (sport_id, sport) = reader(&app, "sport@example.com").await;
    let (_, sport2) = reader(&app, "sport2@example.com").await;
    let (_, culture) = reader(&app, "culture@example.com").await;
    app.outbox_drained().await;
    // Sections on offer come from the articles.
    article(
        &app,
        &api,
        "https://news.example/old",
        "Old culture piece",
        &["Culture"],
    )
    .await;
    digest(&app, &api).await;
    let page = app
        .get(&format!("/preferences?token={sport}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("value=\"Culture\""), "{page}");

    for (token, section) in [(&sport, "Sport"), (&sport2, "sport"), (&culture, "Culture")] {
        pick(&app, token, section).await;
    }
    assert_eq!(events(&app, &sport_id, "preferences"), 1);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM section_choices"), 2);

    article(
        &app,
        &api,
        "https://news.example/match",
        "Cup final tonight",
        &["Sport"],
    )
    .await;
    article(
        &app,
        &api,
        "https://news.example/world",
        "Summit ends",
        &["World"],
    )
    .await;
    let (id, total) = digest(&app, &api).await;
    assert_eq!(total, 3, "culture matches nothing new");
    // One edition for the one choice that matches part of it.
    assert_eq!(
        app.db.count(&format!(
            "SELECT COUNT(*) FROM digest_editions WHERE digest_id = {id}"
        )),
        1
    );
    only_their_sections(&app);
}

/// What each reader of the sections test got.
fn only_their_sections(app: &TestApp) {
    let all = digests_to(app, "all@example.com");
    assert_eq!(all.len(), 2);
    let full = all[1].text_body().unwrap();
    assert!(full.contains("Cup final tonight") && full.contains("Summit ends"));
    for who in ["sport@example.com", "sport2@example.com"] {
        let mine = digests_to(app, who);
        assert_eq!(mine.len(), 2, "{who}");
        let body = mine[1].text_body().unwrap();
        assert!(body.contains("Cup final tonight"), "{body}");
        assert!(!body.contains("Summit ends"), "{body}");
        assert!(mine[1].html_body().unwrap().contains("Cup final tonight"));
        assert!(!mine[1].html_body().unwrap().contains("Summit ends"));
    }
    assert_eq!(
        digests_to(app, "culture@example.com").len(),
        1,
        "the first one only"
    );
}

#[tokio::test]
async fn a_weekly_reader_gets_at_most_one_digest_a_week() {
    let app = spawn_app().await;
    let api = app.api_token().await;
    let (weekly, token) = reader(&app, "wen@example.com").await;
    let (_, newly) = reader(&app, "new@example.com").await;
    reader(&app, "eve@example.com").await;
    app.outbox_drained().await;
    for t in [&token, &newly] {
        let res = post(&app, t, &[("action", "settings"), ("frequency", "weekly")]).await;
        assert_eq!(res.status().as_u16(), 200);
    }
    // wen chose weekly eight days ago; new just now (and may have had a
    // digest yesterday).
    app.db.execute(&format!(
        "UPDATE subscribers SET frequency_at = '2000-01-01 00:00:00' WHERE id = '{weekly}'"
    ));

    article(&app, &api, "https://news.example/d1", "Monday story", &[]).await;
    let (_, total) = digest(&app, &api).await;
    assert_eq!(total, 2);
    article(&app, &api, "https://news.example/d2", "Tuesday story", &[]).await;
    let (_, total) = digest(&app, &api).await;
    assert_eq!(total, 1, "only the every-digest reader");
    assert_eq!(digests_to(&app, "wen@example.com").len(), 1);
    assert_eq!(digests_to(&app, "new@example.com").len(), 0);
    assert_eq!(digests_to(&app, "eve@example.com").len(), 2);

    // A week on: the weekly readers' next one.
    app.db.execute(
        "UPDATE digests SET audience_at = '2000-01-01 00:00:00'; \
         UPDATE digests SET weekly_before = '1999-12-25 00:00:00' WHERE weekly_before IS NOT NULL;",
    );
    app.db.execute(
        "UPDATE subscribers SET frequency_at = '2000-01-01 00:00:00' WHERE frequency = 'weekly'",
    );
    article(
        &app,
        &api,
        "https://news.example/d3",
        "Next week's story",
        &[],
    )
    .await;
    let (_, total) = digest(&app, &api).await;
    assert_eq!(total, 3);
    assert_eq!(digests_to(&app, "wen@example.com").len(), 2);
    assert_eq!(digests_to(&app, "new@example.com").len(), 1);
}

#[tokio::test]
async fn a_name_change_is_saved_with_a_preferences_event() {
    let app = spawn_app().await;
    let (id, token) = reader(&app, "zoe@example.com").await;
    let res = app
        .client
        .post(app.url("/preferences"))
        .header("User-Agent", "prefs-test")
        .form(&[
            ("token", token.as_str()),
            ("action", "settings"),
            ("name", " Zoë <Example> "),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let page = res.text().await.unwrap();
    assert!(page.contains("Zoë &lt;Example&gt;"), "escaped on the page");
    assert_eq!(
        app.db.query_strings(&format!(
            "SELECT name AS v FROM subscribers WHERE id = '{id}'"
        )),
        ["Zoë <Example>"]
    );
    let event = app.db.query_strings(&format!(
        "SELECT source || ' ' || method || ' ' || user_agent || ' ' || consent_text_version AS v \
         FROM consent_events WHERE subscriber_id = '{id}' AND event = 'preferences'"
    ));
    assert_eq!(event.len(), 1);
    assert!(
        event[0].starts_with("http://tidings.test/preferences settings prefs-test "),
        "{event:?}"
    );
    let long = "x".repeat(101);
    let res = post(
        &app,
        &token,
        &[("action", "settings"), ("name", long.as_str())],
    )
    .await;
    assert_eq!(res.status().as_u16(), 422);
    assert_eq!(events(&app, &id, "preferences"), 1);
}

#[tokio::test]
async fn every_change_writes_a_preferences_event() {
    let app = spawn_app().await;
    let (id, token) = reader(&app, "eva@example.com").await;
    for fields in [
        vec![("action", "settings"), ("frequency", "weekly")],
        vec![("action", "pause"), ("weeks", "1")],
        vec![("action", "resume")],
        vec![("action", "email"), ("email", "eva.new@example.com")],
    ] {
        let before = events(&app, &id, "preferences");
        let res = post(&app, &token, &fields).await;
        assert_eq!(res.status().as_u16(), 200, "{fields:?}");
        assert_eq!(events(&app, &id, "preferences"), before + 1, "{fields:?}");
    }
    let methods = app.db.query_strings(&format!(
        "SELECT method AS v FROM consent_events WHERE subscriber_id = '{id}' \
         AND event = 'preferences' ORDER BY id"
    ));
    assert_eq!(
        methods,
        [
            "settings",
            "pause 1 weeks",
            "resume",
            "new address requested"
        ]
    );
}

#[tokio::test]
async fn export_downloads_the_same_data_as_the_gdpr_export() {
    let app = spawn_app().await;
    let api = app.api_token().await;
    let (id, token) = reader(&app, "exa@example.com").await;
    post(&app, &token, &[("action", "pause"), ("weeks", "1")]).await;
    pick(&app, &token, "Sport").await;
    let res = post(&app, &token, &[("action", "export")]).await;
    assert_eq!(res.status().as_u16(), 200);
    assert!(res
        .headers()
        .get("content-disposition")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    let mut mine: serde_json::Value = res.json().await.unwrap();
    let mut theirs: serde_json::Value = app
        .api_get(&api, &format!("/api/subscribers/{id}/export"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["subscriber"]["email"], "exa@example.com");
    assert_eq!(mine["preferences"]["sections"], json!(["sport"]));
    assert!(mine["preferences"]["paused_until"].is_string());
    mine["exported_at"] = json!(null);
    theirs["exported_at"] = json!(null);
    assert_eq!(mine, theirs);
    assert_eq!(
        events(&app, &id, "preferences"),
        2,
        "reading changes nothing"
    );
}

#[tokio::test]
async fn delete_me_is_the_same_erasure_as_the_api() {
    let app = spawn_app().await;
    let (id, token) = reader(&app, "del@example.com").await;
    let res = post(&app, &token, &[("action", "delete")]).await;
    assert_eq!(res.status().as_u16(), 422, "the box must be ticked");
    assert_eq!(events(&app, &id, "erased"), 0);

    let res = post(&app, &token, &[("action", "delete"), ("confirm", "yes")]).await;
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.text().await.unwrap().contains("deleted"));
    assert_eq!(
        app.db.query_strings(&format!(
            "SELECT status || '/' || COALESCE(email, '-') || '/' || COALESCE(name, '-') AS v \
             FROM subscribers WHERE id = '{id}'"
        )),
        ["erased/-/-"]
    );
    assert_eq!(events(&app, &id, "erased"), 1);
    assert_eq!(
        app.db.count(&format!(
            "SELECT COUNT(*) FROM consent_events WHERE subscriber_id = '{id}' \
             AND (ip IS NOT NULL OR user_agent IS NOT NULL)"
        )),
        0
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM suppressions"), 1);
    // The link leads nowhere now, and a JSON signup of the address is suppressed.
    assert_eq!(
        app.get(&format!("/preferences?token={token}"))
            .await
            .status()
            .as_u16(),
        404
    );
    let res = app
        .post_json("/subscriptions", &json!({"email": "del@example.com"}))
        .await;
    assert_eq!(res.status().as_u16(), 202);
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM subscribers WHERE email = 'del@example.com'"),
        0
    );
}

#[tokio::test]
async fn unsubscribe_from_the_page() {
    let app = spawn_app().await;
    let (id, token) = reader(&app, "una@example.com").await;
    let res = post(&app, &token, &[("action", "unsubscribe")]).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(events(&app, &id, "unsubscribed"), 1);
    let page = app.get(&format!("/preferences?token={token}")).await;
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("Not subscribed"));
    let res = post(&app, &token, &[("action", "pause"), ("weeks", "1")]).await;
    assert_eq!(res.status().as_u16(), 409);
    assert_eq!(events(&app, &id, "preferences"), 0);
}

#[tokio::test]
async fn a_new_address_needs_its_own_confirmation() {
    let app = spawn_app().await;
    let api = app.api_token().await;
    let (id, token) = reader(&app, "old@example.com").await;
    reader(&app, "taken@example.com").await;
    app.outbox_drained().await;

    let res = post(
        &app,
        &token,
        &[("action", "email"), ("email", "New@Example.com")],
    )
    .await;
    assert_eq!(res.status().as_u16(), 200);
    let answer = res.text().await.unwrap();
    assert!(answer.contains("We sent a link to the new address"));
    assert!(answer.contains("New@example.com"), "pending address shown");
    let mail = app.wait_mail_to("New@example.com", 1).await;
    let link = confirmation_token(&mail);
    // Until it is confirmed the old address gets the digest.
    article(&app, &api, "https://news.example/x", "Story", &[]).await;
    digest(&app, &api).await;
    assert_eq!(digests_to(&app, "old@example.com").len(), 1);
    assert_eq!(digests_to(&app, "New@example.com").len(), 0);
    // A GET shows the button (scanners confirm nothing); the POST confirms.
    assert_eq!(
        app.get(&format!("/subscriptions/confirm?token={link}"))
            .await
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        app.db.query_strings(&format!(
            "SELECT email AS v FROM subscribers WHERE id = '{id}'"
        )),
        ["old@example.com"]
    );
    let res = app
        .post_form("/subscriptions/confirm", &[("token", &link)])
        .await;
    assert_eq!(res.status().as_u16(), 200);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("new address is confirmed"));
    assert_eq!(
        app.db.query_strings(&format!(
            "SELECT email AS v FROM subscribers WHERE id = '{id}'"
        )),
        ["New@example.com"]
    );
    assert_eq!(events(&app, &id, "preferences"), 2, "asked, then confirmed");
    article(&app, &api, "https://news.example/y", "Story two", &[]).await;
    digest(&app, &api).await;
    assert_eq!(digests_to(&app, "New@example.com").len(), 1);
    assert_eq!(digests_to(&app, "old@example.com").len(), 1);

    // Someone else's address: the same answer, and nothing is sent there.
    let before = app.sink.messages_to("taken@example.com").len();
    let res = post(
        &app,
        &token,
        &[("action", "email"), ("email", "taken@example.com")],
    )
    .await;
    assert_eq!(res.status().as_u16(), 200);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("We sent a link to the new address"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    app.outbox_drained().await;
    assert_eq!(app.sink.messages_to("taken@example.com").len(), before);
}

/// A screenshot of the whole page (the window as tall as the document
/// while shooting) into target/screenshots/.
async fn full_shot(c: &fantoccini::Client, app: &TestApp, name: &str) {
    let backend = if app.db.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    let (w, h) = c.get_window_size().await.unwrap();
    let (w, h) = (u32::try_from(w).unwrap(), u32::try_from(h).unwrap());
    let height = c
        .execute("return document.documentElement.scrollHeight;", vec![])
        .await
        .unwrap();
    let full = u32::try_from(height.as_u64().unwrap()).unwrap() + 140;
    c.set_window_size(w, full.max(h)).await.unwrap();
    let png = c.screenshot().await.unwrap();
    c.set_window_size(w, h).await.unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let file = crate::browser::screenshot_dir().join(format!("{name}-{backend}.png"));
    std::fs::write(file, png).unwrap();
}

async fn click(c: &fantoccini::Client, css: &str) {
    let element = c.find(fantoccini::Locator::Css(css)).await.unwrap();
    element.click().await.unwrap();
}

async fn wait_for(c: &fantoccini::Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(fantoccini::Locator::Css(css))
        .await
        .unwrap()
}

/// An app with articles in five sections and one named reader: the app,
/// the reader's id and token.
async fn app_with_sections() -> (TestApp, String, String) {
    let app = crate::helpers::spawn_app_with(|s| {
        s.insert("site_name".into(), "The Daily Test".into());
        s.insert("site_url".into(), "https://news.example".into());
    })
    .await;
    let api = app.api_token().await;
    let sections = ["Politics", "Sport", "Culture", "Science", "Local news"];
    for (i, section) in sections.iter().enumerate() {
        let url = format!("https://news.example/{i}");
        article(&app, &api, &url, "A story", &[section]).await;
    }
    let (id, token) = reader(&app, "phone@example.com").await;
    app.db.execute(&format!(
        "UPDATE subscribers SET name = 'Alex Reader' WHERE id = '{id}'"
    ));
    (app, id, token)
}

/// The page in headless Chromium at phone width: nothing wider than the
/// screen, a section and weekly picked and saved with a tap, a pause; the
/// page at 390 px and 1280 px into target/screenshots/.
#[tokio::test]
async fn the_preferences_page_in_chromium_at_phone_width() {
    let (app, id, token) = app_with_sections().await;
    let driver = crate::browser::start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let c = crate::browser::browser(&driver, profile.path()).await;
    let page = app.url(&format!("/preferences?token={token}"));

    c.set_window_size(390, 844).await.unwrap();
    c.goto(&page).await.unwrap();
    let wide = c
        .execute("return document.documentElement.scrollWidth;", vec![])
        .await
        .unwrap();
    let inner = c
        .execute("return window.innerWidth;", vec![])
        .await
        .unwrap();
    assert!(
        wide.as_u64().unwrap() <= inner.as_u64().unwrap(),
        "{wide} > {inner}"
    );
    full_shot(&c, &app, "preferences-phone").await;

    click(&c, "input[name=section][value=Sport]").await;
    click(&c, "input[name=frequency][value=weekly]").await;
    click(&c, "section[aria-labelledby=h-digest] button[type=submit]").await;
    let notice = wait_for(&c, "p.notice").await;
    assert!(notice.text().await.unwrap().starts_with("Saved"));
    assert_eq!(
        app.db.query_strings(&format!(
            "SELECT s.frequency || ' ' || c.sections AS v FROM subscribers s \
             JOIN section_choices c ON c.id = s.choice_id WHERE s.id = '{id}'"
        )),
        ["weekly [\"sport\"]"]
    );
    click(&c, "button[name=weeks][value='2']").await;
    wait_for(&c, ".status.off").await;
    full_shot(&c, &app, "preferences-paused-phone").await;

    c.set_window_size(1280, 900).await.unwrap();
    c.goto(&page).await.unwrap();
    full_shot(&c, &app, "preferences-desktop").await;
    assert_eq!(events(&app, &id, "preferences"), 2);
    c.close().await.unwrap();
}
