//! Checks the test SMTP sink (support::smtp) against lettre's real async client.

use std::time::Duration;

use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::client::Tls;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::support::smtp::{MailSink, Mode};

const WAIT: Duration = Duration::from_secs(10);

fn transport(port: u16, pool_size: u32) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .tls(Tls::None)
        .timeout(Some(Duration::from_secs(5)))
        .pool_config(PoolConfig::new().max_size(pool_size))
        .build()
}

fn simple(to: &str, subject: &str) -> Message {
    Message::builder()
        .from("Newsletter <newsletter@example.com>".parse().unwrap())
        .to(to.parse().unwrap())
        .subject(subject)
        .body(format!("Body of {subject}\n"))
        .unwrap()
}

const TEXT: &str = "Grüße, Zoë!\n\nThis line is deliberately long so that any encoder has to wrap it: \
Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore \
et dolore magna aliqua — ünïcödé everywhere = signs too, and a URL https://news.example/a?x=1&y=2 done.\n\
.a line starting with a dot\n..two dots\n.\nEnd.\n";

const HTML: &str = "<html><body><p>Grüße, <b>Zoë</b>!</p>\n<p><a href=\"https://news.example/a?x=1&amp;y=2\">Read</a></p>\n\
<p>.leading dot and a very long line: Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod \
tempor incididunt ut labore et dolore magna aliqua — ünïcödé.</p></body></html>\n";

#[tokio::test]
async fn smtp_sink_receives_lettre_multipart() {
    let sink = MailSink::start().await;
    assert_eq!(
        sink.url(),
        format!("smtp://127.0.0.1:{}?tls=none", sink.port())
    );
    let mailer = transport(sink.port(), 2);
    let unsubscribe = format!(
        "<https://news.example/unsubscribe?token={}>, <mailto:unsubscribe@news.example?subject=unsubscribe>",
        "t".repeat(60)
    );
    let from: Mailbox = "Zoë Ünïcode-Wöhrle <zoe@example.com>".parse().unwrap();

    // 1. lettre's own choice of transfer encodings.
    let auto = Message::builder()
        .from(from.clone())
        .to("Reader One <one@example.com>".parse().unwrap())
        .to("two@example.com".parse().unwrap())
        .subject("Grüße aus Köln — your weekly digest of everything that happened on the news site")
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe"),
            unsubscribe.clone(),
        ))
        .multipart(MultiPart::alternative_plain_html(
            TEXT.to_string(),
            HTML.to_string(),
        ))
        .unwrap();
    // 2. Forced quoted-printable text and base64 HTML.
    let forced = Message::builder()
        .from(from.clone())
        .to("one@example.com".parse().unwrap())
        .subject("forced encodings")
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .header(ContentTransferEncoding::QuotedPrintable)
                        .body(TEXT.to_string()),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .header(ContentTransferEncoding::Base64)
                        .body(HTML.to_string()),
                ),
        )
        .unwrap();
    mailer.send(auto).await.expect("send auto");
    mailer.send(forced).await.expect("send forced");

    let mails = sink.wait_for(2, WAIT).await;
    assert_eq!(mails.len(), 2);
    let m = &mails[0];
    assert_eq!(m.from, "zoe@example.com");
    assert_eq!(
        m.to,
        vec!["one@example.com".to_string(), "two@example.com".to_string()]
    );
    assert!(
        m.header("subject").unwrap().contains("=?"),
        "subject is RFC 2047-encoded"
    );
    assert_eq!(
        m.subject().unwrap(),
        "Grüße aus Köln — your weekly digest of everything that happened on the news site"
    );
    assert!(
        m.header_decoded("From")
            .unwrap()
            .contains("Zoë Ünïcode-Wöhrle"),
        "{:?}",
        m.header("From")
    );
    assert_eq!(
        m.header("LIST-UNSUBSCRIBE")
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        unsubscribe
    );
    assert!(m.header("Message-ID").is_some() || m.header("Date").is_some());
    assert_eq!(m.text_body().unwrap(), TEXT);
    assert_eq!(m.html_body().unwrap(), HTML);
    assert_eq!(
        m.links(),
        vec!["https://news.example/a?x=1&y=2".to_string()]
    );
    assert!(
        m.data.lines().all(|l| l.len() <= 998),
        "no line over the SMTP limit"
    );

    let f = &mails[1];
    assert!(f
        .data
        .to_ascii_lowercase()
        .contains("content-transfer-encoding: quoted-printable"));
    assert!(f
        .data
        .to_ascii_lowercase()
        .contains("content-transfer-encoding: base64"));
    assert_eq!(f.text_body().unwrap(), TEXT);
    assert_eq!(f.html_body().unwrap(), HTML);
    assert_eq!(sink.messages_to("ONE@example.com").len(), 2);
    assert_eq!(sink.messages_to("two@example.com").len(), 1);
    assert!(sink.messages_to("three@example.com").is_empty());
    assert_eq!(sink.temp_failures(), 0);
    assert_eq!(sink.perm_failures(), 0);
}

#[tokio::test]
async fn smtp_sink_works_with_lettre_from_url() {
    let sink = MailSink::start().await;
    // lettre's from_url knows `smtp://host:port` (no TLS), `?tls=required`,
    // `?tls=opportunistic` and `smtps://`, but rejects `?tls=none` and
    // `?tls=starttls`: the app parses smtp_url itself.
    let url = sink.url();
    let plain = url.strip_suffix("?tls=none").unwrap();
    let mailer = AsyncSmtpTransport::<Tokio1Executor>::from_url(plain)
        .unwrap()
        .build();
    mailer
        .send(simple("a@example.com", "via url"))
        .await
        .expect("send via url");
    let mails = sink.wait_for(1, WAIT).await;
    assert_eq!(mails[0].subject().as_deref(), Some("via url"));
    // lettre ends every message with CRLF and then sends CRLF.CRLF, so a
    // single-part body arrives with one extra empty line (mailpit shows it too).
    assert!(
        mails[0].data.ends_with("Body of via url\r\n\r\n"),
        "{:?}",
        mails[0].data
    );
    assert_eq!(mails[0].text_body().as_deref(), Some("Body of via url\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn smtp_sink_twenty_concurrent_messages_on_one_pool() {
    let sink = MailSink::start().await;
    let mailer = transport(sink.port(), 4);
    let sends = (0..20).map(|i| {
        let mailer = mailer.clone();
        async move {
            mailer
                .send(simple(
                    &format!("reader{i}@example.com"),
                    &format!("message {i}"),
                ))
                .await
        }
    });
    for result in futures_util::future::join_all(sends).await {
        result.expect("concurrent send");
    }
    let mails = sink.wait_for(20, WAIT).await;
    assert_eq!(mails.len(), 20);
    let mut subjects: Vec<String> = mails.iter().map(|m| m.subject().unwrap()).collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), 20);
    for i in 0..20 {
        let to = sink.messages_to(&format!("reader{i}@example.com"));
        assert_eq!(to.len(), 1);
        assert_eq!(to[0].subject().unwrap(), format!("message {i}"));
    }
    // lettre's pool max_size bounds idle connections only: 20 concurrent sends
    // may open up to 20 connections; 4 are kept afterwards.
    assert!(sink.connections() <= 20 && sink.peak_connections() <= 20);
    assert!(
        sink.peak_connections() >= 2,
        "sends ran concurrently (peak {})",
        sink.peak_connections()
    );
    // Connections are reused: more messages do not open more connections.
    // (lettre hands a connection back to its pool in a spawned task: let the
    // pool fill up before counting.)
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = sink.connections();
    for i in 0..5 {
        mailer
            .send(simple("again@example.com", &format!("again {i}")))
            .await
            .unwrap();
    }
    assert_eq!(sink.connections(), before);
    assert_eq!(sink.wait_for(25, WAIT).await.len(), 25);
    drop(mailer);
    let deadline = tokio::time::Instant::now() + WAIT;
    while sink.active_connections() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sessions still open after the transport was dropped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn smtp_sink_temp_fail_mode() {
    let sink = MailSink::start().await;
    let mailer = transport(sink.port(), 2);
    sink.set_mode(Mode::TempFail);
    let err = mailer
        .send(simple("a@example.com", "deferred"))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "expected a 4xx error, got {err:?}");
    assert!(
        err.to_string().contains("4.3.0") || err.to_string().contains("451"),
        "{err}"
    );
    assert!(sink.temp_failures() >= 1);
    assert!(sink.messages().is_empty());

    sink.set_mode(Mode::Accept);
    mailer
        .send(simple("a@example.com", "deferred"))
        .await
        .expect("accepted after recovery");
    assert_eq!(sink.wait_for(1, WAIT).await.len(), 1);
    let failures = sink.temp_failures();
    mailer.send(simple("a@example.com", "ok")).await.unwrap();
    assert_eq!(sink.temp_failures(), failures);
}

#[tokio::test]
async fn smtp_sink_rejects_recipient() {
    let sink = MailSink::start().await;
    let mailer = transport(sink.port(), 2);
    sink.reject_recipient("Nobody@Example.com");
    let err = mailer
        .send(simple("nobody@example.com", "bounce"))
        .await
        .unwrap_err();
    assert!(err.is_permanent(), "expected a 5xx error, got {err:?}");
    assert!(err.to_string().contains("user unknown"), "{err}");
    assert_eq!(sink.perm_failures(), 1);
    assert_eq!(sink.temp_failures(), 0);

    // Other recipients still get mail, on the same (pooled) transport.
    mailer
        .send(simple("somebody@example.com", "fine"))
        .await
        .expect("other recipient");
    let mails = sink.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, vec!["somebody@example.com".to_string()]);
    assert!(sink.messages_to("nobody@example.com").is_empty());

    sink.clear_rejected_recipients();
    mailer
        .send(simple("nobody@example.com", "now ok"))
        .await
        .expect("no longer rejected");
    assert_eq!(sink.messages_to("nobody@example.com").len(), 1);
}

#[tokio::test]
async fn smtp_sink_drop_connections_mode() {
    let sink = MailSink::start().await;
    let mailer = transport(sink.port(), 2);
    mailer.send(simple("a@example.com", "first")).await.unwrap();
    sink.set_mode(Mode::DropConnections);
    // The pooled connection is closed at its next command, new ones at once.
    assert!(mailer.send(simple("a@example.com", "lost")).await.is_err());
    assert!(mailer
        .send(simple("a@example.com", "lost again"))
        .await
        .is_err());
    let raw = TcpStream::connect(("127.0.0.1", sink.port()))
        .await
        .unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(WAIT, BufReader::new(raw).read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "a dropped connection sends no greeting");

    sink.set_mode(Mode::Accept);
    mailer
        .send(simple("a@example.com", "second"))
        .await
        .expect("recovers");
    let subjects: Vec<String> = sink
        .wait_for(2, WAIT)
        .await
        .iter()
        .map(|m| m.subject().unwrap())
        .collect();
    assert_eq!(subjects, vec!["first".to_string(), "second".to_string()]);
}

#[tokio::test]
async fn smtp_sink_stop_and_restart_on_same_port() {
    let sink = MailSink::start().await;
    let port = sink.port();
    let mailer = transport(port, 2);
    mailer
        .send(simple("a@example.com", "before"))
        .await
        .unwrap();

    sink.stop().await;
    assert!(!sink.is_running());
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "connection refused while stopped"
    );
    assert!(mailer
        .send(simple("a@example.com", "while down"))
        .await
        .is_err());
    sink.stop().await; // idempotent

    sink.restart().await;
    assert!(sink.is_running());
    assert_eq!(sink.port(), port);
    mailer
        .send(simple("a@example.com", "after"))
        .await
        .expect("send after restart");
    let subjects: Vec<String> = sink
        .wait_for(2, WAIT)
        .await
        .iter()
        .map(|m| m.subject().unwrap())
        .collect();
    assert_eq!(subjects, vec!["before".to_string(), "after".to_string()]);

    // restart while running also works
    sink.restart().await;
    mailer
        .send(simple("a@example.com", "again"))
        .await
        .expect("send after second restart");
    assert_eq!(sink.wait_for(3, WAIT).await.len(), 3);
}

#[tokio::test]
#[should_panic(expected = "MailSink::wait_for: expected at least 1 message(s)")]
async fn smtp_sink_wait_for_panics_on_timeout() {
    let sink = MailSink::start().await;
    sink.wait_for(1, Duration::from_millis(100)).await;
}

async fn read_reply(rd: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(WAIT, rd.read_line(&mut line))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n > 0,
            "connection closed while waiting for a reply (got {all:?})"
        );
        all.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            return all;
        }
    }
}

#[tokio::test]
async fn smtp_sink_raw_protocol_and_malformed_input() {
    let sink = MailSink::start().await;
    let stream = TcpStream::connect(("127.0.0.1", sink.port()))
        .await
        .unwrap();
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    assert!(read_reply(&mut rd).await.starts_with("220 "));

    let mut exchange = async |cmd: &[u8]| {
        wr.write_all(cmd).await.unwrap();
        read_reply(&mut rd).await
    };
    let ehlo = exchange(b"EHLO client.example\r\n").await;
    assert!(
        ehlo.contains("250-PIPELINING\r\n")
            && ehlo.contains("250-8BITMIME\r\n")
            && ehlo.ends_with("250 SMTPUTF8\r\n"),
        "{ehlo}"
    );
    assert!(exchange(b"\xff\xfe garbage \x00\r\n")
        .await
        .starts_with("500 "));
    assert!(exchange(b"\r\n").await.starts_with("500 "));
    assert!(exchange(b"RCPT TO:<x@example.com>\r\n")
        .await
        .starts_with("503 "));
    assert!(exchange(b"DATA\r\n").await.starts_with("503 "));
    assert!(exchange(b"MAIL FROM\r\n").await.starts_with("501 "));
    assert!(exchange(b"MAIL FROM:<unterminated\r\n")
        .await
        .starts_with("501 "));
    assert!(
        exchange(b"mail from:<s@example.com> BODY=8BITMIME SMTPUTF8\r\n")
            .await
            .starts_with("250 ")
    );
    assert!(exchange(b"MAIL FROM:<t@example.com>\r\n")
        .await
        .starts_with("503 "));
    assert!(
        exchange(b"DATA\r\n").await.starts_with("503 "),
        "DATA needs a recipient"
    );
    assert!(exchange(b"RCPT TO:<>\r\n").await.starts_with("501 "));
    assert!(exchange(b"rcpt to: <R@example.com>\r\n")
        .await
        .starts_with("250 "));
    assert!(exchange(b"NOOP\r\n").await.starts_with("250 "));
    assert!(exchange(b"STARTTLS\r\n").await.starts_with("502 "));
    assert!(exchange(b"DATA\r\n").await.starts_with("354 "));
    let reply = exchange(b"Subject: raw\r\n\r\n..dot-stuffed\r\n...two\r\nlast\xc3\r\n.\r\n").await;
    assert!(reply.starts_with("250 "), "{reply}");

    // Pipelined: several commands in one write, answered in order.
    wr.write_all(
        b"RSET\r\nMAIL FROM:<>\r\nRCPT TO:<p@example.com>\r\nRCPT TO:<q@example.com>\r\nDATA\r\n",
    )
    .await
    .unwrap();
    for expected in ["250 ", "250 ", "250 ", "250 ", "354 "] {
        assert!(read_reply(&mut rd).await.starts_with(expected));
    }
    wr.write_all(b"Subject: pipelined\r\n\r\nhi\r\n.\r\nRSET\r\nQUIT\r\n")
        .await
        .unwrap();
    for expected in ["250 ", "250 ", "221 "] {
        assert!(read_reply(&mut rd).await.starts_with(expected));
    }
    let mut rest = Vec::new();
    rd.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "closed after QUIT");

    let mails = sink.wait_for(2, WAIT).await;
    assert_eq!(mails[0].from, "s@example.com");
    assert_eq!(mails[0].to, vec!["R@example.com".to_string()]);
    assert_eq!(
        mails[0].data,
        "Subject: raw\r\n\r\n.dot-stuffed\r\n..two\r\nlast\u{fffd}\r\n"
    );
    assert_eq!(
        mails[0].text_body().unwrap(),
        ".dot-stuffed\n..two\nlast\u{fffd}\n"
    );
    assert_eq!(mails[1].from, "");
    assert_eq!(
        mails[1].to,
        vec!["p@example.com".to_string(), "q@example.com".to_string()]
    );

    // An overlong command line gets 500 and the connection is closed.
    let stream = TcpStream::connect(("127.0.0.1", sink.port()))
        .await
        .unwrap();
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    read_reply(&mut rd).await;
    let mut long = b"MAIL FROM:<".to_vec();
    long.extend(std::iter::repeat_n(b'a', 10_000));
    long.extend_from_slice(b">\r\n");
    let _ = wr.write_all(&long).await;
    assert!(read_reply(&mut rd).await.starts_with("500 "));

    // A client that disconnects in the middle of DATA records nothing.
    let stream = TcpStream::connect(("127.0.0.1", sink.port()))
        .await
        .unwrap();
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    read_reply(&mut rd).await;
    wr.write_all(b"HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
        .await
        .unwrap();
    for _ in 0..4 {
        read_reply(&mut rd).await;
    }
    wr.write_all(b"Subject: cut\r\n\r\npartial").await.unwrap();
    drop(wr);
    drop(rd);

    // The server still works for lettre afterwards.
    transport(sink.port(), 1)
        .send(simple("z@example.com", "still alive"))
        .await
        .unwrap();
    let mails = sink.wait_for(3, WAIT).await;
    assert_eq!(mails.len(), 3, "the cut message is not recorded");
    assert_eq!(mails[2].subject().unwrap(), "still alive");
    sink.clear();
    assert!(sink.messages().is_empty());
}
