//! The console in a real browser: headless Chromium driven over WebDriver
//! (chromedriver). Logs in, sees the chart, searches a reader, presses "Send
//! now" and watches the progress bar reach 100% without a reload. Screenshots
//! at desktop and phone widths go to `target/screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them);
//! without them this test fails, it does not skip.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::admin::{create_admin, ADMIN, PASSWORD};
use crate::helpers::{spawn_app_with, TestApp};

const CHROMIUM: &str = "/usr/bin/chromium";
const DESKTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (390, 844);

/// chromedriver on a free port, killed when dropped.
pub(crate) struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn start_driver() -> Driver {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: apt-get install chromium chromium-driver"
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start chromedriver ({e}): apt-get install chromium chromium-driver")
        });
    let driver = Driver { child, port };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not listen on {port} within 10 s");
}

pub(crate) async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("WebDriver session with headless Chromium")
}

pub(crate) fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, app: &TestApp, name: &str) {
    let backend = if app.db.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    std::fs::write(screenshot_dir().join(format!("{name}-{backend}.png")), png).unwrap();
}

/// Readers confirmed over the last weeks, so the chart has a shape.
fn seed_readers(app: &TestApp, n: usize) {
    let now = chrono::Utc::now().naive_utc();
    let mut sql = String::new();
    for i in 0..n {
        let id = uuid::Uuid::new_v4();
        let at = (now - chrono::Duration::hours((i * 37 % 700) as i64))
            .format("%Y-%m-%d %H:%M:%S")
            .to_string();
        sql.push_str(&format!(
            "INSERT INTO subscribers (id, email, email_key, name, status, created_at, updated_at, confirmed_at) \
             VALUES ('{id}', 'reader{i}@example.com', 'reader{i}@example.com', 'Reader {i}', 'confirmed', '{at}', '{at}', '{at}');\n"
        ));
    }
    app.db.execute(&sql);
}

/// The progress bar's live value (the DOM property the script sets).
async fn bar_value(c: &Client) -> u32 {
    let v = c
        .execute(
            "return document.querySelector('tr[data-digest-id] progress').value;",
            vec![],
        )
        .await
        .unwrap();
    v.as_f64().expect("a number") as u32
}

#[tokio::test]
async fn console_in_headless_chromium() {
    // Arrange: 20 readers, one article; 5 emails a second so the bar moves.
    let app = spawn_app_with(|s| {
        s.insert("send_rate".into(), "5".into());
    })
    .await;
    seed_readers(&app, 20);
    create_admin(&app, ADMIN, PASSWORD).await;
    let token = app.api_token().await;
    let res = app
        .api_post(
            &token,
            "/api/articles",
            &json!({"url": "https://news.example/story", "title": "Council approves the new bridge"}),
        )
        .await;
    assert!(res.status().is_success());
    let driver = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path()).await;
    c.set_window_size(DESKTOP.0, DESKTOP.1).await.unwrap();

    // Log in.
    c.goto(&app.url("/admin")).await.unwrap();
    assert!(c
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/admin/login"));
    shot(&c, &app, "login-desktop").await;
    log_in(&c, &app).await;
    c.goto(&app.url("/admin")).await.unwrap();

    // The dashboard and its chart.
    let chart = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("svg.chart"))
        .await
        .unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/admin");
    assert_eq!(
        chart.find_all(Locator::Css("rect")).await.unwrap().len(),
        30
    );
    let confirmed = c
        .find(Locator::Css("[data-count=confirmed]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(confirmed, "20");
    shot(&c, &app, "dashboard-desktop").await;

    // Search a reader.
    c.find(Locator::Css("nav a[href='/admin/subscribers']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let q = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("input[name=q]"))
        .await
        .unwrap();
    q.send_keys("reader13@").await.unwrap();
    c.find(Locator::Css("form.search button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_url(&url::Url::parse(&app.url("/admin/subscribers?q=reader13%40&status=")).unwrap())
        .await
        .unwrap();
    let rows = c.find_all(Locator::Css("tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0]
        .text()
        .await
        .unwrap()
        .contains("reader13@example.com"));
    shot(&c, &app, "subscribers-desktop").await;
    rows[0]
        .find(Locator::Css("a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath("//h2[text()='Consent history']"))
        .await
        .unwrap();
    shot(&c, &app, "subscriber-desktop").await;

    // Send now: a draft's page with its previews, then "Send to N
    // readers"; watch the bar fill without a reload.
    c.goto(&app.url("/admin/digests")).await.unwrap();
    c.find(Locator::Id("send-now"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let send = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("send-to-readers"))
        .await
        .unwrap();
    assert_eq!(send.text().await.unwrap(), "Send to 20 readers");
    shot(&c, &app, "draft-desktop").await;
    c.set_window_size(PHONE.0, PHONE.1).await.unwrap();
    shot(&c, &app, "draft-phone").await;
    c.set_window_size(DESKTOP.0, DESKTOP.1).await.unwrap();
    let send = c.find(Locator::Id("send-to-readers")).await.unwrap();
    send.click().await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("tr[data-digest-id] progress"))
        .await
        .unwrap();
    assert!(c
        .current_url()
        .await
        .unwrap()
        .query()
        .unwrap_or_default()
        .contains("composed="));
    c.execute("window.__sameDocument = true;", vec![])
        .await
        .unwrap();
    let first = bar_value(&c).await;
    assert!(
        first < 100,
        "the digest was already sent when the page loaded"
    );
    shot(&c, &app, "digests-sending-desktop").await;
    let mut seen = vec![first];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = bar_value(&c).await;
        if seen.last() != Some(&v) {
            seen.push(v);
        }
        if v == 100 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "progress stuck: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("tr[data-status=sent]"))
        .await
        .unwrap();
    let same = c
        .execute("return window.__sameDocument === true;", vec![])
        .await
        .unwrap();
    assert_eq!(
        same,
        json!(true),
        "the bar filled by polling, not by reloading"
    );
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert!(seen.len() >= 2, "the bar moved on the page: {seen:?}");
    let percent = c
        .find(Locator::Css("tr[data-digest-id] [data-field=percent]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(percent, "100%");
    assert_eq!(app.sink.messages().len(), 20);
    shot(&c, &app, "digests-desktop").await;

    // The same pages at phone width.
    c.set_window_size(PHONE.0, PHONE.1).await.unwrap();
    shot(&c, &app, "digests-phone").await;
    c.goto(&app.url("/admin")).await.unwrap();
    shot(&c, &app, "dashboard-phone").await;
    c.goto(&app.url("/admin/subscribers?q=reader1"))
        .await
        .unwrap();
    shot(&c, &app, "subscribers-phone").await;
    c.goto(&app.url("/admin/articles")).await.unwrap();
    shot(&c, &app, "articles-phone").await;

    // Log out.
    c.find(Locator::Css("header form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("password"))
        .await
        .unwrap();
    assert_eq!(app.db.count("SELECT COUNT(*) FROM admin_sessions"), 0);
    c.close().await.unwrap();
}

/// Logs the console admin in (the browser is at any page).
async fn log_in(c: &Client, app: &TestApp) {
    c.goto(&app.url("/admin/login")).await.unwrap();
    c.find(Locator::Id("name"))
        .await
        .unwrap()
        .send_keys(ADMIN)
        .await
        .unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    c.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("header form button"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_paused_digest_shows_why_and_resumes_from_the_console() {
    // Arrange: the relay refuses the sender, so the breaker pauses the digest.
    let app = spawn_app_with(|_| {}).await;
    seed_readers(&app, 15);
    create_admin(&app, ADMIN, PASSWORD).await;
    let token = app.api_token().await;
    app.api_post(
        &token,
        "/api/articles",
        &json!({"url": "https://news.example/paused", "title": "Storm closes the harbour"}),
    )
    .await;
    app.sink.script(
        crate::support::smtp::Command::Mail,
        Some("550 5.7.1 <news@tidings.test>: Sender address rejected: not authorized"),
    );
    let res = app.api_post(&token, "/api/digests", &json!({})).await;
    let id = res.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    crate::helpers::wait_until(Duration::from_secs(20), || async {
        app.db.count(&format!(
            "SELECT COUNT(*) FROM digests WHERE id = {id} AND status = 'paused'"
        )) == 1
    })
    .await;
    let driver = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path()).await;
    c.set_window_size(DESKTOP.0, DESKTOP.1).await.unwrap();
    log_in(&c, &app).await;

    // The banner says why; the row offers Resume.
    c.goto(&app.url("/admin/digests")).await.unwrap();
    let banner = c
        .find(Locator::Css(".notice-warn"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        banner.contains("paused") && banner.contains("5.7.1"),
        "{banner}"
    );
    assert!(
        !banner.contains("news@tidings.test"),
        "addresses are masked: {banner}"
    );
    shot(&c, &app, "digests-paused-desktop").await;
    c.set_window_size(PHONE.0, PHONE.1).await.unwrap();
    shot(&c, &app, "digests-paused-phone").await;

    // Act: the relay is fixed; Resume.
    app.sink.script(crate::support::smtp::Command::Mail, None);
    c.find(Locator::XPath("//button[text()='Resume']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("tr[data-status=sent]"))
        .await
        .unwrap();
    assert_eq!(app.sink.counts_by_recipient().len(), 15);
    assert!(app.sink.counts_by_recipient().values().all(|n| *n == 1));
    c.close().await.unwrap();
}

#[tokio::test]
async fn the_bounces_page_in_chromium_at_both_widths() {
    let app = spawn_app_with(|_| {}).await;
    seed_readers(&app, 6);
    create_admin(&app, ADMIN, PASSWORD).await;
    let ids = app
        .db
        .query_strings("SELECT id AS v FROM subscribers ORDER BY email");
    let rows = [
        ("hard", Some("5.1.1"), Some("550 5.1.1 <reader0@example.com>: Recipient address rejected: User unknown in virtual mailbox table"), "pipe"),
        ("soft", Some("4.2.2"), Some("452 4.2.2 The email account that you tried to reach is over quota"), "smtp"),
        ("complaint", None, Some("feedback-type: abuse"), "webhook"),
        ("soft", Some("5.7.1"), Some("550 5.7.1 Message rejected due to local policy"), "webhook"),
    ];
    for (i, (kind, status, diagnostic, source)) in rows.iter().enumerate() {
        let quote = |v: &Option<&str>| v.map_or("NULL".to_string(), |v| format!("'{v}'"));
        app.db.execute(&format!(
            "INSERT INTO bounces (subscriber_id, digest_id, kind, status_code, diagnostic, source, received_at) \
             VALUES ('{}', {}, '{kind}', {}, {}, '{source}', '2026-12-0{} 0{}:15:00')",
            ids[i],
            if i == 1 { "NULL".to_string() } else { "3".to_string() },
            quote(status),
            quote(diagnostic),
            i + 1,
            i + 6,
        ));
    }
    let driver = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path()).await;
    c.set_window_size(DESKTOP.0, DESKTOP.1).await.unwrap();
    log_in(&c, &app).await;
    c.goto(&app.url("/admin/bounces")).await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("table#bounces"))
        .await
        .unwrap();
    let shown = c.find_all(Locator::Css("tbody tr")).await.unwrap();
    assert_eq!(shown.len(), 4);
    assert!(
        shown[0].text().await.unwrap().contains("5.7.1"),
        "newest first"
    );
    shot(&c, &app, "bounces-desktop").await;

    // Filter to the hard ones with the form, then look at a phone's width.
    c.find(Locator::Css("select[name=kind] option[value=hard]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Locator::Css("form.search button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_url(&url::Url::parse(&app.url("/admin/bounces?kind=hard&digest=")).unwrap())
        .await
        .unwrap();
    let hard = c.find_all(Locator::Css("tbody tr")).await.unwrap();
    assert_eq!(hard.len(), 1);
    assert!(hard[0]
        .text()
        .await
        .unwrap()
        .contains("reader0@example.com"));
    c.goto(&app.url("/admin/bounces")).await.unwrap();
    c.set_window_size(PHONE.0, PHONE.1).await.unwrap();
    let overflow: serde_json::Value = c
        .execute(
            "return document.documentElement.scrollWidth - window.innerWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "the page scrolls sideways: {overflow}"
    );
    shot(&c, &app, "bounces-phone").await;
}
