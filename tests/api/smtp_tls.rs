//! SMTP TLS to a relay whose certificate comes from a private CA, trusted
//! only through `smtp_ca_file`; TLS failures said once at warn with the
//! cause; no password in clear over the network unless `tls=none` says so.

use std::time::Duration;

use crate::helpers::{spawn_app_with, tidings, wait_until, TestApp};
use crate::support::tls_smtp::{TestCa, TlsRelay};

async fn app_with_relay(smtp_url: String, ca_file: Option<String>) -> TestApp {
    spawn_app_with(|s| {
        s.insert("smtp_url".into(), smtp_url);
        if let Some(file) = ca_file {
            s.insert("smtp_ca_file".into(), file);
        }
    })
    .await
}

#[tokio::test]
async fn starttls_to_a_private_ca_relay_works_with_smtp_ca_file() {
    let ca = TestCa::new();
    let relay = TlsRelay::start("127.0.0.1:0", Some(&ca)).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let url = format!("smtp://ops:secret@localhost:{}?tls=required", relay.port);
    let app = app_with_relay(url, Some(ca_file.display().to_string())).await;

    app.signup("reader@example.com").await;

    wait_until(Duration::from_secs(15), || async {
        !relay.seen().messages.is_empty()
    })
    .await;
    let seen = relay.seen();
    assert!(seen.messages[0].1, "the message came over TLS");
    assert!(seen.messages[0].0.contains("reader@example.com"));
    assert_eq!(seen.logins.len(), 1);
    assert!(seen.logins[0].1, "the password went over TLS");
}

#[tokio::test]
async fn without_smtp_ca_file_the_private_relay_is_not_trusted() {
    let ca = TestCa::new();
    let relay = TlsRelay::start("127.0.0.1:0", Some(&ca)).await;
    let url = format!("smtp://ops:secret@localhost:{}?tls=required", relay.port);
    let app = app_with_relay(url, None).await;

    app.signup("reader@example.com").await;

    wait_until(Duration::from_secs(15), || async {
        relay.seen().failed_handshakes > 0
    })
    .await;
    let seen = relay.seen();
    assert!(seen.messages.is_empty() && seen.logins.is_empty());
    wait_until(Duration::from_secs(15), || async {
        app.db
            .count("SELECT COUNT(*) FROM outbox WHERE last_error IS NOT NULL")
            == 1
    })
    .await;
}

#[test]
fn a_file_without_a_certificate_is_a_bad_setting() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ca.pem");
    std::fs::write(&file, "not a certificate\n").unwrap();
    let out = tidings()
        .current_dir(dir.path())
        .env("TIDINGS_SMTP_CA_FILE", &file)
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: setting smtp_ca_file:") && stderr.contains("no PEM certificate"),
        "{stderr}"
    );
}

/// This machine's address on its network (not loopback), as a relay
/// elsewhere on the network would be reached.
fn network_address() -> std::net::IpAddr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    socket
        .connect("192.0.2.1:9")
        .or_else(|_| socket.connect("8.8.8.8:53"))
        .expect("a network interface besides loopback (the test needs one)");
    let ip = socket.local_addr().unwrap().ip();
    assert!(!ip.is_loopback() && !ip.is_unspecified(), "{ip}");
    ip
}

#[tokio::test]
async fn no_password_in_clear_to_a_relay_across_the_network() {
    let relay = TlsRelay::start("0.0.0.0:0", None).await;
    let host = network_address();
    let url = format!("smtp://ops:secret@{host}:{}", relay.port);
    let app = app_with_relay(url, None).await;

    app.signup("reader@example.com").await;

    wait_until(Duration::from_secs(15), || async {
        app.db
            .count("SELECT COUNT(*) FROM outbox WHERE last_error LIKE '%not sending the SMTP password unencrypted%'")
            == 1
    })
    .await;
    let seen = relay.seen();
    assert!(
        seen.logins.is_empty() && seen.messages.is_empty(),
        "{seen:?}"
    );
}

#[tokio::test]
async fn tls_none_says_so_and_then_logs_in_in_clear() {
    let relay = TlsRelay::start("0.0.0.0:0", None).await;
    let host = network_address();
    let url = format!("smtp://ops:secret@{host}:{}?tls=none", relay.port);
    let app = app_with_relay(url, None).await;

    app.signup("reader@example.com").await;

    wait_until(Duration::from_secs(15), || async {
        !relay.seen().messages.is_empty()
    })
    .await;
    assert_eq!(relay.seen().logins.len(), 1);
}

/// The real binary: the warning at start for tls=none with a password, and
/// one warning with the cause for a burst of TLS failures.
#[test]
fn tls_warnings_are_said_at_warn_once() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ca = TestCa::new();
    let relay = rt.block_on(TlsRelay::start("127.0.0.1:0", Some(&ca)));
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tidings()
        .current_dir(dir.path())
        .env("TIDINGS_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "TIDINGS_SMTP_URL",
            format!("smtp://localhost:{}?tls=required", relay.port),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    rt.block_on(signup_when_up(port));
    // The first attempt and its retries (2 s, then 4 s later).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while relay.seen().failed_handshakes < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(relay.seen().failed_handshakes >= 3, "{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("SMTP TLS failed"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("UnknownIssuer"), "{stderr}");

    let out = tidings()
        .current_dir(dir.path())
        .env(
            "TIDINGS_SMTP_URL",
            "smtp://ops:secret@relay.example:25?tls=none",
        )
        .args(["token", "create", "x"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("WARN") && l.contains("tls=none") && l.contains("relay.example")),
        "{stderr}"
    );
}

/// Waits for a server started as a child to answer, then signs up once.
async fn signup_when_up(port: u16) {
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_until(Duration::from_secs(30), || async {
        client.get(format!("{base}/health")).send().await.is_ok()
    })
    .await;
    let res = client
        .post(format!("{base}/subscriptions"))
        .form(&[("email", "reader@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
}
