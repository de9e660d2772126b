//! The digest and the confirmation email rendered by headless Chromium at
//! a phone's width (390 px) and a desktop's (1280 px): nothing may be wider
//! than the window (no sideways scrolling). Screenshots go to
//! target/screenshots/email-*.png.

use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::json;

use crate::browser::{browser, screenshot_dir, start_driver};
use crate::helpers::spawn_app_with;

/// Serves the fixture images (tests/fixtures/images) on a free port.
fn serve_images() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(|| {
        App::new().route(
            "/{name}",
            web::get().to(|name: web::Path<String>| async move {
                let dir =
                    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images");
                match std::fs::read(dir.join(name.as_str())) {
                    Ok(png) if !name.contains("..") => {
                        HttpResponse::Ok().content_type("image/png").body(png)
                    }
                    _ => HttpResponse::NotFound().finish(),
                }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn digest_and_confirmation_fit_a_phone_and_a_desktop() {
    let images = serve_images();
    let logo = format!("{images}/logo.png");
    let app = spawn_app_with(|s| {
        s.insert("site_name".into(), "Daily Example".into());
        s.insert("logo_url".into(), logo.clone());
        s.insert("accent_color".into(), "#b91c1c".into());
        s.insert(
            "postal_address".into(),
            "1 Press Lane, Springfield, ST 12345, USA".into(),
        );
        s.insert("privacy_url".into(), "https://news.example/privacy".into());
    })
    .await;
    let reader = "reader@example.com";
    app.confirmed_reader(reader).await;
    let confirm = app.sink.messages_to(reader)[0].html_body().unwrap();
    let token = app.api_token().await;
    let now = chrono::Utc::now();
    let long_word = "Donaudampfschifffahrtsgesellschaftskapitänswitwenrentenversicherung";
    for i in 0..6 {
        let r = app
            .api_post(&token, "/api/articles", &json!({
                "url": format!("https://news.example/2026/12/a-rather-long-slug-for-story-number-{i}"),
                "title": format!("Council approves the {long_word} plan after a long night, story {i}"),
                "summary": format!("The vote was 27\u{2013}14. {} Residents said {long_word} would change everything.", "Words that fill a paragraph. ".repeat(8)),
                "image_url": format!("{images}/photo.png"),
                "author": "Ana Reporter and Bo Writer",
                "sections": ["Politics", "Local government"],
                "published_at": (now - chrono::Duration::minutes(i)).to_rfc3339(),
            }))
            .await;
        assert!(r.status().is_success());
    }
    app.api_post(&token, "/api/digests", &json!({})).await;
    let digest = app.wait_mail_to(reader, 2).await.html_body().unwrap();

    let dir = screenshot_dir();
    let backend = if app.db.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    let driver = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path()).await;
    for (name, html) in [("digest", &digest), ("confirmation", &confirm)] {
        let file = dir.join(format!("email-{name}-{backend}.html"));
        std::fs::write(&file, html).unwrap();
        for (label, (w, h)) in [("phone", (390, 844)), ("desktop", (1280, 900))] {
            c.set_window_size(w, h).await.unwrap();
            c.goto(&format!("file://{}", file.display())).await.unwrap();
            // The images come from the local server: wait until they are in.
            let mut loaded = false;
            for _ in 0..50 {
                let done = c
                    .execute("return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0);", vec![])
                    .await
                    .unwrap();
                if done == json!(true) {
                    loaded = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(loaded, "{name} images did not load");
            let sizes = c
                .execute(
                    "return [document.documentElement.scrollWidth, window.innerWidth];",
                    vec![],
                )
                .await
                .unwrap();
            let (scroll, inner) = (sizes[0].as_u64().unwrap(), sizes[1].as_u64().unwrap());
            assert!(
                scroll <= inner,
                "{name} at {label}: {scroll} px of content in a {inner} px window"
            );
            let png = c.screenshot().await.unwrap();
            std::fs::write(dir.join(format!("email-{name}-{label}-{backend}.png")), png).unwrap();
            // The whole email too, for a look at every item and the footer.
            c.set_window_size(w, 3200).await.unwrap();
            let png = c.screenshot().await.unwrap();
            std::fs::write(
                dir.join(format!("email-{name}-{label}-full-{backend}.png")),
                png,
            )
            .unwrap();
        }
    }
    c.close().await.unwrap();
}
