//! The admin console: login, sessions, throttling, CSRF, and every page.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, TestApp};

pub const ADMIN: &str = "editor";
pub const PASSWORD: &str = "correct horse battery staple";

/// Creates an admin the way `tidings admin create` does.
pub async fn create_admin(app: &TestApp, name: &str, password: &str) {
    let hash = tidings::domain::password::hash(password).unwrap();
    let name = name.to_string();
    tidings::db::run(&app.state.pool, move |c| {
        tidings::db::admins::upsert(c, &name, &hash)
    })
    .await
    .unwrap();
}

/// A browser, as far as the console cares: a cookie jar and form posts.
pub struct Browser<'a> {
    pub app: &'a TestApp,
    pub cookies: BTreeMap<String, String>,
    /// Sent as X-Forwarded-For (the app must trust 127.0.0.1 as a proxy).
    pub forwarded_for: Option<String>,
}

pub struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> Option<&str> {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok())
    }

    /// The value of the first hidden `csrf_token` in the page.
    pub fn csrf_token(&self) -> String {
        let marker = "name=\"csrf_token\" value=\"";
        let start = self.body.find(marker).expect("csrf_token field") + marker.len();
        let end = self.body[start..].find('"').unwrap();
        self.body[start..start + end].to_string()
    }

    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_string)
    }
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookies: BTreeMap::new(),
            forwarded_for: None,
        }
    }

    /// A browser behind the trusted proxy at 127.0.0.1, coming from `ip`.
    pub fn from_address(app: &'a TestApp, ip: &str) -> Self {
        Self {
            forwarded_for: Some(ip.to_string()),
            ..Self::new(app)
        }
    }

    fn request(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let req = req.header(COOKIE, self.cookie_header());
        match &self.forwarded_for {
            Some(ip) => req.header("X-Forwarded-For", ip),
            None => req,
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn absorb(&mut self, res: reqwest::Response) -> Page {
        for v in res.headers().get_all(SET_COOKIE) {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || v.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        Page {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body: res.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let res = self
            .request(self.app.client.get(self.app.url(path)))
            .send()
            .await
            .unwrap();
        self.absorb(res).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let res = self
            .request(self.app.client.post(self.app.url(path)))
            .form(form)
            .send()
            .await
            .unwrap();
        self.absorb(res).await
    }

    /// Fetches the login form and submits it.
    pub async fn login(&mut self, name: &str, password: &str) -> Page {
        let form = self.get("/admin/login").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let token = form.csrf_token();
        self.post(
            "/admin/login",
            &[
                ("name", name),
                ("password", password),
                ("csrf_token", &token),
            ],
        )
        .await
    }

    /// The current session's CSRF token, read from a console page.
    pub async fn csrf(&mut self) -> String {
        let page = self.get("/admin/settings").await;
        assert_eq!(page.status, 200);
        page.csrf_token()
    }
}

/// An app with one admin and a browser logged in as them.
pub(crate) async fn logged_in(app: &TestApp) -> Browser<'_> {
    create_admin(app, ADMIN, PASSWORD).await;
    let mut b = Browser::new(app);
    let res = b.login(ADMIN, PASSWORD).await;
    assert_eq!(res.status, 303, "{}", res.body);
    b
}

fn sessions(app: &TestApp) -> i64 {
    app.db.count("SELECT COUNT(*) FROM admin_sessions")
}

#[tokio::test]
async fn pages_redirect_to_login_and_json_answers_401_without_a_session() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app);
    for path in [
        "/admin",
        "/admin/subscribers",
        "/admin/subscribers/abc",
        "/admin/articles",
        "/admin/digests",
        "/admin/settings",
    ] {
        let res = b.get(path).await;
        assert_eq!(res.status, 303, "{path}");
        assert_eq!(res.location(), Some("/admin/login"), "{path}");
    }
    let res = b.get("/admin/digests/progress").await;
    assert_eq!(res.status, 401);
    assert!(res.body.contains("error"));
    let res = b.post("/admin/digests/send", &[("csrf_token", "x")]).await;
    assert_eq!(res.status, 303);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM digests"), 0);
}

#[tokio::test]
async fn login_page_says_how_to_create_the_first_admin() {
    let app = spawn_app().await;
    let page = Browser::new(&app).get("/admin/login").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("tidings admin create"), "{}", page.body);
    create_admin(&app, ADMIN, PASSWORD).await;
    let page = Browser::new(&app).get("/admin/login").await;
    assert!(!page.body.contains("tidings admin create"));
}

#[tokio::test]
async fn login_sets_a_hashed_server_side_session_in_a_strict_cookie() {
    let app = spawn_app().await;
    create_admin(&app, ADMIN, PASSWORD).await;
    let mut b = Browser::new(&app);

    let res = b.login(ADMIN, PASSWORD).await;

    assert_eq!(res.status, 303);
    assert_eq!(res.location(), Some("/admin"));
    let cookie = res.set_cookie("tidings_session").expect("session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Path=/admin"), "{cookie}");
    assert!(cookie.contains("Max-Age=43200"), "{cookie}");
    assert!(!cookie.contains("Secure"), "http base_url: {cookie}");
    let raw = b.cookies["tidings_session"].clone();
    let stored = app
        .db
        .query_strings("SELECT id_hash AS v FROM admin_sessions");
    assert_eq!(stored, vec![tidings::domain::token::hash(&raw)]);
    let page = b.get("/admin").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(ADMIN));
    // The login form of a logged-in browser goes to the dashboard.
    assert_eq!(b.get("/admin/login").await.location(), Some("/admin"));
}

#[tokio::test]
async fn session_cookie_is_secure_when_base_url_is_https() {
    let app = spawn_app_with(|s| {
        s.insert("base_url".into(), "https://news.example".into());
    })
    .await;
    create_admin(&app, ADMIN, PASSWORD).await;
    let mut b = Browser::new(&app);
    let res = b.login(ADMIN, PASSWORD).await;
    assert_eq!(res.status, 303);
    let cookie = res.set_cookie("tidings_session").unwrap();
    assert!(cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn a_session_survives_a_restart() {
    let app = spawn_app().await;
    let cookies = logged_in(&app).await.cookies;
    let (db, sink, settings) = app.shutdown().await;
    let app = crate::helpers::start(db, sink, settings).await;
    let mut b = Browser::new(&app);
    b.cookies = cookies;
    assert_eq!(b.get("/admin").await.status, 200);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_answer() {
    let app = spawn_app().await;
    create_admin(&app, ADMIN, PASSWORD).await;

    let wrong = Browser::new(&app).login(ADMIN, "not the password").await;
    let unknown = Browser::new(&app).login("nobody", PASSWORD).await;

    for res in [&wrong, &unknown] {
        assert_eq!(res.status, 401);
        assert!(res.body.contains("Wrong name or password."));
        assert!(res.set_cookie("tidings_session").is_none());
    }
    assert_eq!(sessions(&app), 0);
    let mut b = Browser::new(&app);
    b.login(ADMIN, "").await;
    assert_eq!(b.get("/admin").await.status, 303);
}

#[tokio::test]
async fn an_unknown_user_costs_a_full_password_check() {
    let app = spawn_app().await;
    create_admin(&app, ADMIN, PASSWORD).await;
    // Warm up (the dummy hash is made on first use).
    Browser::new(&app).login("warm-up", "x").await;
    let mut known = Duration::MAX;
    let mut unknown = Duration::MAX;
    for i in 0..3 {
        let mut b = Browser::new(&app);
        let form = b.get("/admin/login").await.csrf_token();
        let t = Instant::now();
        let res = b
            .post(
                "/admin/login",
                &[
                    ("name", ADMIN),
                    ("password", "wrong"),
                    ("csrf_token", &form),
                ],
            )
            .await;
        assert_eq!(res.status, 401);
        known = known.min(t.elapsed());
        let mut b = Browser::new(&app);
        let form = b.get("/admin/login").await.csrf_token();
        let t = Instant::now();
        let name = format!("ghost{i}");
        let res = b
            .post(
                "/admin/login",
                &[
                    ("name", &name),
                    ("password", "wrong"),
                    ("csrf_token", &form),
                ],
            )
            .await;
        assert_eq!(res.status, 401);
        unknown = unknown.min(t.elapsed());
    }
    assert!(
        unknown * 3 >= known,
        "unknown user answered in {unknown:?}, wrong password in {known:?}"
    );
}

#[tokio::test]
async fn logins_are_throttled_per_account_then_per_ip() {
    let app = spawn_app().await;
    create_admin(&app, ADMIN, PASSWORD).await;
    let mut b = Browser::new(&app);
    for _ in 0..5 {
        assert_eq!(b.login(ADMIN, "guess").await.status, 401);
    }
    // Even the right password waits now: the account's budget is spent.
    let res = b.login(ADMIN, PASSWORD).await;
    assert_eq!(res.status, 429);
    assert!(res.body.contains("Too many login attempts"));
    assert_eq!(res.headers["retry-after"], "60");
    assert_eq!(sessions(&app), 0);
    // Other names from the same address: 4 more make 10 from this IP.
    for i in 0..4 {
        let name = format!("other{i}");
        assert_eq!(b.login(&name, "guess").await.status, 401);
    }
    assert_eq!(b.login("fresh-name", "guess").await.status, 429);
}

#[tokio::test]
async fn guessing_from_one_address_does_not_lock_the_admin_out_elsewhere() {
    // Arrange: behind a proxy, so each client has its own address.
    let app = spawn_app_with(|s| {
        s.insert("trusted_proxies".into(), "127.0.0.1".into());
    })
    .await;
    create_admin(&app, ADMIN, PASSWORD).await;
    let mut attacker = Browser::from_address(&app, "203.0.113.7");

    // Act: the account's budget from the attacker's address is spent.
    for _ in 0..5 {
        assert_eq!(attacker.login(ADMIN, "guess").await.status, 401);
    }
    let throttled = attacker.login(ADMIN, "guess").await;
    let right_from_attacker = attacker.login(ADMIN, PASSWORD).await;
    let mut admin = Browser::from_address(&app, "198.51.100.20");
    let res = admin.login(ADMIN, PASSWORD).await;

    // Assert: the attacker waits, the admin from elsewhere is in.
    assert_eq!(throttled.status, 429);
    assert_eq!(right_from_attacker.status, 429);
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(res.location(), Some("/admin"));
    assert_eq!(sessions(&app), 1);
    // Another IPv6 address of the attacker's /64 shares their budget.
    let mut v6 = Browser::from_address(&app, "2001:db8:1:2::1");
    for _ in 0..5 {
        assert_eq!(v6.login(ADMIN, "guess").await.status, 401);
    }
    let mut same_block = Browser::from_address(&app, "2001:db8:1:2:ffff::9");
    assert_eq!(same_block.login(ADMIN, "guess").await.status, 429);
}

#[tokio::test]
async fn forged_and_expired_sessions_are_logged_out() {
    let app = spawn_app().await;
    let mut b = logged_in(&app).await;
    assert_eq!(b.get("/admin").await.status, 200);

    let mut forged = Browser::new(&app);
    forged.cookies.insert(
        "tidings_session".into(),
        tidings::domain::token::random_token(),
    );
    assert_eq!(forged.get("/admin").await.status, 303);
    assert_eq!(forged.get("/admin/digests/progress").await.status, 401);
    // The stored hash is not a session id either.
    let stored = app
        .db
        .query_strings("SELECT id_hash AS v FROM admin_sessions");
    forged
        .cookies
        .insert("tidings_session".into(), stored[0].clone());
    assert_eq!(forged.get("/admin").await.status, 303);
    forged
        .cookies
        .insert("tidings_session".into(), "../\"; x".into());
    assert_eq!(forged.get("/admin").await.status, 303);

    app.db
        .execute("UPDATE admin_sessions SET expires_at = '2000-01-01 00:00:00'");
    let res = b.get("/admin").await;
    assert_eq!(res.status, 303);
    assert_eq!(res.location(), Some("/admin/login"));
    assert_eq!(b.get("/admin/digests/progress").await.status, 401);
}

#[tokio::test]
async fn logout_needs_the_csrf_token_and_ends_the_session() {
    let app = spawn_app().await;
    let mut b = logged_in(&app).await;
    let old = b.cookies.clone();

    let res = b.post("/admin/logout", &[]).await;
    assert_eq!(res.status, 403);
    assert_eq!(sessions(&app), 1);
    assert_eq!(b.get("/admin").await.status, 200);

    let token = b.csrf().await;
    let res = b.post("/admin/logout", &[("csrf_token", &token)]).await;
    assert_eq!(res.status, 303);
    assert_eq!(res.location(), Some("/admin/login"));
    assert_eq!(sessions(&app), 0);
    assert!(!b.cookies.contains_key("tidings_session"));
    let mut replay = Browser::new(&app);
    replay.cookies = old;
    assert_eq!(replay.get("/admin").await.status, 303);
}

#[tokio::test]
async fn every_login_gets_a_new_session_id() {
    let app = spawn_app().await;
    let mut b = logged_in(&app).await;
    let first = b.cookies["tidings_session"].clone();
    // A logged-in browser's login form sends it to the dashboard; a login
    // posted anyway (say, a session cookie planted before) gets a new id.
    assert_eq!(b.get("/admin/login").await.location(), Some("/admin"));
    let mut fresh = Browser::new(&app);
    let token = fresh.get("/admin/login").await.csrf_token();
    b.cookies.insert(
        "tidings_login".into(),
        fresh.cookies["tidings_login"].clone(),
    );
    let res = b
        .post(
            "/admin/login",
            &[
                ("name", ADMIN),
                ("password", PASSWORD),
                ("csrf_token", &token),
            ],
        )
        .await;
    assert_eq!(res.status, 303);

    let second = b.cookies["tidings_session"].clone();
    assert_ne!(first, second);
    assert_eq!(sessions(&app), 1, "the pre-login session is deleted");
    let mut old = Browser::new(&app);
    old.cookies.insert("tidings_session".into(), first);
    assert_eq!(old.get("/admin").await.status, 303);
}

#[tokio::test]
async fn login_form_needs_its_signed_token_and_cookie() {
    let app = spawn_app().await;
    create_admin(&app, ADMIN, PASSWORD).await;

    // No login cookie at all (a cross-site form post).
    let mut b = Browser::new(&app);
    let res = b
        .post(
            "/admin/login",
            &[("name", ADMIN), ("password", PASSWORD), ("csrf_token", "x")],
        )
        .await;
    assert_eq!(res.status, 403);

    // A cookie, but a token that is not its MAC.
    let mut b = Browser::new(&app);
    b.get("/admin/login").await;
    let res = b
        .post("/admin/login", &[("name", ADMIN), ("password", PASSWORD)])
        .await;
    assert_eq!(res.status, 403);
    let res = b
        .post(
            "/admin/login",
            &[
                ("name", ADMIN),
                ("password", PASSWORD),
                ("csrf_token", &"0".repeat(64)),
            ],
        )
        .await;
    assert_eq!(res.status, 403);

    // Another browser's token does not fit this browser's cookie.
    let mut other = Browser::new(&app);
    let foreign = other.get("/admin/login").await.csrf_token();
    let res = b
        .post(
            "/admin/login",
            &[
                ("name", ADMIN),
                ("password", PASSWORD),
                ("csrf_token", &foreign),
            ],
        )
        .await;
    assert_eq!(res.status, 403);
    assert_eq!(sessions(&app), 0);

    // A foreign Origin is refused even with a good token.
    let token = b.get("/admin/login").await.csrf_token();
    let res = app
        .client
        .post(app.url("/admin/login"))
        .header(COOKIE, b.cookie_header())
        .header(ORIGIN, "https://evil.example")
        .form(&[
            ("name", ADMIN),
            ("password", PASSWORD),
            ("csrf_token", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    assert_eq!(sessions(&app), 0);

    // The same-origin post works.
    let res = app
        .client
        .post(app.url("/admin/login"))
        .header(COOKIE, b.cookie_header())
        .header(ORIGIN, app.address.as_str())
        .form(&[
            ("name", ADMIN),
            ("password", PASSWORD),
            ("csrf_token", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
}

async fn add_article(app: &TestApp, url: &str) {
    let token = app.api_token().await;
    let res = app
        .api_post(
            &token,
            "/api/articles",
            &json!({"url": url, "title": "A story"}),
        )
        .await;
    assert!(res.status().is_success());
}

fn seed_readers(app: &TestApp, n: usize, confirmed_at: &str) {
    let mut sql = String::new();
    for i in 0..n {
        let id = uuid::Uuid::new_v4();
        sql.push_str(&format!(
            "INSERT INTO subscribers (id, email, email_key, status, created_at, updated_at, confirmed_at) \
             VALUES ('{id}', 'r{i}-{id}@seed.example', 'r{i}-{id}@seed.example', 'confirmed', '{confirmed_at}', '{confirmed_at}', '{confirmed_at}');\n"
        ));
    }
    app.db.execute(&sql);
}

#[tokio::test]
async fn posts_without_the_right_csrf_token_are_403_and_change_nothing() {
    let app = spawn_app().await;
    seed_readers(&app, 2, "2026-11-01 00:00:00");
    add_article(&app, "https://news.example/a").await;
    let mut b = logged_in(&app).await;
    let token = b.csrf().await;

    for form in [
        vec![],
        vec![("csrf_token", "")],
        vec![("csrf_token", "wrong")],
        vec![("csrf_token", &token[..token.len() - 1])],
    ] {
        let res = b.post("/admin/digests/send", &form).await;
        assert_eq!(res.status, 403, "{form:?}");
        let mut with_article = form.clone();
        with_article.extend([("url", "https://news.example/b"), ("title", "B")]);
        let res = b.post("/admin/articles", &with_article).await;
        assert_eq!(res.status, 403, "{form:?}");
    }
    assert_eq!(app.db.count("SELECT COUNT(*) FROM digests"), 0);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM articles"), 1);

    // Another session's token does not work in this one.
    let mut other = Browser::new(&app);
    assert_eq!(other.login(ADMIN, PASSWORD).await.status, 303);
    let others = other.csrf().await;
    assert_ne!(others, token);
    let res = b
        .post("/admin/digests/send", &[("csrf_token", &others)])
        .await;
    assert_eq!(res.status, 403);

    // A foreign Origin is refused even with the right token.
    let res = app
        .client
        .post(app.url("/admin/digests/send"))
        .header(COOKIE, b.cookie_header())
        .header(ORIGIN, "https://evil.example")
        .form(&[("csrf_token", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM digests"), 0);
}

#[tokio::test]
async fn send_now_composes_a_digest_and_progress_reaches_100() {
    let app = spawn_app().await;
    seed_readers(&app, 3, "2026-11-01 00:00:00");
    add_article(&app, "https://news.example/a").await;
    let mut b = logged_in(&app).await;
    let token = b.csrf().await;

    let res = b
        .post("/admin/digests/send", &[("csrf_token", &token)])
        .await;

    // "Send now" makes a draft and opens its page: the step before sending.
    assert_eq!(res.status, 303);
    let id = app.db.count("SELECT MAX(id) FROM digests");
    assert_eq!(
        res.location(),
        Some(format!("/admin/digests/{id}").as_str())
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM deliveries"), 0);
    let draft = b.get(res.location().unwrap()).await;
    assert!(draft.body.contains("Send to 3 readers"), "{}", draft.body);
    let res = b
        .post(
            &format!("/admin/digests/{id}/send"),
            &[("csrf_token", &token)],
        )
        .await;
    assert_eq!(res.status, 303);
    assert_eq!(
        res.location(),
        Some(format!("/admin/digests?composed={id}").as_str())
    );
    assert_eq!(
        app.db
            .count(&format!("SELECT total FROM digests WHERE id = {id}")),
        3
    );
    let page = b.get(res.location().unwrap()).await;
    assert!(page.body.contains(&format!("Digest #{id} is on its way")));
    assert!(page.body.contains("<progress"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let p: serde_json::Value =
            serde_json::from_str(&b.get("/admin/digests/progress").await.body).unwrap();
        if p["items"][0]["percent"] == 100 && p["items"][0]["status"] == "sent" {
            break;
        }
        assert!(Instant::now() < deadline, "digest not sent: {p}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let p: serde_json::Value =
        serde_json::from_str(&b.get("/admin/digests/progress").await.body).unwrap();
    assert_eq!(p["items"][0]["sent"], 3);

    let res = b
        .post("/admin/digests/send", &[("csrf_token", &token)])
        .await;
    assert_eq!(res.location(), Some("/admin/digests?nothing_new=1"));
    assert_eq!(app.db.count("SELECT COUNT(*) FROM digests"), 1);
    assert!(b
        .get("/admin/digests?nothing_new=1")
        .await
        .body
        .contains("Nothing new"));
}

#[tokio::test]
async fn articles_form_uses_the_api_rules() {
    let app = spawn_app().await;
    let mut b = logged_in(&app).await;
    let token = b.csrf().await;

    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[("url", ""), ("title", "T")], "URL is required."),
        (
            &[("url", "ftp://x.example/a"), ("title", "T")],
            "URL must be an http(s) URL.",
        ),
        (
            &[("url", "https://x.example/a"), ("title", " ")],
            "Title is required.",
        ),
        (
            &[
                ("url", "https://x.example/a"),
                ("title", "T"),
                ("published_at", "yesterday"),
            ],
            "Published at must be an RFC 3339 time",
        ),
        (
            &[("url", "https://x.example/a"), ("title", &"x".repeat(301))],
            "Title is longer than 300 characters.",
        ),
    ];
    for (fields, message) in cases {
        let mut form = fields.to_vec();
        form.push(("csrf_token", &token));
        let res = b.post("/admin/articles", &form).await;
        assert_eq!(res.status, 422, "{fields:?}");
        assert!(res.body.contains(message), "{message}: {}", res.body);
    }
    // The form keeps what was typed, escaped.
    let res = b
        .post(
            "/admin/articles",
            &[
                ("url", "nope"),
                ("title", "<b>bold</b>"),
                ("csrf_token", &token),
            ],
        )
        .await;
    assert!(res.body.contains("&lt;b&gt;bold"));
    assert!(!res.body.contains("<b>bold"));
    assert_eq!(app.db.count("SELECT COUNT(*) FROM articles"), 0);

    let good = [
        ("url", "https://news.example/story"),
        ("title", "A good story"),
        ("summary", "Short."),
        ("published_at", "2026-11-29T08:00:00Z"),
        ("csrf_token", token.as_str()),
    ];
    let res = b.post("/admin/articles", &good).await;
    assert_eq!(res.status, 303);
    assert_eq!(res.location(), Some("/admin/articles?added=1"));
    let res = b.post("/admin/articles", &good).await;
    assert_eq!(res.status, 303, "the same URL updates");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM articles"), 1);
    let page = b.get("/admin/articles?added=1").await;
    assert!(page.body.contains("A good story"));
    assert!(page.body.contains("Article saved."));
}

#[tokio::test]
async fn dashboard_shows_counts_chart_and_recent_digests() {
    let app = spawn_app().await;
    let today = chrono::Utc::now()
        .naive_utc()
        .format("%Y-%m-%d 10:00:00")
        .to_string();
    seed_readers(&app, 3, &today);
    seed_readers(&app, 1, "2020-01-01 00:00:00");
    assert_eq!(
        app.signup("pending@example.com").await.status().as_u16(),
        200
    );
    let mut b = logged_in(&app).await;

    let page = b.get("/admin").await;

    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(r#"data-count="total">5<"#),
        "{}",
        page.body
    );
    assert!(page.body.contains(r#"data-count="confirmed">4<"#));
    assert!(page.body.contains(r#"data-count="pending">1<"#));
    assert!(page.body.contains(r#"data-count="unsubscribed">0<"#));
    assert!(page.body.contains("<svg"), "the chart is inline SVG");
    assert_eq!(page.body.matches("<rect").count(), 30);
    assert!(page.body.contains(": 3</title>"), "today's bar counts 3");
    assert!(page.body.contains("3 in all; 4 confirmed now"));
    assert!(page.body.contains("No digest yet"));
}

#[tokio::test]
async fn subscribers_search_filter_page_and_consent_history() {
    let app = spawn_app().await;
    app.signup("alice@example.com").await;
    app.confirmed_reader("bob@example.org").await;
    let mut b = logged_in(&app).await;

    let page = b.get("/admin/subscribers?q=ALICE&status=").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("alice@example.com"));
    assert!(!page.body.contains("bob@example.org"));
    let page = b.get("/admin/subscribers?q=&status=confirmed").await;
    assert!(page.body.contains("bob@example.org"));
    assert!(!page.body.contains("alice@example.com"));
    assert_eq!(b.get("/admin/subscribers?status=vip").await.status, 400);
    assert_eq!(b.get("/admin/subscribers?page=zero").await.status, 400);
    assert_eq!(b.get("/admin/subscribers?page=0").await.status, 400);
    assert_eq!(b.get("/admin/subscribers?page=9").await.status, 200);

    let id = app
        .db
        .query_strings("SELECT id AS v FROM subscribers WHERE email = 'bob@example.org'")
        .remove(0);
    let page = b.get(&format!("/admin/subscribers/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("bob@example.org"));
    assert!(page.body.contains("requested"));
    assert!(page.body.contains("<td>confirmed</td>"));
    assert!(page.body.contains("127.0.0.1"));
    assert_eq!(b.get("/admin/subscribers/nobody").await.status, 404);
    assert_eq!(
        b.get(&format!("/admin/subscribers/{}", "x".repeat(100)))
            .await
            .status,
        404
    );
}

/// A NUL byte is a client's mistake wherever it is typed; PostgreSQL would
/// refuse it (a 500 if it got that far).
#[tokio::test]
async fn nul_bytes_in_console_input_are_client_errors() {
    let app = spawn_app().await;
    let mut b = logged_in(&app).await;
    assert_eq!(b.get("/admin/subscribers/%00").await.status, 404);
    assert_eq!(b.get("/admin/subscribers?q=a%00b").await.status, 400);
    let csrf = b.csrf().await;
    let page = b
        .post("/admin/subscribers/%00/erase", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(page.status, 404);
    let page = b
        .post(
            "/admin/articles",
            &[
                ("csrf_token", &csrf),
                ("url", "https://news.example/nul"),
                ("title", "Nul"),
                ("summary", "a\0b"),
            ],
        )
        .await;
    assert_eq!(page.status, 422);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM articles"), 0);
    let mut stranger = Browser::new(&app);
    assert_eq!(stranger.login("ad\0min", "guess").await.status, 401);
}

#[tokio::test]
async fn settings_page_masks_secrets() {
    let secret = "s3cret-value-that-must-never-be-shown-0123456789";
    let app = spawn_app_with(|s| {
        s.insert("secret_key".into(), secret.into());
    })
    .await;
    let mut b = logged_in(&app).await;
    let page = b.get("/admin/settings").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("digest_cron"));
    assert!(page.body.contains("********"));
    assert!(!page.body.contains(secret));
}

#[tokio::test]
async fn console_script_is_served_and_unknown_console_paths_are_404() {
    let app = spawn_app().await;
    let res = app.get("/admin/console.js").await;
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(res.text().await.unwrap().contains("data-progress-url"));
    let mut b = logged_in(&app).await;
    assert_eq!(b.get("/admin/nothing-here").await.status, 404);
}

#[tokio::test]
async fn erase_button_erases_with_the_csrf_token_only() {
    let app = spawn_app().await;
    app.confirmed_reader("carol@example.com").await;
    let id = app
        .db
        .query_strings("SELECT id AS v FROM subscribers")
        .remove(0);
    let mut b = logged_in(&app).await;
    let page = b.get(&format!("/admin/subscribers/{id}")).await;
    assert!(page
        .body
        .contains(&format!("action=\"/admin/subscribers/{id}/erase\"")));
    let path = format!("/admin/subscribers/{id}/erase");

    for form in [vec![], vec![("csrf_token", "forged")]] {
        let res = b.post(&path, &form).await;
        assert_eq!(res.status, 403);
    }
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM subscribers WHERE email = 'carol@example.com'"),
        1
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM suppressions"), 0);

    let token = b.csrf().await;
    let res = b.post(&path, &[("csrf_token", &token)]).await;

    assert_eq!(res.status, 303);
    assert_eq!(
        res.location(),
        Some(format!("/admin/subscribers/{id}?erased=1").as_str())
    );
    assert_eq!(
        app.db.query_strings("SELECT status AS v FROM subscribers"),
        ["erased"]
    );
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM subscribers WHERE email IS NOT NULL"),
        0
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM suppressions"), 1);
    assert_eq!(
        app.db
            .query_strings("SELECT source AS v FROM consent_events WHERE event = 'erased'"),
        ["admin console (editor)"]
    );
    let page = b.get(res.location().unwrap()).await;
    assert!(page.body.contains("Erased: the address is gone"));
    assert!(!page.body.contains("carol@example.com"));
    assert!(!page.body.contains("/erase\""), "no button once erased");
    // Again: nothing more to do; an unknown id is 404.
    let res = b.post(&path, &[("csrf_token", &token)]).await;
    assert_eq!(
        res.location(),
        Some(format!("/admin/subscribers/{id}").as_str())
    );
    let res = b
        .post("/admin/subscribers/nobody/erase", &[("csrf_token", &token)])
        .await;
    assert_eq!(res.status, 404);
}

#[tokio::test]
async fn concurrent_logins_queue_for_the_hashing_permits() {
    let app = spawn_app().await;
    create_admin(&app, ADMIN, PASSWORD).await;
    let mut forms = Vec::new();
    for _ in 0..8 {
        let mut b = Browser::new(&app);
        let token = b.get("/admin/login").await.csrf_token();
        forms.push((b.cookie_header(), token));
    }
    let started = Instant::now();
    let answers =
        futures_util::future::join_all(forms.iter().enumerate().map(|(i, (cookie, token))| {
            let name = format!("flood{i}");
            app.client
                .post(app.url("/admin/login"))
                .header(COOKIE, cookie.as_str())
                .form(&[
                    ("name", name.as_str()),
                    ("password", "x"),
                    ("csrf_token", token.as_str()),
                ])
                .send()
        }))
        .await;
    for res in answers {
        assert_eq!(res.unwrap().status().as_u16(), 401);
    }
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(
        app.state.login_guard.hashing_permits_free(),
        tidings::limits::HASHING_PERMITS
    );
}

#[tokio::test]
async fn the_draft_page_previews_edits_tests_and_asks_before_sending() {
    let app = spawn_app().await;
    seed_readers(&app, 2, "2026-11-01 00:00:00");
    add_article(&app, "https://news.example/a").await;
    add_article(&app, "https://news.example/b").await;
    let mut b = logged_in(&app).await;
    let token = b.csrf().await;
    let res = b
        .post("/admin/digests/send", &[("csrf_token", &token)])
        .await;
    let id = app.db.count("SELECT MAX(id) FROM digests");
    assert_eq!(
        res.location(),
        Some(format!("/admin/digests/{id}").as_str())
    );

    let page = b.get(&format!("/admin/digests/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(page
        .body
        .contains(&format!("src=\"/admin/digests/{id}/preview\"")));
    assert!(page.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-src 'self'"));
    assert!(page.body.contains("Send to 2 readers"));
    let frame = b.get(&format!("/admin/digests/{id}/preview")).await;
    assert_eq!(frame.headers["x-frame-options"], "SAMEORIGIN");
    assert!(frame.body.contains("https://news.example/a"));

    // Take the first article out, give a subject and an intro.
    let ids = app.db.query_strings(&format!(
        "SELECT CAST(id AS TEXT) AS v FROM articles WHERE digest_id = {id} ORDER BY id"
    ));
    let (first, second) = (format!("pos_{}", ids[0]), format!("pos_{}", ids[1]));
    let res = b
        .post(
            &format!("/admin/digests/{id}/edit"),
            &[
                ("csrf_token", &token),
                ("subject", "Edited by the desk"),
                ("intro", "Hello."),
                (&first, "0"),
                (&second, "1"),
            ],
        )
        .await;
    assert_eq!(res.status, 303);
    assert!(b.get(res.location().unwrap()).await.body.contains("Saved."));
    assert_eq!(
        app.db
            .query_strings(&format!("SELECT subject AS v FROM digests WHERE id = {id}")),
        vec!["Edited by the desk"]
    );
    assert_eq!(
        app.db.count(&format!(
            "SELECT article_count FROM digests WHERE id = {id}"
        )),
        1
    );
    let res = b
        .post(
            &format!("/admin/digests/{id}/edit"),
            &[("csrf_token", &token), (&second, "0")],
        )
        .await;
    let page = b.get(res.location().unwrap()).await;
    assert!(
        page.body.contains("must keep at least one article"),
        "{}",
        page.body
    );

    // Send test: to the desk only.
    let res = b
        .post(
            &format!("/admin/digests/{id}/test"),
            &[("csrf_token", &token), ("to", "desk@example.com")],
        )
        .await;
    assert_eq!(res.status, 303);
    let mail = app.wait_mail_to("desk@example.com", 1).await;
    assert_eq!(mail.subject().unwrap(), "[Test] Edited by the desk");
    let res = b
        .post(
            &format!("/admin/digests/{id}/test"),
            &[("csrf_token", &token), ("to", "not-an-address")],
        )
        .await;
    assert!(b
        .get(res.location().unwrap())
        .await
        .body
        .contains("class=\"error\""));
    assert_eq!(app.db.count("SELECT COUNT(*) FROM deliveries"), 0);

    // Without the CSRF token nothing happens.
    let res = b.post(&format!("/admin/digests/{id}/send"), &[]).await;
    assert_eq!(res.status, 403);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM deliveries"), 0);
    assert_eq!(b.get("/admin/digests/999").await.status, 404);
}
