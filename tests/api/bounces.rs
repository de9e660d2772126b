//! Inbound mail: VERP envelopes, `tidings inbound` on a pipe (bounces,
//! complaints, mailto unsubscribes), GET /api/bounces. The messages are
//! real ones from the Sisimai corpus (tests/fixtures/bounces/sisimai/,
//! see its README), with our tagged address where the MTA would put it.

use std::io::Write;
use std::process::{Output, Stdio};

use serde_json::json;

use crate::digests::{add_article, wait_digest_sent};
use crate::helpers::{spawn_app_with, tidings, TestApp};
use crate::support::smtp::ReceivedMail;

const BOUNCES: &str = "bounces@news.tidings.test";

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/bounces/sisimai/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    String::from_utf8_lossy(&std::fs::read(path).expect("fixture")).into_owned()
}

async fn app() -> TestApp {
    spawn_app_with(|s| {
        s.insert("bounce_address".into(), BOUNCES.into());
    })
    .await
}

/// `tidings inbound` with the app's settings, the message on stdin.
fn inbound(app: &TestApp, message: &str, args: &[&str]) -> Output {
    let mut cmd = tidings();
    for key in ["database_url", "bounce_address", "soft_bounce_limit"] {
        if let Some(value) = app.settings.get(key) {
            cmd.env(format!("TIDINGS_{}", key.to_uppercase()), value);
        }
    }
    let mut child = cmd
        .arg("inbound")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tidings");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(message.as_bytes()).expect("write");
    drop(stdin);
    child.wait_with_output().expect("wait")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A confirmed reader who got one digest; returns (reader id, digest id,
/// the digest as received).
async fn reader_with_digest(
    app: &TestApp,
    token: &str,
    email: &str,
) -> (String, i64, ReceivedMail) {
    app.confirmed_reader(email).await;
    let n = app.db.count("SELECT COUNT(*) FROM articles");
    add_article(app, token, &format!("https://news.example/a{n}"), "A story").await;
    let res = app.api_post(token, "/api/digests", &json!({})).await;
    let id = res.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    wait_digest_sent(app, token, id).await;
    let mails = app.sink.messages_to(email);
    let digest = mails.last().expect("digest").clone();
    let reader = app.db.query_strings(&format!(
        "SELECT id AS v FROM subscribers WHERE email = '{email}'"
    ))[0]
        .clone();
    (reader, id, digest)
}

fn status_of(app: &TestApp, reader: &str) -> String {
    app.db.query_strings(&format!(
        "SELECT status AS v FROM subscribers WHERE id = '{reader}'"
    ))[0]
        .clone()
}

fn events(app: &TestApp, reader: &str) -> Vec<String> {
    app.db.query_strings(&format!(
        "SELECT event AS v FROM consent_events WHERE subscriber_id = '{reader}' ORDER BY id"
    ))
}

/// The reader's mailto unsubscribe address from a digest's List-Unsubscribe.
fn mailto_address(mail: &ReceivedMail) -> String {
    let header = mail.header("List-Unsubscribe").expect("List-Unsubscribe");
    let mailto = header
        .split(',')
        .map(|p| p.trim().trim_matches(|c| c == '<' || c == '>'))
        .find_map(|p| p.strip_prefix("mailto:"))
        .expect("a mailto in List-Unsubscribe");
    mailto.split('?').next().unwrap().to_string()
}

#[tokio::test]
async fn every_email_leaves_with_a_verp_envelope_and_a_per_reader_mailto() {
    let app = app().await;
    let token = app.api_token().await;
    let (reader, _, digest) = reader_with_digest(&app, &token, "verp@example.com").await;
    let confirmation = &app.sink.messages_to("verp@example.com")[0];
    for mail in [confirmation, &digest] {
        assert!(
            mail.from.starts_with("bounces+") && mail.from.ends_with("@news.tidings.test"),
            "envelope sender {}",
            mail.from
        );
        assert!(mail.from.len() <= 64 + 1 + "news.tidings.test".len());
    }
    assert!(digest.from.starts_with("bounces+d"), "{}", digest.from);
    assert!(
        confirmation.from.starts_with("bounces+c"),
        "{}",
        confirmation.from
    );
    // The header From is still mail_from.
    assert!(digest.header("From").unwrap().contains("news@tidings.test"));
    let mailto = mailto_address(&digest);
    assert!(mailto.starts_with("unsubscribe+") && mailto.ends_with("@news.tidings.test"));
    assert!(!mailto.contains(&reader), "the token is not the plain id");
}

#[tokio::test]
async fn a_hard_dsn_on_the_pipe_bounces_the_reader_and_is_listed() {
    let app = app().await;
    let token = app.api_token().await;
    let (reader, digest_id, digest) = reader_with_digest(&app, &token, "gone@example.com").await;
    // A Postfix DSN (550 5.1.1) for another address: the VERP tag the MTA
    // passes as the recipient is what names the reader.
    let dsn = fixture("lhost-postfix-04.eml");
    let out = inbound(&app, &dsn, &["--recipient", &digest.from]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).starts_with("recorded: hard"), "{out:?}");
    assert_eq!(status_of(&app, &reader), "bounced");
    assert_eq!(events(&app, &reader).last().unwrap(), "bounced");
    let source = app.db.query_strings(&format!(
        "SELECT source AS v FROM consent_events WHERE subscriber_id = '{reader}' AND event = 'bounced'"
    ));
    assert!(source[0].contains("5.1.1"), "{source:?}");
    let listed: serde_json::Value = app
        .api_get(&token, &format!("/api/bounces?digest={digest_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["total"], 1, "{listed}");
    let item = &listed["items"][0];
    assert_eq!(item["kind"], "hard");
    assert_eq!(item["status_code"], "5.1.1");
    assert_eq!(item["source"], "pipe");
    assert_eq!(item["subscriber_id"], reader.as_str());
    assert_eq!(item["digest_id"], digest_id);
    // The reader's export has it too.
    let export: serde_json::Value = app
        .api_get(&token, &format!("/api/subscribers/{reader}/export"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(export["bounces"][0]["kind"], "hard", "{export}");
    // /metrics has it though another process recorded it: the digest's
    // figures are read from the database.
    let series = format!("tidings_digest_bounces{{digest=\"{digest_id}\",kind=\"hard\"}} 1");
    let rate = format!("tidings_digest_bounce_rate{{digest=\"{digest_id}\"}} 1");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let metrics = app.get("/metrics").await.text().await.unwrap();
        if metrics.contains(&series) && metrics.contains(&rate) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_tag_in_the_to_header_works_without_a_recipient_argument() {
    let app = app().await;
    let token = app.api_token().await;
    let (reader, _, digest) = reader_with_digest(&app, &token, "header@example.com").await;
    let dsn = fixture("lhost-postfix-04.eml").replacen(
        "To: shironeko@example.ne.jp",
        &format!("To: {}", digest.from),
        1,
    );
    let out = inbound(&app, &dsn, &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(status_of(&app, &reader), "bounced");
}

#[tokio::test]
async fn a_mailto_unsubscribe_unsubscribes_at_once_and_a_forged_one_changes_nothing() {
    let app = app().await;
    let token = app.api_token().await;
    let (reader, _, digest) = reader_with_digest(&app, &token, "leaver@example.com").await;
    let to = mailto_address(&digest);
    let forged = to.replacen("unsubscribe+", "unsubscribe+a", 1);
    let message = |to: &str| {
        format!(
            "From: leaver@example.com\r\nTo: {to}\r\nSubject: unsubscribe\r\n\r\nunsubscribe\r\n"
        )
    };
    let out = inbound(&app, &message(&forged), &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(status_of(&app, &reader), "confirmed");
    let out = inbound(&app, &message(&to), &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), "unsubscribed");
    assert_eq!(status_of(&app, &reader), "unsubscribed");
    let methods = app.db.query_strings(&format!(
        "SELECT method AS v FROM consent_events WHERE subscriber_id = '{reader}' AND event = 'unsubscribed'"
    ));
    assert_eq!(methods, ["mailto"]);
}

#[tokio::test]
async fn a_complaint_unsubscribes_and_suppresses_the_reader_even_against_import() {
    let app = app().await;
    let token = app.api_token().await;
    let (reader, digest_id, digest) = reader_with_digest(&app, &token, "angry@example.com").await;
    // An ARF report quoting our email, whose Return-Path is the VERP address.
    let arf = fixture("arf-01.eml").replacen(
        "Return-Path: <support@example.ed.jp>",
        &format!("Return-Path: <{}>", digest.from),
        1,
    );
    let out = inbound(&app, &arf, &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).starts_with("recorded: complaint"), "{out:?}");
    assert_eq!(status_of(&app, &reader), "unsubscribed");
    assert_eq!(events(&app, &reader).last().unwrap(), "complained");
    let counts: serde_json::Value = app
        .api_get(&token, "/api/bounces?kind=complaint")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(counts["items"][0]["digest_id"], digest_id);
    // The digest's counts: one complaint of one email sent is past 0.3%.
    let shown: serde_json::Value = app
        .api_get(&token, &format!("/api/digests/{digest_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["bounces"]["complaints"], 1, "{shown}");
    assert_eq!(shown["bounces"]["hard"], 0);
    assert_eq!(shown["bounces"]["complaint_rate"], 1.0);
    assert_eq!(shown["bounces"]["complaint_level"], "alert");
    // The console says so on the digests page, and on the reader's page.
    crate::admin::create_admin(&app, "editor", "correct horse battery").await;
    let mut browser = crate::admin::Browser::new(&app);
    browser.login("editor", "correct horse battery").await;
    let page = browser.get("/admin/digests").await;
    assert!(
        page.body
            .contains(&format!("id=\"complaints-{digest_id}\""))
            && page.body.contains("past the 0.3%"),
        "{}",
        page.body
    );
    let page = browser.get(&format!("/admin/subscribers/{reader}")).await;
    assert!(page.body.contains("id=\"bounces\""), "{}", page.body);
    assert!(page.body.contains("<td>complaint</td>"), "{}", page.body);
    // An import of the address skips it: suppressed.
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("list.csv");
    std::fs::write(&csv, "email\nangry@example.com\nnew@example.com\n").unwrap();
    let out = tidings()
        .env("TIDINGS_DATABASE_URL", &app.db.url)
        .args(["subscribers", "import"])
        .arg(&csv)
        .args(["--source", "crm"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("imported 1,"),
        "{out:?}"
    );
    assert_eq!(status_of(&app, &reader), "unsubscribed");
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM suppressions WHERE reason = 'complained'"),
        1
    );
    // An API (JSON) signup of the address sends nothing.
    let before = app.sink.messages_to("angry@example.com").len();
    let res = app
        .post_json("/subscriptions", &json!({"email": "angry@example.com"}))
        .await;
    assert_eq!(res.status().as_u16(), 202);
    app.outbox_drained().await;
    assert_eq!(app.sink.messages_to("angry@example.com").len(), before);
}

#[tokio::test]
async fn soft_bounces_bounce_the_reader_at_the_limit_and_not_before() {
    let app = spawn_app_with(|s| {
        s.insert("bounce_address".into(), BOUNCES.into());
        s.insert("soft_bounce_limit".into(), "2".into());
    })
    .await;
    let token = app.api_token().await;
    let (reader, _, first) = reader_with_digest(&app, &token, "full@example.com").await;
    let full = fixture("lhost-amazonworkmail-04.eml");
    for _ in 0..2 {
        // The same digest twice is one email: not yet the limit.
        let out = inbound(&app, &full, &["--recipient", &first.from]);
        assert!(stdout(&out).starts_with("recorded: soft"), "{out:?}");
    }
    assert_eq!(status_of(&app, &reader), "confirmed");
    let n = app.sink.messages_to("full@example.com").len();
    add_article(&app, &token, "https://news.example/second", "Second").await;
    let res = app.api_post(&token, "/api/digests", &json!({})).await;
    let id = res.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    wait_digest_sent(&app, &token, id).await;
    let second = app.wait_mail_to("full@example.com", n + 1).await;
    let out = inbound(&app, &full, &["--recipient", &second.from]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(status_of(&app, &reader), "bounced", "{out:?}");
    assert_eq!(
        app.db.count(&format!(
            "SELECT COUNT(*) FROM bounces WHERE subscriber_id = '{reader}' AND kind = 'soft'"
        )),
        3
    );
}

#[tokio::test]
async fn a_delivered_digest_between_soft_bounces_starts_the_count_again() {
    let app = spawn_app_with(|s| {
        s.insert("bounce_address".into(), BOUNCES.into());
        s.insert("soft_bounce_limit".into(), "2".into());
    })
    .await;
    let token = app.api_token().await;
    let (reader, _, first) = reader_with_digest(&app, &token, "flaky@example.com").await;
    let full = fixture("lhost-amazonworkmail-04.eml");
    inbound(&app, &full, &["--recipient", &first.from]);
    // A second digest goes through (no bounce), then a third bounces.
    for n in 0..2 {
        let before = app.sink.messages_to("flaky@example.com").len();
        add_article(&app, &token, &format!("https://news.example/x{n}"), "X").await;
        let res = app.api_post(&token, "/api/digests", &json!({})).await;
        let id = res.json::<serde_json::Value>().await.unwrap()["id"]
            .as_i64()
            .unwrap();
        wait_digest_sent(&app, &token, id).await;
        let mail = app.wait_mail_to("flaky@example.com", before + 1).await;
        if n == 1 {
            inbound(&app, &full, &["--recipient", &mail.from]);
        }
    }
    assert_eq!(status_of(&app, &reader), "confirmed");
}

#[tokio::test]
async fn auto_replies_garbage_and_untagged_reports_change_nothing() {
    let app = app().await;
    let token = app.api_token().await;
    let (reader, _, digest) = reader_with_digest(&app, &token, "kijitora@example.co.jp").await;
    for message in [
        fixture("rfc3834-01.eml"),
        fixture("not-is-not-bounce-01.eml"),
        "\u{0}\u{1}garbage with no headers".to_string(),
        String::new(),
    ] {
        let out = inbound(&app, &message, &["--recipient", &digest.from]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(stdout(&out).starts_with("ignored"), "{out:?}");
    }
    // Over 10 MiB: read whole, ignored, exit 0.
    let huge = format!("Subject: x\r\n\r\n{}", "a".repeat(10 * 1024 * 1024 + 10));
    let out = inbound(&app, &huge, &[]);
    assert_eq!(out.status.code(), Some(0), "{:?}", out.status);
    assert!(stdout(&out).starts_with("ignored: message over"));
    // A DSN with no valid tag naming a reader who was mailed: believed.
    // The same naming someone never mailed (pending, no mail sent): not.
    let forged_tag = digest.from.replacen("bounces+d", "bounces+d9", 1);
    let out = inbound(
        &app,
        &fixture("lhost-postfix-04.eml"),
        &["--recipient", &forged_tag],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(status_of(&app, &reader), "bounced", "{out:?}");
    app.db.execute(
        "INSERT INTO subscribers (id, email, email_key, status, created_at, updated_at) VALUES \
         ('0190b3a2-7c4e-7d1a-9f00-123456789abc', 'shironeko@example.ne.jp', 'shironeko@example.ne.jp', \
          'confirmed', '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
    );
    let dsn = fixture("lhost-postfix-04.eml")
        .replace("kijitora@example.co.jp", "shironeko@example.ne.jp");
    let out = inbound(&app, &dsn, &[]);
    assert!(stdout(&out).starts_with("ignored"), "{out:?}");
    assert_eq!(
        status_of(&app, "0190b3a2-7c4e-7d1a-9f00-123456789abc"),
        "confirmed"
    );
    assert_eq!(
        app.db.count("SELECT COUNT(*) FROM bounces"),
        1,
        "only the believed one is stored"
    );
}

#[tokio::test]
async fn inbound_asks_for_a_retry_when_the_database_is_away_and_never_exits_1() {
    let message = fixture("lhost-postfix-04.eml");
    let run = |url: &str| {
        let mut child = tidings()
            .env("TIDINGS_DATABASE_URL", url)
            .env("TIDINGS_BOUNCE_ADDRESS", BOUNCES)
            .arg("inbound")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(message.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run("postgres://tidings@127.0.0.1:1/none?connect_timeout=2");
    assert_eq!(out.status.code(), Some(75), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().count(),
        1,
        "{out:?}"
    );
    let out = run("nonsense://x");
    assert_eq!(
        out.status.code(),
        Some(75),
        "a bad setting is retried, not bounced: {out:?}"
    );
}

#[tokio::test]
async fn the_bounces_api_filters_and_rejects_bad_filters() {
    let app = app().await;
    let token = app.api_token().await;
    let (reader, digest_id, digest) = reader_with_digest(&app, &token, "listed@example.com").await;
    inbound(
        &app,
        &fixture("lhost-amazonworkmail-04.eml"),
        &["--recipient", &digest.from],
    );
    let get = |q: String| {
        let app = &app;
        let token = &token;
        async move { app.api_get(token, &format!("/api/bounces{q}")).await }
    };
    for (q, total) in [
        (format!("?subscriber={reader}"), 1),
        (format!("?digest={digest_id}&kind=soft"), 1),
        ("?kind=hard".to_string(), 0),
        (format!("?digest={}", digest_id + 1), 0),
    ] {
        let res = get(q.clone()).await;
        assert_eq!(res.status().as_u16(), 200, "{q}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["total"], total, "{q}: {body}");
    }
    for (q, field) in [
        ("?kind=bouncy", "kind"),
        ("?digest=abc", "digest"),
        ("?subscriber=nope", "subscriber"),
        ("?page=0", "page"),
    ] {
        let res = get(q.to_string()).await;
        assert_eq!(res.status().as_u16(), 422, "{q}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["field"], field, "{q}");
    }
    let res = app.get("/api/bounces").await;
    assert_eq!(res.status().as_u16(), 401);
}

#[tokio::test]
async fn without_bounce_address_the_envelope_is_mail_from_and_nothing_is_read() {
    let app = spawn_app_with(|_| {}).await;
    app.confirmed_reader("plain@example.com").await;
    let mail = &app.sink.messages_to("plain@example.com")[0];
    assert_eq!(mail.from, "news@tidings.test");
    let out = tidings()
        .env("TIDINGS_DATABASE_URL", &app.db.url)
        .arg("inbound")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).starts_with("ignored"), "{out:?}");
}

/// A minimal SMTP client: sends each line, returns every reply.
async fn smtp_session(port: u16, script: &[&str]) -> Vec<String> {
    use tokio::io::{AsyncWriteExt, BufReader};
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the receiver");
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut replies = vec![smtp_reply(&mut read).await];
    for line in script {
        write.write_all(line.as_bytes()).await.unwrap();
        replies.push(smtp_reply(&mut read).await);
    }
    replies
}

/// One (possibly multi-line) reply; "" when the server closed.
async fn smtp_reply(read: &mut (impl tokio::io::AsyncBufRead + Unpin)) -> String {
    use tokio::io::AsyncBufReadExt;
    let mut all = String::new();
    loop {
        let mut line = String::new();
        if read.read_line(&mut line).await.unwrap_or(0) == 0 {
            break;
        }
        all.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    }
    all
}

#[tokio::test]
async fn the_smtp_receiver_takes_bounces_for_our_addresses_only() {
    let app = spawn_app_with(|s| {
        s.insert("bounce_address".into(), BOUNCES.into());
        s.insert("inbound_listen".into(), "127.0.0.1:0".into());
    })
    .await;
    let port = app.inbound_port.expect("receiver bound");
    let token = app.api_token().await;
    let (reader, digest_id, digest) =
        reader_with_digest(&app, &token, "smtp-gone@example.com").await;
    let dsn = fixture("lhost-postfix-04.eml")
        .replace("\n.", "\n..")
        .replace('\n', "\r\n");
    let rcpt = format!("RCPT TO:<{}>\r\n", digest.from);
    let data = format!("{dsn}\r\n.\r\n");
    let replies = smtp_session(
        port,
        &[
            "EHLO mx.example\r\n",
            "RCPT TO:<bounces@news.tidings.test>\r\n",
            "MAIL FROM:<>\r\n",
            "RCPT TO:<postmaster@news.tidings.test>\r\n",
            "RCPT TO:<bounces@elsewhere.example>\r\n",
            &rcpt,
            "DATA\r\n",
            &data,
            "QUIT\r\n",
        ],
    )
    .await;
    let codes: Vec<&str> = replies.iter().map(|r| &r[..3]).collect();
    assert_eq!(
        codes,
        ["220", "250", "503", "250", "550", "550", "250", "354", "250", "221"],
        "{replies:?}"
    );
    assert_eq!(status_of(&app, &reader), "bounced");
    let listed: serde_json::Value = app
        .api_get(&token, &format!("/api/bounces?digest={digest_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["source"], "smtp", "{listed}");
    // LMTP answers once per recipient; an oversized line ends the session.
    let lmtp = smtp_session(
        port,
        &[
            "LHLO mx.example\r\n",
            "MAIL FROM:<>\r\n",
            &rcpt,
            &rcpt,
            "DATA\r\n",
            "Subject: hello\r\n\r\nnot a bounce\r\n.\r\n",
            // Reads the second recipient's reply to DATA.
            "NOOP\r\n",
        ],
    )
    .await;
    assert_eq!(
        lmtp[6..],
        ["250 2.0.0 accepted\r\n", "250 2.0.0 accepted\r\n"]
    );
    let long = format!("NOOP {}\r\n", "x".repeat(2000));
    let cut = smtp_session(port, &[&long]).await;
    assert_eq!(cut.len(), 2);
    assert_eq!(cut[1], "", "the session was closed");
}

fn webhook_fixture(name: &str, recipient: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/webhooks/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path)
        .expect("fixture")
        .replace("RECIPIENT", recipient)
}

/// Signs a Mailgun payload as Mailgun does: hex HMAC-SHA256 of
/// timestamp + token under the signing key.
fn mailgun_signed(body: &str, key: &str, timestamp: i64) -> String {
    use hmac::Mac;
    let token = uuid::Uuid::new_v4().simple().to_string();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(format!("{timestamp}{token}").as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    body.replace("TIMESTAMP", &timestamp.to_string())
        .replace("\"TOKEN\"", &format!("\"{token}\""))
        .replace("SIGNATURE", &signature)
}

async fn webhook_app() -> TestApp {
    spawn_app_with(|s| {
        s.insert(
            "webhook_secrets".into(),
            "postmark=hooks:s3cret-pass, mailgun=key-mailgun-test".into(),
        );
    })
    .await
}

async fn post_webhook(
    app: &TestApp,
    provider: &str,
    body: String,
    auth: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url(&format!("/webhooks/{provider}")))
        .header("Content-Type", "application/json")
        .body(body);
    if let Some((user, password)) = auth {
        req = req.basic_auth(user, Some(password));
    }
    req.send().await.expect("request")
}

fn reader_id(app: &TestApp, email: &str) -> String {
    app.db.query_strings(&format!(
        "SELECT id AS v FROM subscribers WHERE email = '{email}'"
    ))[0]
        .clone()
}

#[tokio::test]
async fn postmark_webhooks_need_the_basic_auth_and_bounce_or_unsubscribe_readers() {
    let app = webhook_app().await;
    app.confirmed_reader("pm-gone@example.com").await;
    app.confirmed_reader("pm-angry@example.com").await;
    app.confirmed_reader("pm-away@example.com").await;
    let gone = reader_id(&app, "pm-gone@example.com");
    let bounce = webhook_fixture("postmark-bounce.json", "pm-gone@example.com");
    for auth in [
        None,
        Some(("hooks", "wrong")),
        Some(("other", "s3cret-pass")),
    ] {
        let res = post_webhook(&app, "postmark", bounce.clone(), auth).await;
        assert_eq!(res.status().as_u16(), 401, "{auth:?}");
    }
    assert_eq!(status_of(&app, &gone), "confirmed");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM bounces"), 0);
    let auth = Some(("hooks", "s3cret-pass"));
    let res = post_webhook(&app, "postmark", bounce, auth).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(status_of(&app, &gone), "bounced");
    let source = app.db.query_strings(&format!(
        "SELECT source || ' ' || kind || ' ' || status_code AS v FROM bounces WHERE subscriber_id = '{gone}'"
    ));
    assert_eq!(source, ["webhook hard 5.1.1"]);
    let complaint = webhook_fixture("postmark-spam-complaint.json", "pm-angry@example.com");
    assert_eq!(
        post_webhook(&app, "postmark", complaint, auth)
            .await
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        status_of(&app, &reader_id(&app, "pm-angry@example.com")),
        "unsubscribed"
    );
    let away = webhook_fixture("postmark-autoresponder.json", "pm-away@example.com");
    assert_eq!(
        post_webhook(&app, "postmark", away, auth)
            .await
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        status_of(&app, &reader_id(&app, "pm-away@example.com")),
        "confirmed"
    );
    let res = post_webhook(&app, "postmark", "{not json".into(), auth).await;
    assert_eq!(res.status().as_u16(), 400);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM bounces"), 2);
}

#[tokio::test]
async fn mailgun_webhooks_are_verified_by_their_signature() {
    let app = webhook_app().await;
    app.confirmed_reader("mg-gone@example.com").await;
    app.confirmed_reader("mg-angry@example.com").await;
    let gone = reader_id(&app, "mg-gone@example.com");
    let now = chrono::Utc::now().timestamp();
    let failed = webhook_fixture("mailgun-failed-permanent.json", "mg-gone@example.com");
    for body in [
        mailgun_signed(&failed, "another-key", now),
        mailgun_signed(&failed, "key-mailgun-test", now - 3600),
        failed.replace("TIMESTAMP", &now.to_string()),
    ] {
        let res = post_webhook(&app, "mailgun", body, None).await;
        assert_eq!(res.status().as_u16(), 401);
    }
    assert_eq!(status_of(&app, &gone), "confirmed");
    let res = post_webhook(
        &app,
        "mailgun",
        mailgun_signed(&failed, "key-mailgun-test", now),
        None,
    )
    .await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(status_of(&app, &gone), "bounced");
    let complained = webhook_fixture("mailgun-complained.json", "mg-angry@example.com");
    let res = post_webhook(
        &app,
        "mailgun",
        mailgun_signed(&complained, "key-mailgun-test", now),
        None,
    )
    .await;
    assert_eq!(res.status().as_u16(), 200);
    let angry = reader_id(&app, "mg-angry@example.com");
    assert_eq!(status_of(&app, &angry), "unsubscribed");
    assert_eq!(events(&app, &angry).last().unwrap(), "complained");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("tidings_bounces_total{kind=\"hard\"} 1")
            && metrics.contains("tidings_bounces_total{kind=\"complaint\"} 1"),
        "{metrics}"
    );
}

/// Signs a SendGrid payload as SendGrid does: ECDSA P-256 over SHA-256 of
/// timestamp + body, DER, base64.
fn sendgrid_signature(key: &p256::ecdsa::SigningKey, timestamp: &str, body: &str) -> String {
    use base64::Engine;
    use p256::ecdsa::signature::Signer;
    let signature: p256::ecdsa::Signature = key.sign(format!("{timestamp}{body}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
}

async fn post_sendgrid(
    app: &TestApp,
    body: &str,
    timestamp: &str,
    signature: &str,
) -> reqwest::Response {
    app.client
        .post(app.url("/webhooks/sendgrid"))
        .header("Content-Type", "application/json")
        .header("X-Twilio-Email-Event-Webhook-Timestamp", timestamp)
        .header("X-Twilio-Email-Event-Webhook-Signature", signature)
        .body(body.to_string())
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn sendgrid_webhooks_are_verified_by_their_ecdsa_signature() {
    use base64::Engine;
    use p256::pkcs8::EncodePublicKey;
    let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let other = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let public = p256::PublicKey::from(key.verifying_key())
        .to_public_key_der()
        .unwrap();
    let public = base64::engine::general_purpose::STANDARD.encode(public.as_bytes());
    let app = spawn_app_with(|s| {
        s.insert("webhook_secrets".into(), format!("sendgrid={public}"));
    })
    .await;
    for who in ["gone", "late", "fine", "blocked", "angry"] {
        app.confirmed_reader(&format!("sg-{who}@example.com")).await;
    }
    let mut body = webhook_fixture("sendgrid-events.json", "RECIPIENT");
    for who in ["gone", "late", "fine", "blocked", "angry"] {
        body = body.replace(
            &format!("RECIPIENT_{}", who.to_uppercase()),
            &format!("sg-{who}@example.com"),
        );
    }
    let now = chrono::Utc::now().timestamp().to_string();
    let stale = (chrono::Utc::now().timestamp() - 3600).to_string();
    for (timestamp, signature) in [
        (now.as_str(), sendgrid_signature(&other, &now, &body)),
        (stale.as_str(), sendgrid_signature(&key, &stale, &body)),
        (now.as_str(), sendgrid_signature(&key, &now, "[]")),
        (now.as_str(), String::new()),
    ] {
        let res = post_sendgrid(&app, &body, timestamp, &signature).await;
        assert_eq!(res.status().as_u16(), 401);
    }
    assert_eq!(app.db.count("SELECT COUNT(*) FROM bounces"), 0);

    let res = post_sendgrid(&app, &body, &now, &sendgrid_signature(&key, &now, &body)).await;
    assert_eq!(res.status().as_u16(), 200);
    let recorded: serde_json::Value = res.json().await.unwrap();
    assert_eq!(recorded["recorded"], 3, "{recorded}");
    let status = |who: &str| status_of(&app, &reader_id(&app, &format!("sg-{who}@example.com")));
    assert_eq!(status("gone"), "bounced");
    assert_eq!(status("angry"), "unsubscribed");
    for untouched in ["late", "fine", "blocked"] {
        assert_eq!(status(untouched), "confirmed", "{untouched}");
    }
    let kinds = app.db.query_strings(
        "SELECT source || ' ' || kind || ' ' || COALESCE(status_code, '-') AS v FROM bounces ORDER BY kind",
    );
    assert_eq!(
        kinds,
        [
            "webhook complaint -",
            "webhook hard 5.0.0",
            "webhook soft 5.7.1"
        ]
    );
    let res = post_sendgrid(
        &app,
        "{\"not\": \"a list\"}",
        &now,
        &sendgrid_signature(&key, &now, "{\"not\": \"a list\"}"),
    )
    .await;
    assert_eq!(res.status().as_u16(), 400);
}

/// An SNS envelope around an SES notification, signed (SignatureVersion
/// `version`) with the test key whose certificate is in the fixtures.
fn sns_signed(kind: &str, message: &str, version: &str) -> String {
    use base64::Engine;
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::{SignatureEncoding, Signer};
    let pem = std::fs::read_to_string(format!(
        "{}/tests/fixtures/webhooks/sns/test-signing-key.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(&pem).unwrap();
    let fields = [
        ("Type", kind.to_string()),
        ("MessageId", uuid::Uuid::new_v4().to_string()),
        ("TopicArn", "arn:aws:sns:us-west-2:123456789012:SES-EM-B".to_string()),
        ("Message", message.to_string()),
        ("Timestamp", "2026-12-02T18:00:00.000Z".to_string()),
        ("SubscribeURL", "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:123456789012:SES-EM-B&Token=2336412f37".to_string()),
        ("Token", "2336412f37".to_string()),
    ];
    let get = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    };
    let order: &[&str] = if kind == "Notification" {
        &["Message", "MessageId", "Timestamp", "TopicArn", "Type"]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    let signed: String = order
        .iter()
        .map(|n| format!("{n}\n{}\n", get(n).unwrap()))
        .collect();
    let signature = match version {
        "1" => rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(key)
            .sign(signed.as_bytes())
            .to_vec(),
        _ => rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key)
            .sign(signed.as_bytes())
            .to_vec(),
    };
    let mut envelope: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .filter(|(n, _)| kind != "Notification" || !matches!(*n, "SubscribeURL" | "Token"))
        .map(|(n, v)| (n.to_string(), serde_json::Value::from(v.as_str())))
        .collect();
    envelope.insert("SignatureVersion".into(), version.into());
    envelope.insert(
        "Signature".into(),
        base64::engine::general_purpose::STANDARD
            .encode(signature)
            .into(),
    );
    envelope.insert(
        "SigningCertURL".into(),
        "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-tidingstest.pem".into(),
    );
    serde_json::Value::Object(envelope).to_string()
}

#[tokio::test]
async fn ses_webhooks_are_verified_by_the_sns_signature_and_certificate() {
    let certs = format!("{}/tests/fixtures/webhooks/sns", env!("CARGO_MANIFEST_DIR"));
    let app = spawn_app_with(|s| {
        s.insert("webhook_secrets".into(), format!("ses={certs}"));
    })
    .await;
    app.confirmed_reader("ses-gone@example.com").await;
    app.confirmed_reader("ses-angry@example.com").await;
    let gone = reader_id(&app, "ses-gone@example.com");
    let bounce = webhook_fixture("ses-bounce.json", "ses-gone@example.com");
    let signed = sns_signed("Notification", &bounce, "1");
    let tampered = signed.replace("5.1.1 user unknown", "5.1.1 user unknowN");
    let elsewhere = signed.replace(
        "https://sns.us-west-2.amazonaws.com/",
        "https://sns.us-west-2.amazonaws.com.evil.example/",
    );
    let missing = signed.replace("tidingstest.pem", "0123abcd.pem");
    for (body, why) in [
        (tampered, "bad signature"),
        (elsewhere, "not an SNS certificate URL"),
        (missing, "no SNS signing certificate"),
    ] {
        let res = post_webhook(&app, "ses", body, None).await;
        assert_eq!(res.status().as_u16(), 401);
        let error: serde_json::Value = res.json().await.unwrap();
        assert!(error["error"].as_str().unwrap().contains(why), "{error}");
    }
    assert_eq!(status_of(&app, &gone), "confirmed");

    let res = post_webhook(&app, "ses", signed, None).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(status_of(&app, &gone), "bounced");
    let complaint = webhook_fixture("ses-complaint.json", "ses-angry@example.com");
    let res = post_webhook(
        &app,
        "ses",
        sns_signed("Notification", &complaint, "2"),
        None,
    )
    .await;
    assert_eq!(res.status().as_u16(), 200);
    let angry = reader_id(&app, "ses-angry@example.com");
    assert_eq!(status_of(&app, &angry), "unsubscribed");
    assert_eq!(events(&app, &angry).last().unwrap(), "complained");
    let kinds = app.db.query_strings(
        "SELECT source || ' ' || kind || ' ' || COALESCE(status_code, '-') AS v FROM bounces ORDER BY kind",
    );
    assert_eq!(kinds, ["webhook complaint -", "webhook hard 5.1.1"]);

    // A subscription confirmation is verified, logged and records nothing.
    let confirm = sns_signed(
        "SubscriptionConfirmation",
        "You have chosen to subscribe",
        "1",
    );
    let res = post_webhook(&app, "ses", confirm, None).await;
    assert_eq!(res.status().as_u16(), 200);
    let res = post_webhook(&app, "ses", "{\"Type\": 1}".into(), None).await;
    assert_eq!(res.status().as_u16(), 400);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM bounces"), 2);
}

#[tokio::test]
async fn the_console_lists_bounces_with_their_readers_and_filters() {
    let app = webhook_app().await;
    app.confirmed_reader("pm-gone@example.com").await;
    app.confirmed_reader("pm-angry@example.com").await;
    let auth = Some(("hooks", "s3cret-pass"));
    for (fixture, reader) in [
        ("postmark-bounce.json", "pm-gone@example.com"),
        ("postmark-spam-complaint.json", "pm-angry@example.com"),
    ] {
        let res = post_webhook(&app, "postmark", webhook_fixture(fixture, reader), auth).await;
        assert_eq!(res.status().as_u16(), 200);
    }
    let mut b = crate::admin::logged_in(&app).await;
    let all = b.get("/admin/bounces").await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert!(all.body.contains("2 reports"), "{}", all.body);
    assert!(all.body.contains("pm-gone@example.com") && all.body.contains("pm-angry@example.com"));
    let gone = reader_id(&app, "pm-gone@example.com");
    assert!(all.body.contains(&format!("/admin/subscribers/{gone}")));
    let hard = b.get("/admin/bounces?kind=hard&digest=").await;
    assert_eq!(hard.status, 200);
    assert!(hard.body.contains("1 report") && hard.body.contains("pm-gone@example.com"));
    assert!(!hard.body.contains("pm-angry@example.com"));
    let one = b.get(&format!("/admin/bounces?subscriber={gone}")).await;
    assert!(one.body.contains("1 report") && one.body.contains("for one reader"));
    for bad in [
        "kind=gone",
        "digest=abc",
        "digest=-1",
        "page=0",
        "subscriber=x",
    ] {
        let page = b.get(&format!("/admin/bounces?{bad}")).await;
        assert_eq!(page.status, 400, "{bad}");
    }
    let nav = b.get("/admin").await;
    assert!(nav.body.contains("href=\"/admin/bounces\""));
}

#[tokio::test]
async fn unconfigured_and_unknown_webhooks_are_404() {
    let app = spawn_app_with(|_| {}).await;
    for provider in ["postmark", "mailgun", "ses", "sendgrid", "nope"] {
        let res = post_webhook(&app, provider, "{}".into(), None).await;
        assert_eq!(res.status().as_u16(), 404, "{provider}");
    }
}
