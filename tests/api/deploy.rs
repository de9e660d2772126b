//! Runs where it is deployed: under a path behind a reverse proxy that
//! strips the prefix or passes it through. A reader and an editor follow
//! only what the pages and emails give them (form actions, links,
//! redirects, cookies with their Path), the way a browser does.

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::admin::{create_admin, ADMIN, PASSWORD};
use crate::helpers::{spawn_app_with, unsubscribe_token, TestApp};
use crate::support::http_proxy::{HttpProxy, Prefix};

const PREFIX: &str = "/newsletter";

/// An app whose base_url is the proxy's origin under [`PREFIX`].
async fn behind_proxy(mode: Prefix) -> (HttpProxy, TestApp) {
    let proxy = HttpProxy::start(PREFIX, mode);
    let base = format!("{}{PREFIX}", proxy.origin());
    let app = spawn_app_with(|m| {
        m.insert("base_url".into(), base);
    })
    .await;
    proxy.forward_to(&app.address);
    (proxy, app)
}

/// A browser: cookies sent only under their Path, as browsers do.
struct Browser {
    origin: String,
    client: reqwest::Client,
    /// (name, value, path)
    cookies: Vec<(String, String, String)>,
}

struct Page {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Browser {
    fn new(proxy: &HttpProxy) -> Self {
        Self {
            origin: proxy.origin(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self, path: &str) -> String {
        self.cookies
            .iter()
            .filter(|(_, _, p)| path.starts_with(p.as_str()))
            .map(|(k, v, _)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder, path: &str) -> Page {
        let res = req
            .header(COOKIE, self.cookie_header(path))
            .send()
            .await
            .unwrap();
        for v in res.headers().get_all(SET_COOKIE) {
            let v = v.to_str().unwrap();
            let (name, value) = v.split(';').next().unwrap().split_once('=').unwrap();
            let path = v
                .split(';')
                .find_map(|a| a.trim().strip_prefix("Path="))
                .unwrap_or("/")
                .to_string();
            self.cookies.retain(|(n, _, _)| n != name);
            if !value.is_empty() && !v.contains("Max-Age=0") {
                self.cookies.push((name.into(), value.into(), path));
            }
        }
        Page {
            status: res.status().as_u16(),
            location: res
                .headers()
                .get(LOCATION)
                .map(|v| v.to_str().unwrap().to_string()),
            body: res.text().await.unwrap(),
        }
    }

    /// `path` is what a page gave: an absolute path, or a full URL.
    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.origin)
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.client.get(self.url(path));
        self.send(req, &path_of(path)).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self
            .client
            .post(self.url(path))
            .header("Origin", &self.origin)
            .form(form);
        self.send(req, &path_of(path)).await
    }
}

fn path_of(url: &str) -> String {
    match url.find("://") {
        Some(i) => {
            let rest = &url[i + 3..];
            rest.find('/')
                .map(|j| rest[j..].to_string())
                .unwrap_or("/".into())
        }
        None => url.to_string(),
    }
}

/// Every value of `attr="…"` in the page, `&amp;` decoded.
fn attrs(body: &str, attr: &str) -> Vec<String> {
    let marker = format!("{attr}=\"");
    body.match_indices(&marker)
        .map(|(i, _)| {
            let rest = &body[i + marker.len()..];
            rest[..rest.find('"').unwrap()].replace("&amp;", "&")
        })
        .collect()
}

/// The first POST form's action; every link and action of the page
/// checked to stay under the prefix.
fn form_action(page: &Page) -> String {
    assert_links_under_prefix(&page.body);
    attrs(&page.body, "action")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no form in {}", page.body))
}

fn csrf_token(body: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = body.find(marker).expect("csrf_token field") + marker.len();
    body[start..start + body[start..].find('"').unwrap()].to_string()
}

fn assert_links_under_prefix(body: &str) {
    for attr in [
        "href",
        "action",
        "src",
        "data-progress-url",
        "data-login-url",
    ] {
        for link in attrs(body, attr) {
            assert!(
                link.starts_with(&format!("{PREFIX}/"))
                    || link == PREFIX
                    || link.starts_with("http")
                    || link.starts_with('#'),
                "{attr}=\"{link}\" leaves {PREFIX}"
            );
        }
    }
}

async fn reader_signs_up_confirms_and_unsubscribes(mode: Prefix) {
    let (proxy, app) = behind_proxy(mode).await;
    let mut b = Browser::new(&proxy);
    let email = "reader@example.com";

    let form = b.get(&format!("{PREFIX}/")).await;
    assert_eq!(form.status, 200, "{}", form.body);
    let action = form_action(&form);
    assert_eq!(action, format!("{PREFIX}/subscriptions"));
    let done = b.post(&action, &[("email", email), ("name", "")]).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_links_under_prefix(&done.body);

    let mail = app.wait_mail_to(email, 1).await;
    let link = mail
        .links()
        .into_iter()
        .find(|l| l.contains("/subscriptions/confirm?token="))
        .unwrap();
    assert!(
        link.starts_with(&format!(
            "{}{PREFIX}/subscriptions/confirm?token=",
            proxy.origin()
        )),
        "{link}"
    );
    let confirm = b.get(&link).await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    let action = form_action(&confirm);
    let token = link.split("token=").nth(1).unwrap();
    let confirmed = b.post(&action, &[("token", token)]).await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    assert_links_under_prefix(&confirmed.body);

    let api = app.api_token().await;
    let api_client = reqwest::Client::new();
    let res = api_client
        .post(format!("{}{PREFIX}/api/articles", proxy.origin()))
        .bearer_auth(&api)
        .json(&json!({"url": "https://news.example/a", "title": "A story"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let res = api_client
        .post(format!("{}{PREFIX}/api/digests", proxy.origin()))
        .bearer_auth(&api)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let digest = app.wait_mail_to(email, 2).await;
    let unsubscribe = format!(
        "{}{PREFIX}/unsubscribe?token={}",
        proxy.origin(),
        unsubscribe_token(&digest)
    );
    assert!(digest
        .header("List-Unsubscribe")
        .unwrap()
        .contains(&format!("<{unsubscribe}>")));
    let page = b.get(&unsubscribe).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let action = form_action(&page);
    let gone = b.post(&action, &[]).await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    assert_links_under_prefix(&gone.body);
    assert_eq!(
        app.db.query_strings("SELECT status AS v FROM subscribers"),
        ["unsubscribed"]
    );
}

#[tokio::test]
async fn reader_flow_works_behind_a_proxy_that_strips_the_path() {
    reader_signs_up_confirms_and_unsubscribes(Prefix::Strip).await;
}

#[tokio::test]
async fn reader_flow_works_behind_a_proxy_that_passes_the_path_through() {
    reader_signs_up_confirms_and_unsubscribes(Prefix::Keep).await;
}

async fn editor_logs_in_and_out(mode: Prefix) {
    let (proxy, app) = behind_proxy(mode).await;
    create_admin(&app, ADMIN, PASSWORD).await;
    let mut b = Browser::new(&proxy);

    let away = b.get(&format!("{PREFIX}/admin")).await;
    assert_eq!(away.status, 303);
    let login = away.location.unwrap();
    assert_eq!(login, format!("{PREFIX}/admin/login"));
    let form = b.get(&login).await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(b
        .cookies
        .iter()
        .all(|(_, _, path)| path == &format!("{PREFIX}/admin")));
    let action = form_action(&form);
    let csrf = csrf_token(&form.body);
    let res = b
        .post(
            &action,
            &[
                ("name", ADMIN),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    let home = res.location.unwrap();
    assert_eq!(home, format!("{PREFIX}/admin"));

    let dashboard = b.get(&home).await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    assert_links_under_prefix(&dashboard.body);
    let script = attrs(&dashboard.body, "src").remove(0);
    assert_eq!(b.get(&script).await.status, 200);
    let digests = b.get(&format!("{PREFIX}/admin/digests")).await;
    assert_eq!(digests.status, 200);
    assert_links_under_prefix(&digests.body);
    let progress = b.get(&format!("{PREFIX}/admin/digests/progress")).await;
    assert_eq!(progress.status, 200);
    let missing = b.get(&format!("{PREFIX}/admin/nothing-here")).await;
    assert_eq!(missing.status, 404);
    assert_links_under_prefix(&missing.body);
    assert!(missing.body.contains(&format!("href=\"{PREFIX}/admin\"")));

    let csrf = csrf_token(&dashboard.body);
    let logout = attrs(&dashboard.body, "action")
        .into_iter()
        .find(|a| a.ends_with("/logout"))
        .unwrap();
    let out = b.post(&logout, &[("csrf_token", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location.unwrap(), format!("{PREFIX}/admin/login"));
    assert_eq!(b.get(&home).await.status, 303);
}

#[tokio::test]
async fn console_works_behind_a_proxy_that_strips_the_path() {
    editor_logs_in_and_out(Prefix::Strip).await;
}

#[tokio::test]
async fn console_works_behind_a_proxy_that_passes_the_path_through() {
    editor_logs_in_and_out(Prefix::Keep).await;
}

/// Setting only `listen` moves the links with it (no base_url on 8080).
#[test]
fn base_url_follows_listen_when_not_set() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let mut child = crate::helpers::tidings()
        .current_dir(dir.path())
        .env("TIDINGS_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    for _ in 0..2 {
        std::io::BufRead::read_line(&mut out, &mut banner).unwrap();
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        banner.contains(&format!("signup form:   http://127.0.0.1:{port}/")),
        "{banner}"
    );
}
