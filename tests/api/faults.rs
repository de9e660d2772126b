//! Faults from outside the process: the database taken away under a running
//! server (503 with `Retry-After` on every surface, /ready 503, and back by
//! itself), and clients that trickle their request bodies (cut at
//! `body_timeout_seconds`, while everyone else is served).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::admin::{create_admin, Browser};
use crate::helpers::{spawn_app_with, wait_until, TestApp};
use crate::support::proxy::TcpProxy;

/// What takes the database away. SQLite: the immutable flag on the file and
/// its WAL (`chattr +i`; tests run as root, and root ignores file modes but
/// not this flag), so writes through already open connections fail with an
/// I/O error and new connections open read-only. The `-shm` index stays
/// writable: SQLite maps it into memory, and a write to an immutable mapping
/// is a SIGBUS, not an error. PostgreSQL: a proxy between the app and the
/// server, cut.
pub(crate) enum Outage {
    Sqlite { files: Vec<PathBuf>, on: bool },
    Postgres(TcpProxy),
}

impl Outage {
    pub(crate) fn begin(&mut self) {
        match self {
            Outage::Sqlite { files, on } => {
                chattr("+i", files);
                *on = true;
            }
            Outage::Postgres(proxy) => proxy.cut(),
        }
    }

    pub(crate) fn end(&mut self) {
        match self {
            Outage::Sqlite { files, on } => {
                if std::mem::take(on) {
                    chattr("-i", files);
                }
            }
            Outage::Postgres(proxy) => proxy.restore(),
        }
    }
}

/// The flag must really be set: a test that could not take the database
/// away fails, it does not pass without having tested anything.
fn chattr(flag: &str, files: &[PathBuf]) {
    let out = std::process::Command::new("chattr")
        .arg(flag)
        .args(files)
        .output()
        .expect("chattr must be installed (e2fsprogs) to take the SQLite file away");
    assert!(
        out.status.success(),
        "chattr {flag} failed (needs root and a filesystem with the immutable flag): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for Outage {
    /// Never leaves an immutable file behind, whatever failed.
    fn drop(&mut self) {
        if let Outage::Sqlite { files, on: true } = self {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .args(files.iter())
                .status();
        }
    }
}

/// An app whose database the test can take away.
async fn app_with_outage() -> (TestApp, Outage) {
    app_with_outage_and(|_| {}).await
}

/// Like [`app_with_outage`], with settings changed by `tweak`.
pub(crate) async fn app_with_outage_and(
    tweak: impl FnOnce(&mut std::collections::BTreeMap<String, String>),
) -> (TestApp, Outage) {
    match std::env::var("TIDINGS_TEST_DATABASE_URL") {
        Ok(server) if !server.is_empty() => {
            let url = url::Url::parse(&server).expect("TIDINGS_TEST_DATABASE_URL");
            let target: SocketAddr = tokio::net::lookup_host((
                url.host_str().expect("host"),
                url.port().unwrap_or(5432),
            ))
            .await
            .expect("PostgreSQL host")
            .next()
            .expect("PostgreSQL address");
            let proxy = TcpProxy::start(target).await;
            let port = proxy.port();
            let app = spawn_app_with(|map| {
                let mut db = url::Url::parse(&map["database_url"]).expect("database_url");
                db.set_port(Some(port)).expect("port");
                map.insert("database_url".into(), db.to_string());
                tweak(map);
            })
            .await;
            (app, Outage::Postgres(proxy))
        }
        _ => {
            let app = spawn_app_with(tweak).await;
            let db = PathBuf::from(app.db.url.trim_start_matches("sqlite://"));
            let wal = PathBuf::from(format!("{}-wal", db.display()));
            assert!(wal.exists(), "the SQLite database runs in WAL mode");
            let outage = Outage::Sqlite {
                files: vec![db, wal],
                on: false,
            };
            (app, outage)
        }
    }
}

fn retry_after(res: &reqwest::Response) -> u64 {
    res.headers()
        .get("retry-after")
        .unwrap_or_else(|| panic!("{} without Retry-After", res.status()))
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds")
}

/// A 503 with Retry-After, of the given content type; returns the body.
async fn unavailable(res: reqwest::Response, content_type: &str, what: &str) -> String {
    let status = res.status().as_u16();
    let retry = retry_after(&res);
    let kind = res.headers()["content-type"].to_str().unwrap().to_string();
    let body = res.text().await.unwrap();
    assert_eq!(status, 503, "{what}: {body}");
    assert!(retry > 0, "{what}");
    assert!(kind.starts_with(content_type), "{what}: {kind}");
    body
}

#[tokio::test]
async fn a_database_taken_away_answers_503_with_retry_after_everywhere_and_comes_back() {
    // Arrange: a token and a console session from before the outage.
    let (app, mut outage) = app_with_outage().await;
    let token = app.api_token().await;
    create_admin(&app, "editor", "correct horse battery staple").await;
    let mut browser = Browser::new(&app);
    let login = browser
        .login("editor", "correct horse battery staple")
        .await;
    assert_eq!(login.status, 303, "{}", login.body);
    let csrf = browser.csrf().await;
    assert_eq!(
        app.signup("before@example.com").await.status().as_u16(),
        200
    );
    assert_eq!(app.get("/ready").await.status().as_u16(), 200);

    outage.begin();

    // The public form (an HTML page) and the JSON signup.
    let res = app.signup("during@example.com").await;
    unavailable(res, "text/html", "form signup").await;
    let res = app
        .post_json("/subscriptions", &json!({"email": "during@example.com"}))
        .await;
    let body = unavailable(res, "application/json", "JSON signup").await;
    assert!(body.contains("\"error\""), "{body}");
    // The ops API.
    let res = app
        .api_post(
            &token,
            "/api/articles",
            &json!({"url": "https://news.example/a", "title": "A"}),
        )
        .await;
    let body = unavailable(res, "application/json", "API write").await;
    assert!(body.contains("\"error\""), "{body}");
    // The console.
    let res = app
        .client
        .post(app.url("/admin/articles"))
        .header("cookie", cookies(&browser))
        .form(&[
            ("url", "https://news.example/b"),
            ("title", "B"),
            ("csrf_token", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    unavailable(res, "text/html", "console write").await;
    // Readiness says so too (its probe may need one more try to meet the
    // fault on a connection that had not written since).
    let deadline = Instant::now() + Duration::from_secs(5);
    let res = loop {
        let res = app.get("/ready").await;
        if res.status().as_u16() == 503 || Instant::now() > deadline {
            break res;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    unavailable(res, "application/json", "/ready").await;

    outage.end();

    // Back by itself: ready again, and a signup goes through to its email.
    wait_until(Duration::from_secs(15), || async {
        app.get("/ready").await.status().as_u16() == 200
    })
    .await;
    assert_eq!(app.signup("after@example.com").await.status().as_u16(), 200);
    app.wait_mail_to("after@example.com", 1).await;
    let stored = app
        .db
        .count("SELECT COUNT(*) FROM subscribers WHERE email = 'during@example.com'");
    assert_eq!(stored, 0, "nothing was half-written during the outage");
}

fn cookies(browser: &Browser<'_>) -> String {
    browser
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Sends a request head announcing a 200-byte form body, then one byte of
/// it every 500 ms, until the server answers or hangs up. Returns how long
/// that took and the status line, if one came before the connection closed.
async fn trickle(port: u16) -> (Duration, Option<String>) {
    let started = Instant::now();
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    write
        .write_all(
            b"POST /subscriptions HTTP/1.1\r\nHost: tidings.test\r\n\
              Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\n",
        )
        .await
        .unwrap();
    let writer = tokio::spawn(async move {
        for _ in 0..200 {
            if write.write_all(b"e").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    // Until EOF, or a reset (closing on unread input resets the connection).
    while let Ok(n) = read.read(&mut buf).await {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    writer.abort();
    let status = String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .filter(|l| !l.is_empty())
        .map(str::to_string);
    (started.elapsed(), status)
}

#[tokio::test]
async fn trickled_bodies_are_cut_at_the_body_timeout_while_others_are_served() {
    // Arrange: a 2 s body deadline and 100 clients sending 2 bytes a second.
    let app = spawn_app_with(|map| {
        map.insert("body_timeout_seconds".into(), "2".into());
    })
    .await;
    let port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let tricklers: Vec<_> = (0..100).map(|_| tokio::spawn(trickle(port))).collect();
    tokio::time::sleep(Duration::from_millis(700)).await;

    // A normal request meanwhile is served at once.
    let started = Instant::now();
    assert_eq!(
        app.signup("normal@example.com").await.status().as_u16(),
        200
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // Every trickler is cut near the deadline (unbounded, 200 bytes would
    // take 100 s each), with a 408 or a closed connection.
    let outcomes = tokio::time::timeout(
        Duration::from_secs(8),
        futures_util::future::join_all(tricklers),
    )
    .await
    .expect("every trickled body cut within 8 s");
    let mut answered = 0;
    for outcome in outcomes {
        let (took, status) = outcome.unwrap();
        assert!(took < Duration::from_secs(5), "held for {took:?}");
        if let Some(status) = status {
            assert!(status.starts_with("HTTP/1.1 408"), "{status}");
            answered += 1;
        }
    }
    assert!(answered > 0, "no trickler heard 408");
    assert_eq!(app.get("/health").await.status().as_u16(), 200);
}

#[tokio::test]
async fn a_trickled_json_body_hears_408_in_json() {
    let app = spawn_app_with(|map| {
        map.insert("body_timeout_seconds".into(), "1".into());
    })
    .await;
    let mut stream = TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    stream
        .write_all(
            b"POST /subscriptions HTTP/1.1\r\nHost: tidings.test\r\n\
              Content-Type: application/json\r\nContent-Length: 40\r\n\r\n{\"em",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"error\""), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// A signup group whose commit lost its connection may have committed:
/// its rows are then leased to this instance's worker, which never got
/// them. Noted as orphans, they go back to the queue as soon as the
/// database answers, not when their lease (until 2099 here) runs out.
#[tokio::test]
async fn rows_of_a_commit_whose_answer_was_lost_are_sent_without_waiting_out_their_lease() {
    let app = crate::helpers::spawn_app().await;
    for to in ["lost@example.com", "other@example.com"] {
        let res = app.post_form("/subscriptions", &[("email", to)]).await;
        assert_eq!(res.status(), 200);
        app.wait_mail_to(to, 1).await;
    }
    app.outbox_drained().await;
    // The worker ends each batch after its settle: let it, before the rows
    // are made to look leased again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // As the group commit leaves its rows: leased to this worker, unsent.
    let lease = "2099-01-01 00:00:00.123456";
    app.db.execute(&format!(
        "UPDATE outbox SET status = 'sending', locked_until = '{lease}' \
         WHERE recipient = 'lost@example.com'; \
         UPDATE outbox SET status = 'sending', locked_until = '2099-01-01 00:00:00.654321' \
         WHERE recipient = 'other@example.com'"
    ));
    let at = chrono::NaiveDateTime::parse_from_str(lease, "%Y-%m-%d %H:%M:%S%.f").unwrap();
    app.state.outbox.orphaned(at);
    app.wait_mail_to("lost@example.com", 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app.sink.messages_to("other@example.com").len(),
        1,
        "a lease nobody lost is left alone"
    );
}
