//! Editorial control: drafts (digest_mode = draft, or on request), the
//! preview, editing a draft, test sends that touch no reader, and sending
//! a draft now or at a set time.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{spawn_app_with, wait_until, TestApp};

async fn articles(app: &TestApp, token: &str, titles: &[&str]) -> Vec<i64> {
    let now = chrono::Utc::now();
    let mut ids = Vec::new();
    for (i, title) in titles.iter().enumerate() {
        let r: serde_json::Value = app
            .api_post(token, "/api/articles", &json!({
                "url": format!("https://news.example/{i}"), "title": title, "summary": format!("About {title}."),
                "published_at": (now - chrono::Duration::minutes(i as i64 + 1)).to_rfc3339(),
            }))
            .await
            .json()
            .await
            .unwrap();
        ids.push(r["id"].as_i64().unwrap());
    }
    ids
}

async fn patch(app: &TestApp, token: &str, id: i64, body: serde_json::Value) -> reqwest::Response {
    app.client
        .patch(app.url(&format!("/api/digests/{id}")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn draft(app: &TestApp, token: &str) -> i64 {
    let r = app
        .api_post(token, "/api/digests", &json!({"draft": true}))
        .await;
    assert_eq!(r.status(), 201);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "draft");
    assert_eq!(body["recipients"], 0);
    body["id"].as_i64().unwrap()
}

#[tokio::test]
async fn digest_mode_draft_makes_the_cron_compose_a_draft() {
    let app = spawn_app_with(|s| {
        s.insert("digest_mode".into(), "draft".into());
    })
    .await;
    let reader = "reader@example.com";
    app.confirmed_reader(reader).await;
    let token = app.api_token().await;
    articles(&app, &token, &["Morning story"]).await;
    tidings::scheduler::digest_tick(&app.state).await.unwrap();
    assert_eq!(
        app.db.query_strings("SELECT status AS v FROM digests"),
        vec!["draft"]
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM deliveries"), 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app.sink.messages_to(reader).len(),
        1,
        "only the confirmation"
    );
}

#[tokio::test]
async fn preview_and_edit_a_draft() {
    let app = spawn_app_with(|_| {}).await;
    let reader = "reader@example.com";
    app.confirmed_reader(reader).await;
    let token = app.api_token().await;
    let ids = articles(&app, &token, &["Alpha story", "Beta story", "Gamma story"]).await;
    let id = draft(&app, &token).await;

    let preview = app
        .api_get(&token, &format!("/api/digests/{id}/preview"))
        .await;
    assert_eq!(preview.status(), 200);
    assert!(preview.headers().contains_key("tidings-html-bytes"));
    let html = preview.text().await.unwrap();
    assert!(html.contains("Alpha story") && html.contains("unsubscribe?token=preview"));
    assert!(!html.contains("%%UNSUBSCRIBE"));
    let text = app
        .api_get(&token, &format!("/api/digests/{id}/preview?format=text"))
        .await;
    assert_eq!(text.headers()["content-type"], "text/plain; charset=utf-8");
    assert!(text
        .text()
        .await
        .unwrap()
        .contains("Read more: https://news.example/1"));
    assert_eq!(
        app.api_get(&token, &format!("/api/digests/{id}/preview?format=pdf"))
            .await
            .status(),
        422
    );

    // Reorder (Gamma first), drop Beta, set subject and intro.
    let r = patch(
        &app,
        &token,
        id,
        json!({
            "subject": "Gamma leads today", "intro": "Good morning.\n\nTwo stories.",
            "articles": [ids[2], ids[0]],
        }),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (body["subject"].clone(), body["articles"].clone()),
        (json!("Gamma leads today"), json!(2))
    );
    let html = app
        .api_get(&token, &format!("/api/digests/{id}/preview"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Good morning."));
    assert!(html.find("Gamma story").unwrap() < html.find("Alpha story").unwrap());
    assert!(!html.contains("Beta story"));
    assert_eq!(
        app.db.count(&format!(
            "SELECT COUNT(*) FROM articles WHERE id = {} AND digest_id IS NULL",
            ids[1]
        )),
        1,
        "a removed article waits for the next digest"
    );

    // Bad edits: 422, nothing changes.
    for bad in [
        json!({"articles": [999999]}),
        json!({"articles": []}),
        json!({"articles": [ids[0], ids[0]]}),
        json!({"articles": "all"}),
        json!({"subject": "a\u{7}b"}),
    ] {
        assert_eq!(
            patch(&app, &token, id, bad.clone()).await.status(),
            422,
            "{bad}"
        );
    }
    let subject = app
        .db
        .query_strings(&format!("SELECT subject AS v FROM digests WHERE id = {id}"));
    assert_eq!(subject, vec!["Gamma leads today"]);
}

#[tokio::test]
async fn test_sends_touch_no_reader_and_send_goes_to_every_reader() {
    let app = spawn_app_with(|_| {}).await;
    let reader = "reader@example.com";
    app.confirmed_reader(reader).await;
    let token = app.api_token().await;
    articles(&app, &token, &["Gamma story"]).await;
    let id = draft(&app, &token).await;
    let r = patch(&app, &token, id, json!({"subject": "Gamma leads today"})).await;
    assert_eq!(r.status(), 200);

    // A test send: "[Test]", to the editor only, counted nowhere.
    let r = app
        .api_post(
            &token,
            &format!("/api/digests/{id}/test"),
            &json!({"to": ["editor@example.com"]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let test = app.wait_mail_to("editor@example.com", 1).await;
    assert_eq!(test.subject().unwrap(), "[Test] Gamma leads today");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM deliveries"), 0);
    let shown: serde_json::Value = app
        .api_get(&token, &format!("/api/digests/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            shown["status"].clone(),
            shown["total"].clone(),
            shown["sent"].clone()
        ),
        (json!("draft"), json!(0), json!(0))
    );
    assert_eq!(
        app.sink.messages_to(reader).len(),
        1,
        "only the confirmation"
    );
    for bad in [
        json!({"to": []}),
        json!({"to": ["not an address"]}),
        json!({"to": "a@example.com"}),
        json!({}),
    ] {
        let r = app
            .api_post(&token, &format!("/api/digests/{id}/test"), &bad)
            .await;
        assert_eq!(r.status(), 422, "{bad}");
    }
    let eleven: Vec<String> = (0..11).map(|i| format!("e{i}@example.com")).collect();
    assert_eq!(
        app.api_post(
            &token,
            &format!("/api/digests/{id}/test"),
            &json!({"to": eleven})
        )
        .await
        .status(),
        422
    );

    // Send it: the readers get the edited digest; it is no draft any more.
    let r = app
        .api_post(&token, &format!("/api/digests/{id}/send"), &json!({}))
        .await;
    assert_eq!(r.status(), 200);
    let sent = app.wait_mail_to(reader, 2).await;
    assert_eq!(sent.subject().unwrap(), "Gamma leads today");
    assert!(sent.html_body().unwrap().contains("unsubscribe?token="));
    assert_eq!(
        app.api_post(&token, &format!("/api/digests/{id}/send"), &json!({}))
            .await
            .status(),
        409
    );
    assert_eq!(
        patch(&app, &token, id, json!({"subject": "Too late"}))
            .await
            .status(),
        409
    );
}

#[tokio::test]
async fn a_draft_sent_for_later_goes_out_at_its_time() {
    let app = spawn_app_with(|_| {}).await;
    let reader = "reader@example.com";
    app.confirmed_reader(reader).await;
    let token = app.api_token().await;
    articles(&app, &token, &["Evening story"]).await;
    let id = draft(&app, &token).await;
    let at = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let r = app
        .api_post(
            &token,
            &format!("/api/digests/{id}/send"),
            &json!({"at": at}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "scheduled");
    assert!(body["scheduled_at"].is_string());
    assert_eq!(app.sink.messages_to(reader).len(), 1);
    wait_until(Duration::from_secs(20), || async {
        app.sink.messages_to(reader).len() == 2
    })
    .await;
    let status = app
        .db
        .query_strings(&format!("SELECT status AS v FROM digests WHERE id = {id}"));
    assert!(
        matches!(status[0].as_str(), "sending" | "sent"),
        "{status:?}"
    );
    let r = app
        .api_post(
            &token,
            &format!("/api/digests/{id}/send"),
            &json!({"at": "tomorrow"}),
        )
        .await;
    assert_eq!(r.status(), 422);
}

#[tokio::test]
async fn unknown_digests_and_bad_bodies() {
    let app = spawn_app_with(|_| {}).await;
    let token = app.api_token().await;
    for path in ["/api/digests/999/preview", "/api/digests/abc/preview"] {
        assert_eq!(app.api_get(&token, path).await.status(), 404, "{path}");
    }
    for path in ["/api/digests/999/send", "/api/digests/999/test"] {
        let r = app
            .api_post(&token, path, &json!({"to": ["a@example.com"]}))
            .await;
        assert_eq!(r.status(), 404, "{path}");
    }
    assert_eq!(
        patch(&app, &token, 999, json!({"subject": "x"}))
            .await
            .status(),
        404
    );
    let r = app
        .api_post(&token, "/api/digests", &json!({"draft": "yes"}))
        .await;
    assert_eq!(r.status(), 422);
    let r = app
        .client
        .post(app.url("/api/digests/1/send"))
        .bearer_auth(&token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
