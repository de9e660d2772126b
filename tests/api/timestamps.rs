//! Every time the API gives out is RFC 3339 in UTC with a `Z`, the same
//! form it takes in, so a client can parse what it gets with the parser it
//! uses for what it sends.

use serde_json::{json, Value};

use crate::helpers::spawn_app;

/// Every string under a key ending in `_at`, with its path.
fn times(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let here = format!("{path}.{k}");
                match v {
                    Value::String(s) if k.ends_with("_at") => out.push((here, s.clone())),
                    _ => times(v, &here, out),
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                times(v, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn every_api_timestamp_is_rfc3339_with_z() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.confirmed_reader("reader@example.com").await;
    let res = app
        .api_post(
            &token,
            "/api/articles",
            &json!({"url": "https://news.example/a", "title": "A",
                    "published_at": "2026-11-30T10:00:00+02:00"}),
        )
        .await;
    assert_eq!(res.status().as_u16(), 201);
    let digest: Value = app
        .api_post(&token, "/api/digests", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let id = app
        .db
        .query_strings("SELECT id AS v FROM subscribers")
        .remove(0);
    let mut seen = Vec::new();
    for path in [
        "/api/articles".to_string(),
        "/api/digests".into(),
        format!("/api/digests/{}", digest["id"]),
        "/api/subscribers".into(),
        format!("/api/subscribers/{id}"),
        format!("/api/subscribers/{id}/export"),
        "/api/stats".into(),
    ] {
        let res = app.api_get(&token, &path).await;
        assert_eq!(res.status().as_u16(), 200, "{path}");
        let body: Value = res.json().await.unwrap();
        times(&body, &path, &mut seen);
    }
    assert!(seen.len() >= 10, "{seen:?}");
    for (path, t) in &seen {
        assert!(
            t.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(t).is_ok(),
            "{path} = {t:?}"
        );
    }
    let published = seen
        .iter()
        .find(|(p, _)| p.ends_with("published_at"))
        .unwrap();
    assert_eq!(published.1, "2026-11-30T08:00:00.000000Z");
}
