//! The public web archive: each digest email's "view in browser" link, the
//! list, the Atom feed, no reader data in any of them, archive_public.

use serde_json::json;

use crate::helpers::{spawn_app_with, TestApp};

async fn send_digest(app: &TestApp, token: &str, title: &str) -> i64 {
    let r = app
        .api_post(
            token,
            "/api/articles",
            &json!({"url": format!("https://news.example/{}", title.len()), "title": title, "summary": "Body."}),
        )
        .await;
    assert!(r.status().is_success());
    let created: serde_json::Value = app
        .api_post(token, "/api/digests", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    created["id"].as_i64().unwrap()
}

#[tokio::test]
async fn view_in_browser_list_and_feed_carry_no_reader_data() {
    let app = spawn_app_with(|s| {
        s.insert("site_name".into(), "Daily Example".into());
    })
    .await;
    let reader = "reader.private@example.com";
    app.confirmed_reader(reader).await;
    let token = app.api_token().await;
    let id = send_digest(&app, &token, "Archive me").await;
    let mail = app.wait_mail_to(reader, 2).await;
    let html = mail.html_body().unwrap();
    let link = format!("http://tidings.test/archive/{id}");
    assert!(html.contains(&format!("href=\"{link}\"")));
    assert!(mail
        .text_body()
        .unwrap()
        .contains(&format!("View in browser: {link}")));

    let page = app.get(&format!("/archive/{id}")).await;
    assert_eq!(page.status(), 200);
    let web = page.text().await.unwrap();
    assert!(web.contains("Archive me"));
    assert!(web.contains("Daily Example"));
    for leak in [
        "unsubscribe?token=",
        "reader.private",
        "%%UNSUBSCRIBE",
        "You receive this because",
    ] {
        assert!(!web.contains(leak), "{leak} in the archive");
    }

    let list = app.get("/archive").await.text().await.unwrap();
    assert!(list.contains(&format!("href=\"{link}\"")), "{list}");
    assert!(list.contains("Archive me"));
    let json: serde_json::Value = app
        .client
        .get(app.url("/archive"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json["total"], 1);
    assert_eq!(json["items"][0]["url"], link);

    let feed = app.get("/archive/feed.xml").await;
    assert_eq!(
        feed.headers()["content-type"],
        "application/atom+xml; charset=utf-8"
    );
    let parsed = feed_rs::parser::parse(feed.bytes().await.unwrap().as_ref()).unwrap();
    assert_eq!(parsed.entries.len(), 1);
    assert_eq!(parsed.entries[0].links[0].href, link);
    assert_eq!(
        parsed.entries[0].title.as_ref().unwrap().content,
        "Archive me"
    );
}

#[tokio::test]
async fn cancelled_unknown_and_bad_requests_are_not_found_or_400() {
    let app = spawn_app_with(|_| {}).await;
    let token = app.api_token().await;
    let id = send_digest(&app, &token, "Pulled story").await;
    // No reader: the digest is sent at once; a cancelled one is not shown.
    assert_eq!(app.get(&format!("/archive/{id}")).await.status(), 200);
    app.db.execute(&format!(
        "UPDATE digests SET status = 'cancelled' WHERE id = {id}"
    ));
    assert_eq!(app.get(&format!("/archive/{id}")).await.status(), 404);
    assert!(!app
        .get("/archive")
        .await
        .text()
        .await
        .unwrap()
        .contains("Pulled story"));
    for path in ["/archive/999", "/archive/abc", "/archive/%00"] {
        assert_eq!(app.get(path).await.status(), 404, "{path}");
    }
    for path in ["/archive?page=0", "/archive?page=x", "/archive?page=-1"] {
        assert_eq!(app.get(path).await.status(), 400, "{path}");
    }
}

#[tokio::test]
async fn archive_public_false_closes_it_and_drops_the_link() {
    let app = spawn_app_with(|s| {
        s.insert("archive_public".into(), "false".into());
    })
    .await;
    let reader = "reader@example.com";
    app.confirmed_reader(reader).await;
    let token = app.api_token().await;
    let id = send_digest(&app, &token, "Members only").await;
    let mail = app.wait_mail_to(reader, 2).await;
    assert!(!mail.html_body().unwrap().contains("/archive/"));
    assert!(!mail.text_body().unwrap().contains("View in browser"));
    for path in [
        format!("/archive/{id}"),
        "/archive".into(),
        "/archive/feed.xml".into(),
    ] {
        assert_eq!(app.get(&path).await.status(), 404, "{path}");
    }
}
