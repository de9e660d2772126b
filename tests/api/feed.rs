//! Feed intake from a feed served by the test: RSS, Atom, a repeated item,
//! conditional GET, a broken feed, and the scheduled poll.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

use crate::helpers::{spawn_app_with, wait_until};

#[derive(Default)]
struct FeedDoc {
    body: String,
    etag: String,
    hits: usize,
    not_modified: usize,
}

/// Serves `/feed.xml` with an ETag and answers 304 to a matching If-None-Match.
async fn serve_feed(doc: Arc<Mutex<FeedDoc>>) -> String {
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
