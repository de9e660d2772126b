//! Test app builder: the real server on port 0 with a fresh database (a temp
//! SQLite file, or a new PostgreSQL database when TIDINGS_TEST_DATABASE_URL
//! points at a server; dropped afterwards) and a real SMTP server in-process.

use std::collections::BTreeMap;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::Connection;
use tidings::config::Settings;
use tidings::startup::{Application, StopHandle};
use tidings::state::SharedState;

use crate::support::smtp::{MailSink, ReceivedMail};

/// A database that exists for one test.
pub struct TestDb {
    pub url: String,
    admin_url: Option<String>,
    name: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub fn new() -> TestDb {
        match std::env::var("TIDINGS_TEST_DATABASE_URL") {
            Ok(admin_url) if !admin_url.is_empty() => {
                let name = format!("tidings_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = diesel::PgConnection::establish(&admin_url)
                    .expect("TIDINGS_TEST_DATABASE_URL must reach PostgreSQL");
                conn.batch_execute(&format!("CREATE DATABASE {name}"))
                    .expect("create test database");
                let mut url = url::Url::parse(&admin_url).expect("admin url");
                url.set_path(&name);
                TestDb {
                    url: url.to_string(),
                    admin_url: Some(admin_url),
                    name,
                    _dir: None,
                }
            }
            _ => {
                let dir = tempfile::tempdir().expect("tempdir");
                let path = dir.path().join("tidings.db");
                TestDb {
                    url: format!("sqlite://{}", path.display()),
                    admin_url: None,
                    name: String::new(),
                    _dir: Some(dir),
                }
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.admin_url.is_some()
    }

    /// Runs raw SQL against the test database (assertions on stored data).
    pub fn query_strings(&self, sql: &str) -> Vec<String> {
        use diesel::sql_types::Text;
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            v: String,
        }
        let rows: Vec<Row> = if self.is_postgres() {
            let mut c = diesel::PgConnection::establish(&self.url).expect("pg");
            diesel::sql_query(sql).load(&mut c).expect("query")
        } else {
            let path = self.url.trim_start_matches("sqlite://");
            let mut c = sqlite(path);
            diesel::sql_query(sql).load(&mut c).expect("query")
        };
        rows.into_iter().map(|r| r.v).collect()
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.query_strings(&format!("SELECT CAST(({sql}) AS TEXT) AS v"))[0]
            .parse()
            .expect("number")
    }

    pub fn execute(&self, sql: &str) {
        if self.is_postgres() {
            let mut c = diesel::PgConnection::establish(&self.url).expect("pg");
            c.batch_execute(sql).expect("execute");
        } else {
            let path = self.url.trim_start_matches("sqlite://");
            let mut c = sqlite(path);
            c.batch_execute(sql).expect("execute");
        }
    }
}

/// A side connection to the app's SQLite file that waits for the app's
/// writers instead of failing with "database is locked".
fn sqlite(path: &str) -> diesel::SqliteConnection {
    let mut c = diesel::SqliteConnection::establish(path).expect("sqlite");
    c.batch_execute("PRAGMA busy_timeout = 10000")
        .expect("busy_timeout");
    c
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(admin) = &self.admin_url {
            if let Ok(mut conn) = diesel::PgConnection::establish(admin) {
                let _ = conn.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ));
            }
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub state: SharedState,
    pub sink: MailSink,
    pub db: TestDb,
    pub client: reqwest::Client,
    pub stop: StopHandle,
    pub settings: BTreeMap<String, String>,
    /// The SMTP/LMTP receiver's port, with `inbound_listen` set.
    pub inbound_port: Option<u16>,
    server: Option<tokio::task::JoinHandle<()>>,
}

pub fn base_settings(db: &TestDb, sink: &MailSink) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    map.insert("listen".into(), "127.0.0.1:0".into());
    map.insert("base_url".into(), "http://tidings.test".into());
    map.insert("database_url".into(), db.url.clone());
    map.insert("smtp_url".into(), sink.url());
    map.insert("signup_rate_per_minute".into(), "0".into());
    map.insert(
        "mail_from".into(),
        "The Daily Test <news@tidings.test>".into(),
    );
    map
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts an app; `tweak` may change any setting before start.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut BTreeMap<String, String>)) -> TestApp {
    let db = TestDb::new();
    let sink = MailSink::start().await;
    let mut map = base_settings(&db, &sink);
    tweak(&mut map);
    start(db, sink, map).await
}

/// Starts an app on an existing database and sink (restarts, second instances).
pub async fn start(db: TestDb, sink: MailSink, map: BTreeMap<String, String>) -> TestApp {
    let settings = Settings::from_map(&map).expect("test settings");
    let app = Application::build(settings).await.expect("build app");
    let port = app.port();
    let inbound_port = app.inbound_port();
    let state = app.state();
    let stop = app.stop_handle();
    let server = tokio::spawn(async move {
        let _ = app.run_until_stopped().await;
    });
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        state,
        sink,
        db,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // Under the server's 5 s keep-alive: a connection idle that
            // long is not reused just as the server closes it (a request
            // on it would fail with IncompleteMessage).
            .pool_idle_timeout(Duration::from_secs(3))
            .build()
            .expect("client"),
        stop,
        settings: map,
        inbound_port,
        server: Some(server),
    }
}

impl TestApp {
    /// Stops the server and waits for its workers to settle what was in
    /// flight; returns the database and sink for a restart.
    pub async fn shutdown(mut self) -> (TestDb, MailSink, BTreeMap<String, String>) {
        self.stop.stop(true).await;
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), server).await;
        }
        let TestApp {
            db, sink, settings, ..
        } = self;
        (db, sink, settings)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// Signs up through the HTML form.
    pub async fn signup(&self, email: &str) -> reqwest::Response {
        self.post_form("/subscriptions", &[("email", email), ("name", "")])
            .await
    }

    /// Creates an API token the way ops do and returns it.
    pub async fn api_token(&self) -> String {
        let token = format!("tid_test_{}", uuid::Uuid::new_v4().simple());
        let hash = tidings::domain::token::hash(&token);
        tidings::db::run(&self.state.pool, move |c| {
            tidings::db::api_tokens::create(c, "test", &hash)
        })
        .await
        .expect("token");
        token
    }

    pub async fn api_get(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    pub async fn api_post(
        &self,
        token: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Waits for the nth email to `to` and returns it.
    pub async fn wait_mail_to(&self, to: &str, n: usize) -> ReceivedMail {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let mails = self.sink.messages_to(to);
            if mails.len() >= n {
                return mails[n - 1].clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no mail #{n} to {to} within 15 s (have {})",
                mails.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Signs up, reads the confirmation mail, confirms. Returns the token.
    pub async fn confirmed_reader(&self, email: &str) -> String {
        let before = self.sink.messages_to(email).len();
        assert_eq!(self.signup(email).await.status().as_u16(), 200);
        let mail = self.wait_mail_to(email, before + 1).await;
        let token = confirmation_token(&mail);
        let res = self
            .post_form("/subscriptions/confirm", &[("token", &token)])
            .await;
        assert_eq!(res.status().as_u16(), 200);
        token
    }

    /// Waits until no outbox row is queued or in flight.
    pub async fn outbox_drained(&self) {
        wait_until(Duration::from_secs(15), || async {
            self.db
                .count("SELECT COUNT(*) FROM outbox WHERE status IN ('queued','sending')")
                == 0
        })
        .await;
    }
}

/// The token in a confirmation mail's link.
pub fn confirmation_token(mail: &ReceivedMail) -> String {
    let link = mail
        .links()
        .into_iter()
        .find(|l| l.contains("/subscriptions/confirm?token="))
        .expect("confirmation link in mail");
    link.split("token=").nth(1).expect("token").to_string()
}

/// The unsubscribe token in a digest's List-Unsubscribe header.
pub fn unsubscribe_token(mail: &ReceivedMail) -> String {
    let header = mail.header("List-Unsubscribe").expect("List-Unsubscribe");
    let https = header
        .split(',')
        .map(|p| p.trim().trim_matches(|c| c == '<' || c == '>'))
        .find(|p| p.starts_with("http"))
        .expect("https unsubscribe");
    https.split("token=").nth(1).expect("token").to_string()
}

/// Polls `check` until it holds, failing the test after `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The real `tidings` binary, without the TIDINGS_* settings of the
/// environment the tests run in.
pub fn tidings() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TIDINGS_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// A command's stderr without its first line, `database: …`, which every
/// command that opens the database writes.
pub fn without_database_line(stderr: &str) -> String {
    match stderr.split_once('\n') {
        Some((first, rest)) if first.starts_with("database: ") => rest.to_string(),
        _ => stderr.to_string(),
    }
}
