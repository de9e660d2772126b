//! Health, readiness, metrics, headers, settings and the CLI basics.

use crate::helpers::{spawn_app, tidings, TestDb};

#[tokio::test]
async fn health_ready_and_metrics() {
    let app = spawn_app().await;
    let res = app.get("/health").await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert!(res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert_eq!(app.get("/ready").await.status().as_u16(), 200);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("tidings_http_requests_total"), "{metrics}");
    assert!(metrics.contains("endpoint=\"/health\""));
    assert!(metrics.contains("tidings_db_pool_connections"));
}

#[tokio::test]
async fn unknown_routes_are_404_not_5xx() {
    let app = spawn_app().await;
    assert_eq!(app.get("/nope").await.status().as_u16(), 404);
    let token = app.api_token().await;
    let res = app.api_get(&token, "/api/nope").await;
    assert_eq!(res.status().as_u16(), 404);
}

#[tokio::test]
async fn ready_is_503_while_the_database_is_gone() {
    let app = spawn_app().await;
    if app.db.is_postgres() {
        // Cut every connection and refuse new ones, then let it back.
        let name = app.db.url.rsplit('/').next().unwrap().to_string();
        let admin = std::env::var("TIDINGS_TEST_DATABASE_URL").unwrap();
        let admin_db = TestDbAdmin(admin);
        admin_db.exec(&format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false"
        ));
        admin_db.exec(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ));
        let res = app.get("/ready").await;
        assert_eq!(res.status().as_u16(), 503);
        let res = app.signup("down@example.com").await;
        assert_eq!(res.status().as_u16(), 503);
        // Signups grouped into one transaction all hear at once (~3-6 s: the
        // pool's 3 s timeout per group); none of them waits it out again on
        // its own (that took 12 s for these five).
        let started = std::time::Instant::now();
        let addresses: Vec<String> = (0..5).map(|i| format!("down{i}@example.com")).collect();
        let answers = futures_util::future::join_all(addresses.iter().map(|a| app.signup(a))).await;
        assert!(answers.iter().all(|r| r.status().as_u16() == 503));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(9),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(app.get("/health").await.status().as_u16(), 200);
        admin_db.exec(&format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true"
        ));
    } else {
        // An embedded SQLite file cannot "go away" while open; the outage
        // half of this test is PostgreSQL's (CI runs both backends).
        assert_eq!(app.get("/ready").await.status().as_u16(), 200);
        return;
    }
    let mut ok = false;
    for _ in 0..50 {
        if app.get("/ready").await.status().as_u16() == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ok, "ready again once the database is back");
    assert_eq!(app.signup("back@example.com").await.status().as_u16(), 200);
}

struct TestDbAdmin(String);
impl TestDbAdmin {
    fn exec(&self, sql: &str) {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        let mut c = diesel::PgConnection::establish(&self.0).unwrap();
        c.batch_execute(sql).unwrap();
    }
}

#[test]
fn bad_setting_stops_startup_naming_the_key() {
    let out = tidings()
        .env("TIDINGS_DATABASE_URL", "nonsense://x")
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        "error: setting database_url: unsupported scheme \"nonsense\""
    );
    let out = tidings()
        .env("TIDINGS_SEND_CONCURRENCY", "lots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("setting send_concurrency:"));
}

#[test]
fn usage_errors_exit_2_and_version_works() {
    assert_eq!(
        tidings().arg("frobnicate").output().unwrap().status.code(),
        Some(2)
    );
    assert_eq!(
        tidings().arg("--bogus").output().unwrap().status.code(),
        Some(2)
    );
    let out = tidings().arg("--version").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("tidings "));
}

#[test]
fn database_down_at_start_is_one_line_exit_1() {
    let out = tidings()
        .env("TIDINGS_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = crate::helpers::without_database_line(&String::from_utf8_lossy(&out.stderr));
    assert!(
        stderr.starts_with("error: database unreachable:"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn migrate_is_idempotent_and_config_file_is_read() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tidings.toml");
    std::fs::write(&file, format!("database_url = \"{}\"\n", db.url)).unwrap();
    for _ in 0..2 {
        let out = tidings()
            .arg("--config")
            .arg(&file)
            .arg("migrate")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(db.count("SELECT COUNT(*) FROM subscribers"), 0);
}

#[test]
fn token_create_prints_the_token_alone_on_the_last_line() {
    let db = TestDb::new();
    let out = tidings()
        .env("TIDINGS_DATABASE_URL", &db.url)
        .args(["--create", "token", "create", "ci"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.lines().last().unwrap();
    assert!(token.starts_with("tid_") && !token.contains(' '));
    // Stored hashed, never raw.
    assert_eq!(
        db.count(&format!(
            "SELECT COUNT(*) FROM api_tokens WHERE token_hash = '{token}'"
        )),
        0
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM api_tokens"), 1);
}
