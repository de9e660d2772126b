//! GET /api/stats: readers by status, emails sent, growth per day.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{spawn_app, wait_until, TestApp};

async fn stats(app: &TestApp, token: &str) -> Value {
    let res = app.api_get(token, "/api/stats").await;
    assert_eq!(res.status().as_u16(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn stats_count_readers_sends_and_growth() {
    let app = spawn_app().await;
    let token = app.api_token().await;

    let empty = stats(&app, &token).await;
    assert_eq!(empty["subscribers"]["total"], 0);
    assert_eq!(empty["sends"]["digests"]["digests"], 0);
    assert_eq!(empty["growth"]["confirmed"], 0);

    app.confirmed_reader("one@example.com").await;
    app.confirmed_reader("two@example.com").await;
    assert_eq!(app.signup("waiting@example.com").await.status(), 200);
    app.wait_mail_to("waiting@example.com", 1).await;
    app.outbox_drained().await;
    let res = app
        .api_post(
            &token,
            "/api/articles",
            &json!({"url": "https://news.example/s", "title": "Counted"}),
        )
        .await;
    assert!(res.status().is_success());
    assert_eq!(
        app.api_post(&token, "/api/digests", &json!({}))
            .await
            .status(),
        201
    );
    wait_until(Duration::from_secs(15), || async {
        stats(&app, &token).await["sends"]["digests"]["sent"] == 2
    })
    .await;
    let last = stats(&app, &token).await;

    let readers = &last["subscribers"];
    assert_eq!(readers["confirmed"], 2, "{last}");
    assert_eq!(readers["pending"], 1);
    assert_eq!(readers["unsubscribed"], 0);
    assert_eq!(readers["bounced"], 0);
    assert_eq!(readers["total"], 3);
    assert_eq!(
        last["sends"]["confirmations"],
        json!({"queued": 0, "sent": 3, "failed": 0})
    );
    let digests = &last["sends"]["digests"];
    assert_eq!(digests["digests"], 1);
    assert_eq!(digests["total"], 2);
    assert_eq!(digests["queued"], 0);
    assert_eq!(digests["failed"], 0);

    let growth = &last["growth"];
    assert_eq!(growth["days"], 30);
    assert_eq!(growth["confirmed"], 2);
    let days = growth["per_day"].as_array().unwrap();
    assert_eq!(days.len(), 30);
    let today = chrono::Utc::now().date_naive().to_string();
    let newest = days.last().unwrap();
    // Both confirmations fall on the newest day (or, right at midnight UTC,
    // the day before it).
    assert!(
        newest["date"] == today.as_str() || days[28]["confirmed"] == 2,
        "{growth}"
    );
    assert_eq!(
        days.iter()
            .map(|d| d["confirmed"].as_i64().unwrap())
            .sum::<i64>(),
        2
    );
}

#[tokio::test]
async fn stats_need_a_token() {
    let app = spawn_app().await;
    let res = app.get("/api/stats").await;
    assert_eq!(res.status().as_u16(), 401);
    let res = app.api_get("tid_wrong", "/api/stats").await;
    assert_eq!(res.status().as_u16(), 401);
}
