//! Memory stays bounded under a login flood: the real binary, as ops run it
//! (no allocator settings in its environment), takes 200 concurrent wrong
//! logins from 200 addresses and its peak resident size stays small.

use std::net::TcpListener;
use std::process::{Child, Stdio};
use std::time::Duration;

use futures_util::future::join_all;

use crate::helpers::{tidings, TestDb};

const LOGINS: usize = 200;
/// The peak the flood may reach, less mapped files: a server's worth plus
/// two argon2 work areas (19 MiB each), where a work area per login once
/// took it to ~1.9 GB. Mapped files (mostly the executable's code: 34 MB of
/// the debug build tested here, 14-16 MB of a release one) are left out so
/// the bound means the same for both; `bench/login_memory.sh` measures the
/// whole VmHWM of a release build (62-65 MB).
const MAX_PRIVATE_KB: u64 = 80 * 1024;

/// The server child, killed when the test ends however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `kB` line of /proc/PID/status (`VmHWM`: peak resident set).
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `tidings` with the settings of this test; every allocator knob removed.
fn command(db: &TestDb, dir: &std::path::Path, port: u16) -> std::process::Command {
    let mut cmd = tidings();
    for (k, _) in std::env::vars() {
        if k.starts_with("MALLOC_") || k.starts_with("GLIBC_TUNABLES") || k == "LD_PRELOAD" {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(dir)
        .env("TIDINGS_DATABASE_URL", &db.url)
        .env("TIDINGS_LISTEN", format!("127.0.0.1:{port}"))
        .env("TIDINGS_BASE_URL", format!("http://127.0.0.1:{port}"))
        .env("TIDINGS_OUTBOX_DIR", dir.join("outbox"))
        .env("TIDINGS_TRUSTED_PROXIES", "127.0.0.1")
        .env("RUST_LOG", "error");
    cmd
}

/// One login attempt from `ip`: the form (its cookie and token), then the POST.
async fn wrong_login(
    client: &reqwest::Client,
    base: &str,
    ip: &str,
    name: &str,
) -> reqwest::RequestBuilder {
    let form = client
        .get(format!("{base}/admin/login"))
        .header("X-Forwarded-For", ip)
        .send()
        .await
        .unwrap();
    assert_eq!(form.status().as_u16(), 200);
    let cookie = form
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("tidings_login="))
        .and_then(|v| v.split(';').next())
        .expect("login cookie")
        .to_string();
    let body = form.text().await.unwrap();
    let marker = "name=\"csrf_token\" value=\"";
    let start = body.find(marker).expect("csrf_token") + marker.len();
    let token = body[start..start + body[start..].find('"').unwrap()].to_string();
    client
        .post(format!("{base}/admin/login"))
        .header("X-Forwarded-For", ip)
        .header(reqwest::header::COOKIE, cookie)
        .form(&[
            ("name", name),
            ("password", "not the password"),
            ("csrf_token", &token),
        ])
}

#[tokio::test]
async fn a_login_flood_keeps_peak_memory_bounded() {
    // Arrange: an admin, created the way ops do, and the server running.
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let out = command(&db, dir.path(), port)
        .args(["--create", "admin", "create", "editor"])
        .env("TIDINGS_ADMIN_PASSWORD", "correct horse battery staple")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = Server(
        command(&db, dir.path(), port)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while client.get(format!("{base}/health")).send().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = status_kb(server.0.id(), "VmHWM");

    // Act: every login's form first, then all the POSTs at once. Half try
    // the admin's name, half unknown names (a dummy hash is checked).
    let posts = join_all((0..LOGINS).map(|i| {
        let ip = format!("10.0.{}.{}", i / 250, i % 250 + 1);
        let name = if i % 2 == 0 {
            "editor".to_string()
        } else {
            format!("nobody{i}")
        };
        let (client, base) = (&client, &base);
        async move { wrong_login(client, base, &ip, &name).await }
    }))
    .await;
    let answers = join_all(posts.into_iter().map(|p| async move {
        p.timeout(Duration::from_secs(120))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }))
    .await;

    // Assert: the peak stayed low, and the attempts were checked and refused.
    let peak = status_kb(server.0.id(), "VmHWM");
    let files = status_kb(server.0.id(), "RssFile") + status_kb(server.0.id(), "RssShmem");
    assert!(
        peak.saturating_sub(files) <= MAX_PRIVATE_KB,
        "VmHWM {before} kB at start, {peak} kB after {LOGINS} concurrent logins \
         ({files} kB of it mapped files)"
    );
    // A login that waited 15 s for a hashing slot gets 503 (a loaded test
    // machine); none gets past the password or is throttled.
    assert!(answers.iter().all(|&s| s == 401 || s == 503), "{answers:?}");
    let checked = answers.iter().filter(|&&s| s == 401).count();
    assert!(checked >= LOGINS / 2, "only {checked} checked: {answers:?}");
}
