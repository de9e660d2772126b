//! Feed intake from a feed served by the test: RSS, Atom, a repeated item,
//! conditional GET, a broken feed, and the scheduled poll.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

use crate::helpers::{spawn_app_with, wait_until};

#[derive(Default)]
pub(crate) struct FeedDoc {
    pub(crate) body: String,
    pub(crate) etag: String,
    pub(crate) hits: usize,
    pub(crate) not_modified: usize,
}

/// Serves `/feed.xml` with an ETag and answers 304 to a matching If-None-Match.
pub(crate) async fn serve_feed(doc: Arc<Mutex<FeedDoc>>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let data = web::Data::from(doc);
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).route(
            "/feed.xml",
            web::get().to(
                |req: HttpRequest, doc: web::Data<Mutex<FeedDoc>>| async move {
                    let mut doc = doc.lock().unwrap();
                    doc.hits += 1;
                    let inm = req
                        .headers()
                        .get("if-none-match")
                        .and_then(|v| v.to_str().ok());
                    if inm == Some(doc.etag.as_str()) {
                        doc.not_modified += 1;
                        return HttpResponse::NotModified().finish();
                    }
                    HttpResponse::Ok()
                        .content_type("application/rss+xml")
                        .insert_header(("ETag", doc.etag.clone()))
                        .body(doc.body.clone())
                },
            ),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}/feed.xml")
}

const RSS: &str = r#"<?xml version="1.0"?><rss version="2.0"><channel><title>News</title>
<item><title>First &amp; best</title><link>https://news.example/first</link><guid>news-1</guid><description>Summary one</description><pubDate>Sun, 29 Nov 2026 07:00:00 GMT</pubDate></item>
<item><title>First &amp; best</title><link>https://news.example/first</link><guid>news-1</guid></item>
<item><title>Second</title><link>https://news.example/second</link><guid>news-2</guid></item>
</channel></rss>"#;

const ATOM: &str = r#"<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>News</title><id>urn:news</id><updated>2026-11-29T08:00:00Z</updated>
<entry><title>Third, from Atom</title><id>news-3</id><link href="https://news.example/third"/><updated>2026-11-29T08:00:00Z</updated></entry>
<entry><title>Second, renamed</title><id>news-2</id><link href="https://news.example/second"/><updated>2026-11-29T08:00:00Z</updated></entry>
</feed>"#;

#[tokio::test]
async fn rss_atom_dedupe_conditional_get_and_broken_feed() {
    let doc = Arc::new(Mutex::new(FeedDoc {
        body: RSS.into(),
        etag: "\"v1\"".into(),
        ..Default::default()
    }));
    let url = serve_feed(doc.clone()).await;
    let app = spawn_app_with(|s| {
        s.insert("feed_url".into(), url.clone());
    })
    .await;

    let first = tidings::digest::feed::poll(&app.state).await.unwrap();
    assert_eq!((first.new, first.updated), (2, 0));
    assert_eq!(app.db.count("SELECT COUNT(*) FROM articles"), 2);
    assert_eq!(
        app.db
            .query_strings("SELECT title AS v FROM articles WHERE guid = 'news-1'"),
        vec!["First & best"]
    );

    let second = tidings::digest::feed::poll(&app.state).await.unwrap();
    assert!(second.not_modified);
    assert_eq!(
        doc.lock().unwrap().not_modified,
        1,
        "conditional GET sent If-None-Match"
    );

    {
        let mut d = doc.lock().unwrap();
        d.body = ATOM.into();
        d.etag = "\"v2\"".into();
    }
    let third = tidings::digest::feed::poll(&app.state).await.unwrap();
    assert_eq!((third.new, third.updated), (1, 1));
    assert_eq!(app.db.count("SELECT COUNT(*) FROM articles"), 3);
    assert_eq!(
        app.db
            .query_strings("SELECT title AS v FROM articles WHERE guid = 'news-2'"),
        vec!["Second, renamed"]
    );

    {
        let mut d = doc.lock().unwrap();
        d.body = "<html><body>Oops</body></html>".into();
        d.etag = "\"v3\"".into();
    }
    let broken = tidings::digest::feed::poll(&app.state).await;
    assert!(broken.is_err());
    assert_eq!(app.db.count("SELECT COUNT(*) FROM articles"), 3);
}

#[tokio::test]
async fn the_schedule_polls_the_feed_and_survives_a_broken_one() {
    let doc = Arc::new(Mutex::new(FeedDoc {
        body: "not xml at all".into(),
        etag: "\"b\"".into(),
        ..Default::default()
    }));
    let url = serve_feed(doc.clone()).await;
    let app = spawn_app_with(|s| {
        s.insert("feed_url".into(), url.clone());
        s.insert("feed_cron".into(), "*/1 * * * * *".into());
    })
    .await;
    wait_until(Duration::from_secs(10), || async {
        doc.lock().unwrap().hits >= 2
    })
    .await;
    {
        let mut d = doc.lock().unwrap();
        d.body = RSS.into();
        d.etag = "\"ok\"".into();
    }
    wait_until(Duration::from_secs(10), || async {
        app.db.count("SELECT COUNT(*) FROM articles") == 2
    })
    .await;
}

/// A real Ghost feed (tests/fixtures/feeds) plus an undated item, polled
/// by `tidings feed poll`: image, byline and sections reach the API, the
/// undated item is counted and sorts after the dated one in the digest.
#[tokio::test]
async fn poll_keeps_image_byline_sections_and_counts_undated_items() {
    let ghost = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/feeds/ghost_changelog.xml"),
    )
    .unwrap();
    let undated = "<item><title>No date here</title><link>/changelog/undated/</link><pubDate>someday</pubDate></item>\n";
    let body = ghost.replacen("<item>", &format!("{undated}<item>"), 1);
    let doc = Arc::new(Mutex::new(FeedDoc {
        body,
        etag: "\"g\"".into(),
        ..Default::default()
    }));
    let url = serve_feed(doc.clone()).await;
    let app = spawn_app_with(|s| {
        s.insert("feed_url".into(), url.clone());
    })
    .await;
    let out = crate::helpers::tidings()
        .env("TIDINGS_DATABASE_URL", &app.db.url)
        .env("TIDINGS_FEED_URL", &url)
        .args(["feed", "poll"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("2 new, 0 updated, 0 skipped (no title or http(s) link), 1 undated (given the poll time)"),
        "{stdout}"
    );

    let token = app.api_token().await;
    let list: serde_json::Value = app
        .api_get(&token, "/api/articles")
        .await
        .json()
        .await
        .unwrap();
    let items = list["items"].as_array().unwrap();
    let ghost = items
        .iter()
        .find(|a| a["url"] == "https://ghost.org/changelog/email-without-publishing/")
        .unwrap();
    assert_eq!(
        ghost["image_url"],
        "https://ghost.org/changelog/content/images/2021/10/email-without-publishing.png"
    );
    assert_eq!(ghost["author"], "Team Ghost");
    assert_eq!(ghost["sections"], serde_json::json!(["New"]));
    assert_eq!(ghost["dated"], true);
    let odd = items.iter().find(|a| a["title"] == "No date here").unwrap();
    assert_eq!(
        odd["url"],
        format!("{}/changelog/undated/", url.trim_end_matches("/feed.xml"))
    );
    assert_eq!(odd["dated"], false);

    // The Ghost item is from 2021: make it recent so a digest takes it.
    let recent = (chrono::Utc::now() - chrono::Duration::hours(1)).format("%Y-%m-%d %H:%M:%S");
    app.db.execute(&format!(
        "UPDATE articles SET published_at = '{recent}' WHERE dated"
    ));
    let digest: serde_json::Value = app
        .api_post(&token, "/api/digests", &serde_json::json!({}))
        .await
        .json()
        .await
        .unwrap();
    let id = digest["id"].as_i64().unwrap();
    let subject = app
        .db
        .query_strings(&format!("SELECT subject AS v FROM digests WHERE id = {id}"));
    assert!(
        subject[0].starts_with("Send emails without publishing"),
        "{subject:?}"
    );
}

#[tokio::test]
async fn api_articles_take_image_author_and_sections() {
    let app = crate::helpers::spawn_app().await;
    let token = app.api_token().await;
    let created = app
        .api_post(
            &token,
            "/api/articles",
            &serde_json::json!({
                "url": "https://news.example/a", "title": "A",
                "image_url": "https://cdn.news.example/a.jpg", "author": "Ana Reporter",
                "sections": ["Politics", "Local", "Politics"],
            }),
        )
        .await;
    assert_eq!(created.status(), 201);
    let list: serde_json::Value = app
        .api_get(&token, "/api/articles")
        .await
        .json()
        .await
        .unwrap();
    let a = &list["items"][0];
    assert_eq!(a["image_url"], "https://cdn.news.example/a.jpg");
    assert_eq!(a["author"], "Ana Reporter");
    assert_eq!(a["sections"], serde_json::json!(["Politics", "Local"]));

    for (body, field) in [
        (
            serde_json::json!({"url": "https://news.example/b", "title": "B", "image_url": "javascript:alert(1)"}),
            "image_url",
        ),
        (
            serde_json::json!({"url": "https://news.example/b", "title": "B", "author": "a\u{0}b"}),
            "author",
        ),
        (
            serde_json::json!({"url": "https://news.example/b", "title": "B", "sections": "Politics"}),
            "sections",
        ),
        (
            serde_json::json!({"url": "https://news.example/b", "title": "B", "sections": [1]}),
            "sections",
        ),
        (
            serde_json::json!({"url": "https://news.example/b", "title": "B", "sections": ["x".repeat(101)]}),
            "sections",
        ),
    ] {
        let response = app.api_post(&token, "/api/articles", &body).await;
        assert_eq!(response.status(), 422, "{body}");
        let error: serde_json::Value = response.json().await.unwrap();
        assert_eq!(error["field"], field, "{body}");
    }
    assert_eq!(app.db.count("SELECT COUNT(*) FROM articles"), 1);
}
