//! Readers' votes on articles: the site's widget (one vote per browser,
//! changeable, rate-limited, only on known articles or pages of the site,
//! CORS for the site), the digest's per-story links (a GET is only a page,
//! the POST counts; forged links are refused), the counts apart and
//! together in the API and the console, /metrics; and the widget in
//! Chromium, without and with its script.

use std::time::Duration;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::admin::{create_admin, Browser, ADMIN, PASSWORD};
use crate::helpers::{spawn_app_with, wait_until, TestApp};

const SITE: &str = "https://news.example";
const STORY: &str = "https://news.example/2026/12/bridge";

async fn site_app() -> TestApp {
    spawn_app_with(|s| {
        s.insert("site_url".into(), SITE.into());
        s.insert("cors_origins".into(), SITE.into());
    })
    .await
}

/// POSTs a JSON vote, with the browser's cookie when it has one.
async fn vote(app: &TestApp, cookie: Option<&str>, url: &str, vote: &str) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/feedback"))
        .json(&json!({"url": url, "vote": vote}));
    if let Some(c) = cookie {
        req = req.header(COOKIE, c);
    }
    req.send().await.unwrap()
}

/// The `name=value` of the voter cookie a response set.
fn voter_cookie(res: &reqwest::Response) -> String {
    let set = res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("tidings_voter="))
        .expect("a voter cookie")
        .to_string();
    set.split(';').next().unwrap().to_string()
}

fn yes_no(v: &Value) -> (i64, i64) {
    (v["yes"].as_i64().unwrap(), v["no"].as_i64().unwrap())
}

#[tokio::test]
async fn a_second_vote_from_the_same_browser_changes_the_first_and_never_adds() {
    let app = site_app().await;

    // One browser says yes, then changes its mind.
    let first = vote(&app, None, STORY, "yes").await;
    assert_eq!(first.status(), 200);
    let cookie = voter_cookie(&first);
    let set = first.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("Path=/feedback"),
        "{set}"
    );
    assert_eq!(yes_no(&first.json().await.unwrap()), (1, 0));
    let again = vote(&app, Some(&cookie), STORY, "no").await;
    assert_eq!(again.status(), 200);
    assert!(
        again.headers().get(SET_COOKIE).is_none(),
        "the cookie is kept"
    );
    let counts: Value = again.json().await.unwrap();
    assert_eq!(yes_no(&counts), (0, 1));
    assert_eq!(counts["mine"], "no");
    let same = vote(&app, Some(&cookie), STORY, "no").await;
    assert_eq!(yes_no(&same.json().await.unwrap()), (0, 1));

    // Another browser, and a forged cookie, are other voters.
    let other = vote(&app, None, STORY, "yes").await;
    assert_eq!(yes_no(&other.json().await.unwrap()), (1, 1));
    let forged = vote(
        &app,
        Some("tidings_voter=AAAAAAAAAAAAAAAAAAAAAA.forged"),
        STORY,
        "yes",
    )
    .await;
    assert_eq!(yes_no(&forged.json().await.unwrap()), (2, 1));

    // The counts as the widget reads them; a fragment is the same article.
    let res = app
        .client
        .get(app.url("/feedback"))
        .query(&[("url", format!("{STORY}#comments"))])
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let counts: Value = res.json().await.unwrap();
    assert_eq!(counts["url"], STORY);
    assert_eq!(yes_no(&counts), (2, 1));
    assert_eq!(counts["mine"], "no");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM feedback_votes"), 3);

    // The plain form (no script) records and goes back to the article.
    let res = app
        .client
        .post(app.url("/feedback"))
        .header(COOKIE, &cookie)
        .form(&[("url", STORY), ("vote", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()[LOCATION], STORY);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM feedback_votes"), 3);
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM feedback_votes WHERE vote = 'yes'"),
        3
    );
}

#[tokio::test]
async fn votes_on_unknown_urls_or_bad_input_are_clear_4xx() {
    // No site_url: only known articles take votes.
    let app = spawn_app_with(|_| {}).await;
    let token = app.api_token().await;
    let res = app
        .api_post(
            &token,
            "/api/articles",
            &json!({"url": STORY, "title": "The bridge"}),
        )
        .await;
    assert_eq!(res.status(), 201);

    let res = vote(&app, None, "https://elsewhere.example/x", "yes").await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["field"], "url");
    for bad in ["javascript:alert(1)", "", "not a url"] {
        let res = vote(&app, None, bad, "yes").await;
        assert_eq!(res.status(), 422, "{bad:?}");
    }
    let res = vote(&app, None, STORY, "maybe").await;
    assert_eq!(res.status(), 422);
    assert_eq!(res.json::<Value>().await.unwrap()["field"], "vote");
    let res = app
        .get(&format!(
            "/feedback?url={}",
            "https%3A%2F%2Felsewhere.example%2Fx"
        ))
        .await;
    assert_eq!(res.status(), 422);
    assert_eq!(app.get("/feedback").await.status(), 422);
    let res = app
        .client
        .post(app.url("/feedback"))
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = app
        .post_form(
            "/feedback",
            &[("url", "https://elsewhere.example/x"), ("vote", "yes")],
        )
        .await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("cannot take votes"));
    assert_eq!(app.db.count("SELECT COUNT(*) FROM feedback_votes"), 0);

    // The known article takes them.
    let res = vote(&app, None, STORY, "yes").await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_flood_of_votes_from_one_address_gets_429() {
    let app = site_app().await;
    let mut statuses = Vec::new();
    for i in 0..30 {
        let res = vote(&app, None, &format!("{SITE}/story-{i}"), "yes").await;
        statuses.push(res.status().as_u16());
    }
    // The burst of 20, then (one more every 3 s at most) 429.
    assert!(statuses[..20].iter().all(|s| *s == 200), "{statuses:?}");
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!(limited >= 8, "{statuses:?}");
    let ok = statuses.iter().filter(|s| **s == 200).count() as i64;
    assert_eq!(ok as usize + limited, 30, "{statuses:?}");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM feedback_votes"), ok);
    // Reading the counts is not limited.
    let res = app.get(&format!("/feedback?url={SITE}/story-1")).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn cors_lets_the_configured_site_read_the_counts_with_its_cookie() {
    let app = site_app().await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/feedback"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "content-type")
            .send()
    };
    let ok = preflight(SITE).await.unwrap();
    assert_eq!(ok.headers()["access-control-allow-origin"], SITE);
    assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    let res = app
        .client
        .get(app.url(&format!("/feedback?url={STORY}")))
        .header("Origin", SITE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], SITE);
    let res = app
        .client
        .get(app.url(&format!("/feedback?url={STORY}")))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

/// A confirmed reader, two articles and a digest sent to the reader; the
/// feedback links of the digest (paths on the app).
async fn digest_with_links(app: &TestApp, email: &str) -> Vec<String> {
    let token = app.api_token().await;
    for (url, title) in [
        (STORY, "Council approves the new bridge"),
        (
            "https://news.example/2026/12/harbour",
            "Storm closes the harbour",
        ),
    ] {
        let res = app
            .api_post(
                &token,
                "/api/articles",
                &json!({"url": url, "title": title}),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    app.confirmed_reader(email).await;
    let res = app.api_post(&token, "/api/digests", &json!({})).await;
    assert_eq!(res.status(), 201);
    // The confirmation was the first email; the digest is the second.
    let mail = app.wait_mail_to(email, 2).await;
    let html = mail.html_body().unwrap();
    assert!(html.contains("Useful?"), "{html}");
    assert!(!html.contains("%%"), "every marker filled in");
    let links: Vec<String> = mail
        .links()
        .into_iter()
        .filter(|l| l.contains("/feedback?token="))
        .map(|l| l.trim_start_matches("http://tidings.test").to_string())
        .collect();
    assert!(mail
        .text_body()
        .unwrap()
        .contains("Useful? Yes: http://tidings.test/feedback?token="));
    links
}

fn form_of(path: &str) -> Vec<(String, String)> {
    let query = path.split_once('?').unwrap().1;
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[tokio::test]
async fn digest_links_count_only_when_posted_one_vote_per_reader_and_forgeries_are_refused() {
    let app = site_app().await;
    let links = digest_with_links(&app, "reader@example.com").await;
    assert_eq!(
        links.len(),
        4,
        "Yes and No under each of two stories: {links:?}"
    );
    let yes = links.iter().find(|l| l.ends_with("vote=yes")).unwrap();

    // A link scanner's GET (or the reader's click) is only a page.
    let page = app.get(yes).await;
    assert_eq!(page.status(), 200);
    let body = page.text().await.unwrap();
    assert!(body.contains("Yes, it was useful"), "{body}");
    assert!(body.contains("method=\"post\""));
    assert_eq!(app.db.count("SELECT COUNT(*) FROM feedback_votes"), 0);

    // The button's POST counts; a second changes it.
    let fields = form_of(yes);
    let form = borrowed(&fields);
    let res = app.post_form("/feedback", &form).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("Thank you"));
    let mut changed = form.clone();
    changed.retain(|(k, _)| *k != "vote");
    changed.push(("vote", "no"));
    let res = app.post_form("/feedback", &changed).await;
    assert_eq!(res.status(), 200);
    let digest_votes =
        "SELECT COUNT(*) FROM feedback_votes WHERE source = 'digest' AND vote = 'no'";
    assert_eq!(app.db.count(digest_votes), 1);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM feedback_votes"), 1);

    forgeries_are_refused(&app, &fields).await;
    assert_eq!(app.db.count("SELECT COUNT(*) FROM feedback_votes"), 1);
    assert_eq!(app.db.count(digest_votes), 1);
}

/// Forged, tampered or misused links (from a genuine link's `fields`): a
/// clear 4xx on GET and POST, nothing counted.
async fn forgeries_are_refused(app: &TestApp, fields: &[(String, String)]) {
    let token = fields.iter().find(|(k, _)| k == "token").unwrap().1.clone();
    let article = fields
        .iter()
        .find(|(k, _)| k == "article")
        .unwrap()
        .1
        .clone();
    let mut forged = token.clone();
    forged.replace_range(forged.len() - 3.., "AAA");
    let other_digest = format!("9{token}");
    for bad in [forged.as_str(), other_digest.as_str(), "nonsense", ""] {
        let res = app
            .client
            .get(app.url("/feedback"))
            .query(&[("token", bad), ("article", &article), ("vote", "yes")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "GET {bad:?}");
        assert!(res.text().await.unwrap().contains("not valid"));
        let res = app
            .post_form(
                "/feedback",
                &[("token", bad), ("article", &article), ("vote", "yes")],
            )
            .await;
        assert_eq!(res.status(), 404, "POST {bad:?}");
    }
    let res = app
        .post_form(
            "/feedback",
            &[("token", &token), ("article", "999999"), ("vote", "yes")],
        )
        .await;
    assert_eq!(res.status(), 404, "an article that is not in the digest");
    let res = app
        .post_form(
            "/feedback",
            &[("token", &token), ("article", "x"), ("vote", "yes")],
        )
        .await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn api_and_console_show_site_and_digest_votes_apart_and_together_and_metrics_count_them() {
    let app = site_app().await;
    let links = digest_with_links(&app, "reader@example.com").await;
    // The reader finds the bridge story useful from the digest; two
    // browsers vote on the site, one yes, one no.
    let bridge_yes = links
        .iter()
        .find(|l| l.ends_with("vote=yes"))
        .unwrap()
        .clone();
    let fields = form_of(&bridge_yes);
    let form = borrowed(&fields);
    assert_eq!(app.post_form("/feedback", &form).await.status(), 200);
    let article_id: i64 = fields
        .iter()
        .find(|(k, _)| k == "article")
        .unwrap()
        .1
        .parse()
        .unwrap();
    let url = app.db.query_strings(&format!(
        "SELECT url AS v FROM articles WHERE id = {article_id}"
    ))[0]
        .clone();
    assert_eq!(vote(&app, None, &url, "yes").await.status(), 200);
    assert_eq!(vote(&app, None, &url, "no").await.status(), 200);

    // The API.
    let token = app.api_token().await;
    let list: Value = app
        .api_get(&token, "/api/articles")
        .await
        .json()
        .await
        .unwrap();
    let item = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == article_id)
        .unwrap();
    assert_eq!(
        item["feedback"],
        json!({"yes": 2, "no": 1, "site": {"yes": 1, "no": 1}, "digest": {"yes": 1, "no": 0}})
    );
    let other = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] != article_id)
        .unwrap();
    assert_eq!(other["feedback"]["yes"], 0);
    let widget: Value = app
        .client
        .get(app.url("/feedback"))
        .query(&[("url", &url)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(yes_no(&widget), (2, 1));
    assert_eq!(widget["digest"]["yes"], 1);

    // /metrics.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for line in [
        "tidings_feedback_votes_total{source=\"digest\",vote=\"yes\"} 1",
        "tidings_feedback_votes_total{source=\"site\",vote=\"yes\"} 1",
        "tidings_feedback_votes_total{source=\"site\",vote=\"no\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }

    console_shows(&app, article_id).await;
}

/// The console: the articles page (2 yes, 1 no; site 1/1, digest 1/0) and
/// the dashboard's most liked.
async fn console_shows(app: &TestApp, article_id: i64) {
    create_admin(app, ADMIN, PASSWORD).await;
    let mut browser = Browser::new(app);
    browser.login(ADMIN, PASSWORD).await;
    let page = browser.get("/admin/articles").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("<td class=\"num\" data-feedback=\"yes\">2</td>"),
        "{}",
        page.body
    );
    assert!(page
        .body
        .contains("<td class=\"num\" data-feedback=\"no\">1</td>"));
    assert!(page.body.contains("site 1/1 · digest 1/0"));
    let dashboard = browser.get("/admin").await;
    assert!(dashboard.body.contains("Most liked this week"));
    let liked = &dashboard.body[dashboard.body.find("class=\"liked\"").unwrap()..];
    let title = app.db.query_strings(&format!(
        "SELECT title AS v FROM articles WHERE id = {article_id}"
    ))[0]
        .clone();
    assert!(liked.contains(&format!(">{title}</a>")), "{liked}");
    assert!(liked.contains("2 yes · 1 no"), "{liked}");
}

#[tokio::test]
async fn feedback_never_says_who_is_subscribed() {
    // A digest token is all a digest vote knows: a genuine one counts
    // whatever became of its reader, and nothing answers about an address.
    let app = site_app().await;
    let links = digest_with_links(&app, "reader@example.com").await;
    app.db
        .execute("UPDATE subscribers SET status = 'unsubscribed'");
    let fields = form_of(&links[0]);
    let form = borrowed(&fields);
    assert_eq!(app.post_form("/feedback", &form).await.status(), 200);
    let res = app
        .post_form(
            "/feedback",
            &[("email", "reader@example.com"), ("vote", "yes")],
        )
        .await;
    assert_eq!(res.status(), 422);
    let page = app.get("/feedback?email=reader%40example.com").await;
    assert_eq!(page.status(), 422);
}

// --- The widget in Chromium -------------------------------------------

/// The snippet of README.md ("Feedback on the site"), for `article` on
/// Tidings at `tidings`; `counts` pre-filled as a site's server would.
fn snippet(tidings: &str, article: &str, counts: Option<(i64, i64)>, script: bool) -> String {
    let (yes, no) = counts
        .map(|(y, n)| (format!("({y})"), format!("({n})")))
        .unwrap_or_default();
    let script = if script {
        format!("<script src=\"{tidings}/feedback.js\" defer></script>")
    } else {
        String::new()
    };
    format!(
        r#"<form class="tidings-feedback" method="post" action="{tidings}/feedback">
  <input type="hidden" name="url" value="{article}">
  <span class="tidings-question">Enjoyed this article?</span>
  <button type="submit" name="vote" value="yes">Yes <span data-tidings-count="yes">{yes}</span></button>
  <button type="submit" name="vote" value="no">No <span data-tidings-count="no">{no}</span></button>
</form>
{script}"#
    )
}

/// An article page of the news site, with the widget under the text.
fn article_page(widget: &str) -> String {
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Council approves the new bridge</title>
<style>
body {{ font: 18px/1.6 Georgia, serif; margin: 0; padding: 1rem; color: #111827; }}
main {{ max-width: 40rem; margin: 1rem auto; }}
.tidings-feedback {{ font: 16px/1.4 system-ui, sans-serif; display: flex; flex-wrap: wrap; align-items: center; gap: .5rem; margin: 2rem 0; padding-top: 1rem; border-top: 1px solid #e5e7eb; }}
.tidings-question {{ font-weight: 600; margin-right: .25rem; }}
.tidings-feedback button {{ font: inherit; padding: .35rem .9rem; border: 1px solid #1a56db; border-radius: 999px; background: #fff; color: #1a56db; cursor: pointer; }}
.tidings-feedback button[aria-pressed=true] {{ background: #1a56db; color: #fff; }}
</style></head><body><main>
<h1>Council approves the new bridge</h1>
<p>The city council voted on Tuesday to build a second bridge over the river, ending a debate that has run for a decade.</p>
{widget}
</main></body></html>"#
    )
}

/// The news site: `/story` embeds the widget with its script; `/plain`
/// has no script and prints the counts it reads from Tidings, as a site's
/// server-side template would.
async fn serve_site(listener: tokio::net::TcpListener, tidings: String, site: String) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        let (tidings, site) = (tidings.clone(), site.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            let mut n = 0;
            while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") && n < buf.len() {
                match sock.read(&mut buf[n..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(k) => n += k,
                }
            }
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            let (status, body) = match path.as_str() {
                "/story" => (
                    "200 OK",
                    article_page(&snippet(&tidings, &format!("{site}/story"), None, true)),
                ),
                "/plain" => {
                    let article = format!("{site}/plain");
                    let counts: Value = reqwest::Client::new()
                        .get(format!("{tidings}/feedback"))
                        .query(&[("url", &article)])
                        .header("Accept", "application/json")
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    (
                        "200 OK",
                        article_page(&snippet(&tidings, &article, Some(yes_no(&counts)), false)),
                    )
                }
                _ => ("404 Not Found", String::new()),
            };
            let res = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(res.as_bytes()).await;
        });
    }
}

/// `votes` earlier votes on `url` (other browsers).
fn seed_votes(app: &TestApp, url: &str, yes: usize, no: usize) {
    let mut sql = String::new();
    for i in 0..yes + no {
        let vote = if i < yes { "yes" } else { "no" };
        sql.push_str(&format!(
            "INSERT INTO feedback_votes (url, source, voter, vote, created_at, updated_at) \
             VALUES ('{url}', 'site', 'seed-{i}', '{vote}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP);\n"
        ));
    }
    app.db.execute(&sql);
}

async fn counts_text(c: &fantoccini::Client) -> String {
    c.find(fantoccini::Locator::Css("form.tidings-feedback"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

async fn click(c: &fantoccini::Client, css: &str) {
    let button = c.find(fantoccini::Locator::Css(css)).await.unwrap();
    button.click().await.unwrap();
}

/// Waits until the `vote` count of the widget reads `text`, e.g. "(26)".
async fn wait_count(c: &fantoccini::Client, vote: &str, text: &str) {
    let xpath = format!("//span[@data-tidings-count='{vote}' and text()='{text}']");
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(fantoccini::Locator::XPath(&xpath))
        .await
        .unwrap();
}

async fn shots(c: &fantoccini::Client, app: &TestApp, name: &str) {
    let backend = if app.db.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    for (w, h, label) in [(390, 844, "phone"), (1280, 900, "desktop")] {
        c.set_window_size(w, h).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let png = c.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        let file = crate::browser::screenshot_dir().join(format!("{name}-{label}-{backend}.png"));
        std::fs::write(file, png).unwrap();
    }
}

#[tokio::test]
async fn the_widget_in_chromium_works_without_and_with_its_script() {
    use fantoccini::Locator;
    // Arrange: the news site on its own port, Tidings trusting it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let app = spawn_app_with(|s| {
        s.insert("site_url".into(), site.clone());
        s.insert("cors_origins".into(), site.clone());
    })
    .await;
    tokio::spawn(serve_site(listener, app.address.clone(), site.clone()));
    seed_votes(&app, &format!("{site}/plain"), 25, 5);
    seed_votes(&app, &format!("{site}/story"), 25, 5);
    let driver = crate::browser::start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let c = crate::browser::browser(&driver, profile.path()).await;

    // Without JavaScript: the plain form posts and comes back (303) to
    // the article, which shows the new counts.
    c.goto(&format!("{site}/plain")).await.unwrap();
    assert_eq!(
        counts_text(&c).await,
        "Enjoyed this article? Yes (25) No (5)"
    );
    click(&c, "button[value=yes]").await;
    wait_count(&c, "yes", "(26)").await;
    assert_eq!(
        c.current_url().await.unwrap().as_str(),
        format!("{site}/plain")
    );
    assert_eq!(
        counts_text(&c).await,
        "Enjoyed this article? Yes (26) No (5)"
    );
    shots(&c, &app, "feedback-plain").await;

    // With the script: counts filled in, votes update them in place.
    c.goto(&format!("{site}/story")).await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("form.tidings-feedback[data-tidings-ready]"))
        .await
        .unwrap();
    assert_eq!(
        counts_text(&c).await,
        "Enjoyed this article? Yes (25) No (5)"
    );
    c.execute("window.__samePage = true;", vec![])
        .await
        .unwrap();
    click(&c, "button[value=no]").await;
    wait_count(&c, "no", "(6)").await;
    click(&c, "button[value=yes]").await;
    wait_count(&c, "yes", "(26)").await;
    assert_eq!(
        counts_text(&c).await,
        "Enjoyed this article? Yes (26) No (5)"
    );
    let pressed = c
        .execute(
            "return [document.querySelector('button[value=yes]').getAttribute('aria-pressed'), window.__samePage === true];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        pressed,
        json!(["true", true]),
        "updated in place, no reload"
    );
    shots(&c, &app, "feedback-script").await;
    wait_until(Duration::from_secs(5), || async {
        app.db
            .count("SELECT COUNT(*) FROM feedback_votes WHERE voter NOT LIKE 'seed-%'")
            == 2
    })
    .await;
    c.close().await.unwrap();
}

/// A reader's digest votes are their data: the GDPR export lists them.
#[tokio::test]
async fn a_readers_digest_votes_are_in_their_data_export() {
    let app = site_app().await;
    let links = digest_with_links(&app, "reader@example.com").await;
    let no = links.iter().find(|l| l.ends_with("vote=no")).unwrap();
    let fields = form_of(no);
    let form = borrowed(&fields);
    assert_eq!(app.post_form("/feedback", &form).await.status(), 200);
    let id = app
        .db
        .query_strings("SELECT id AS v FROM subscribers WHERE email = 'reader@example.com'")
        .remove(0);
    let url = app
        .db
        .query_strings("SELECT url AS v FROM feedback_votes WHERE source = 'digest'")
        .remove(0);

    let token = app.api_token().await;
    let res = app
        .api_get(&token, &format!("/api/subscribers/{id}/export"))
        .await;
    assert_eq!(res.status(), 200);
    let export: serde_json::Value = res.json().await.unwrap();
    let votes = export["votes"].as_array().expect("votes in the export");
    assert_eq!(votes.len(), 1, "{export}");
    assert_eq!(votes[0]["url"], url.as_str());
    assert_eq!(votes[0]["vote"], "no");
    assert!(votes[0]["updated_at"].as_str().unwrap().ends_with('Z'));
}

/// A form's fields as `post_form` takes them.
fn borrowed(fields: &[(String, String)]) -> Vec<(&str, &str)> {
    fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}
