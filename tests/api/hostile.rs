//! Client mistakes that would get past a check only to be refused by the
//! database (PostgreSQL cannot store a NUL byte nor a year before 4713 BC)
//! are 4xx and change nothing; racing writers of one article are not a 500.

use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

async fn api(app: &TestApp, token: &str, method: reqwest::Method, path: &str) -> u16 {
    app.client
        .request(method, app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn nul_bytes_and_odd_ids_are_client_errors() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let get = reqwest::Method::GET;
    for path in [
        "/api/subscribers/%00",
        "/api/subscribers/%00/export",
        "/api/subscribers/not-an-id",
    ] {
        assert_eq!(api(&app, &token, get.clone(), path).await, 404, "{path}");
    }
    let delete = reqwest::Method::DELETE;
    assert_eq!(api(&app, &token, delete, "/api/subscribers/%00").await, 404);
    let res = app.api_get(&token, "/api/subscribers?q=a%00b").await;
    assert_eq!(res.status().as_u16(), 422);
    assert_eq!(res.json::<Value>().await.unwrap()["field"], "q");
}

#[tokio::test]
async fn article_text_and_times_the_database_cannot_hold_are_422() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let article = |extra: Value| {
        let mut body = json!({"url": "https://news.example/odd", "title": "Odd"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    for (extra, field) in [
        (json!({"summary": "before\u{0}after"}), "summary"),
        (json!({"published_at": "-5000-01-01"}), "published_at"),
        (
            json!({"published_at": "-5000-01-01T00:00:00"}),
            "published_at",
        ),
        (
            json!({"published_at": "+12345-01-01T00:00:00Z"}),
            "published_at",
        ),
    ] {
        let res = app.api_post(&token, "/api/articles", &article(extra)).await;
        assert_eq!(res.status().as_u16(), 422, "{field}");
        assert_eq!(res.json::<Value>().await.unwrap()["field"], field);
    }
    let res = app.api_get(&token, "/api/articles?since=-5000-01-01").await;
    assert_eq!(res.status().as_u16(), 422);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM articles"), 0);
    // Line breaks and tabs are fine in a summary.
    let res = app
        .api_post(
            &token,
            "/api/articles",
            &article(json!({"summary": "one\ntwo\tthree"})),
        )
        .await;
    assert_eq!(res.status().as_u16(), 201);
}

#[tokio::test]
async fn the_same_new_article_posted_at_once_is_stored_once() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let body = json!({"url": "https://news.example/breaking", "title": "Breaking"});
    let answers = futures_util::future::join_all(
        (0..24).map(|_| app.api_post(&token, "/api/articles", &body)),
    )
    .await;
    let codes: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert!(codes.iter().all(|c| *c == 200 || *c == 201), "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 201).count(), 1, "{codes:?}");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM articles"), 1);
}
