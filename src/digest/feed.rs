//! Feed intake: `feed_url` (RSS 2.0 or Atom, parsed by feed-rs) polled on
//! `feed_cron` and by `tidings feed poll`. Entries are upserted by GUID, else
//! URL. Conditional GET (ETag / Last-Modified), a timeout and a size cap keep
//! a slow or huge feed from hurting; a broken feed is an error for this tick
//! only.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::StatusCode;
use serde::Serialize;

use crate::db::{self, articles::NewArticle};
use crate::domain::feed_text;
use crate::state::AppState;

/// Largest feed document read.
pub const MAX_FEED_BYTES: usize = 5 * 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct PollOutcome {
    pub new: usize,
    pub updated: usize,
    pub skipped: usize,
    /// New or updated articles whose date was missing or unreadable.
    pub undated: usize,
    pub not_modified: bool,
}

pub async fn poll(state: &AppState) -> anyhow::Result<PollOutcome> {
    let url = state
        .settings
        .feed_url
        .clone()
        .ok_or_else(|| anyhow::anyhow!("feed_url is not set"))?;
    let key = url.to_string();
    let k = key.clone();
    let (etag, last_modified) = db::run(&state.pool, move |c| db::feeds::validators(c, &k)).await?;
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .user_agent(concat!(
            "Tidings/",
            env!("CARGO_PKG_VERSION"),
            " (feed poller)"
        ))
        .build()?;
    let mut request = client.get(url.clone());
    if let Some(etag) = &etag {
        request = request.header(IF_NONE_MATCH, etag);
    }
    if let Some(lm) = &last_modified {
        request = request.header(IF_MODIFIED_SINCE, lm);
    }
    let response = request.send().await?;
    if response.status() == StatusCode::NOT_MODIFIED {
        return Ok(PollOutcome {
            not_modified: true,
            ..Default::default()
        });
    }
    if !response.status().is_success() {
        anyhow::bail!("feed answered {}", response.status());
    }
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    let (new_etag, new_lm) = (header(ETAG), header(LAST_MODIFIED));
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > MAX_FEED_BYTES {
            anyhow::bail!("feed is larger than {MAX_FEED_BYTES} bytes");
        }
        body.extend_from_slice(&chunk);
    }
    let parsed = parse(&body, Some(&url))?;
    let outcome = db::transaction(&state.pool, move |c| {
        let mut outcome = PollOutcome {
            skipped: parsed.skipped,
            undated: parsed.undated,
            ..Default::default()
        };
        for entry in &parsed.articles {
            let (_, created) = db::articles::upsert(c, entry)?;
            if created {
                outcome.new += 1;
            } else {
                outcome.updated += 1;
            }
        }
        db::feeds::save(c, &key, new_etag.as_deref(), new_lm.as_deref())?;
        Ok(outcome)
    })
    .await?;
    tracing::info!(
        new = outcome.new,
        updated = outcome.updated,
        skipped = outcome.skipped,
        undated = outcome.undated,
        "feed polled"
    );
    Ok(outcome)
}

/// How long a stored excerpt is, in characters: a digest of
/// `digest_max_articles` of them stays under Gmail's clipping.
pub const EXCERPT_CHARS: usize = 400;

/// Most sections kept per article, and the longest name.
const MAX_SECTIONS: usize = 10;
const MAX_SECTION_CHARS: usize = 100;

/// What a feed document gave.
#[derive(Debug, Default)]
pub struct Parsed {
    pub articles: Vec<NewArticle>,
    /// Entries without a title or an http(s) link.
    pub skipped: usize,
    /// Entries kept whose date was missing or unreadable: they got the poll
    /// time and sort after the dated ones.
    pub undated: usize,
}

/// Parses RSS or Atom into articles. Relative links and images are
/// resolved against the entry's `xml:base`, else `base` (the feed's URL).
pub fn parse(body: &[u8], base: Option<&url::Url>) -> anyhow::Result<Parsed> {
    let feed = feed_rs::parser::Builder::new()
        .base_uri(base.map(url::Url::as_str))
        .build()
        .parse(body)
        .map_err(|e| anyhow::anyhow!("not a valid RSS or Atom feed: {e}"))?;
    let now = db::now();
    let mut parsed = Parsed::default();
    for entry in feed.entries {
        let Some(article) = article(entry, base, now) else {
            parsed.skipped += 1;
            continue;
        };
        // A feed that repeats an item counts it once.
        let seen = parsed
            .articles
            .iter()
            .any(|a| a.url == article.url || (article.guid.is_some() && a.guid == article.guid));
        if !seen {
            parsed.undated += usize::from(!article.dated);
            parsed.articles.push(article);
        }
    }
    Ok(parsed)
}

/// One entry as an article; `None` without a title or an http(s) link.
fn article(
    entry: feed_rs::model::Entry,
    feed_base: Option<&url::Url>,
    now: chrono::NaiveDateTime,
) -> Option<NewArticle> {
    let base = entry
        .base
        .as_deref()
        .and_then(|b| match feed_base {
            Some(f) => f.join(b).ok(),
            None => url::Url::parse(b).ok(),
        })
        .or_else(|| feed_base.cloned());
    let link = entry
        .links
        .iter()
        .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
        .or_else(|| entry.links.first())
        .and_then(|l| resolve(l.href.trim(), base.as_ref()))?;
    let title = entry.title.as_ref().map(text_of).unwrap_or_default();
    if title.is_empty() {
        return None;
    }
    let content_base = base.unwrap_or_else(|| link.clone());
    let html = |t: Option<&str>| feed_text::extract(t.unwrap_or_default(), Some(&content_base));
    let summary = html(entry.summary.as_ref().map(|s| s.content.as_str()));
    let content = html(entry.content.as_ref().and_then(|c| c.body.as_deref()));
    // Full-content-only items get their excerpt from the content.
    let text = [&summary.text, &content.text]
        .into_iter()
        .find(|t| !t.is_empty())
        .map(|t| feed_text::excerpt(t, EXCERPT_CHARS));
    let image = media_image(&entry, &content_base)
        .or(content.first_image)
        .or(summary.first_image);
    let published = entry
        .published
        .or(entry.updated)
        .map(|d| d.naive_utc())
        .filter(|d| (1..=9999).contains(&chrono::Datelike::year(d)));
    let guid = (!entry.id.trim().is_empty()).then(|| entry.id.trim().to_string());
    Some(NewArticle {
        url: link.to_string(),
        guid,
        title: truncate(&title, 300),
        summary: text,
        published_at: published.unwrap_or(now).min(now),
        image_url: image,
        author: byline(&entry),
        sections: sections(&entry),
        dated: published.is_some(),
    })
}

/// An http(s) URL, relative ones joined to `base`.
fn resolve(raw: &str, base: Option<&url::Url>) -> Option<url::Url> {
    let url = match base {
        Some(b) => b.join(raw).ok()?,
        None => url::Url::parse(raw).ok()?,
    };
    (matches!(url.scheme(), "http" | "https") && url.host_str().is_some()).then_some(url)
}

/// A feed text as plain text: HTML ones parsed as HTML, plain ones only
/// when they look like it (see [`feed_text::plain`]).
fn text_of(text: &feed_rs::model::Text) -> String {
    if text.content_type.subty() == "html" || text.content_type.suffix().is_some_and(|s| s == "xml")
    {
        feed_text::plain(&feed_text::extract(&text.content, None).text)
    } else {
        feed_text::plain(&text.content)
    }
}

/// media:content or an enclosure that is an image, else a media:thumbnail.
fn media_image(entry: &feed_rs::model::Entry, base: &url::Url) -> Option<String> {
    let is_image = |c: &feed_rs::model::MediaContent| {
        c.content_type
            .as_ref()
            .map(|t| t.ty() == "image")
            .unwrap_or_else(|| {
                c.url.as_ref().is_some_and(|u| {
                    let path = u.path().to_ascii_lowercase();
                    [".jpg", ".jpeg", ".png", ".gif", ".webp"]
                        .iter()
                        .any(|ext| path.ends_with(ext))
                })
            })
    };
    let content = entry
        .media
        .iter()
        .flat_map(|m| m.content.iter())
        .filter(|c| is_image(c))
        .find_map(|c| c.url.as_ref());
    let thumbnail = || {
        entry
            .media
            .iter()
            .flat_map(|m| m.thumbnails.iter())
            .find_map(|t| resolve(t.image.uri.trim(), Some(base)))
    };
    content
        .and_then(|u| resolve(u.as_str(), Some(base)))
        .or_else(thumbnail)
        .map(|u| u.to_string())
}

/// The first author's name (Atom author, RSS author, dc:creator), else
/// a media credit (itunes:author).
fn byline(entry: &feed_rs::model::Entry) -> Option<String> {
    let names = entry.authors.iter().filter_map(|p| p.name.as_deref());
    let credits = entry
        .media
        .iter()
        .flat_map(|m| m.credits.iter())
        .map(|c| c.entity.as_str());
    names
        .chain(credits)
        .map(feed_text::plain)
        // An address alone (RSS <author> without a name) is no byline.
        .find(|n| !n.is_empty() && !n.contains('@'))
        .map(|n| truncate(&n, 200))
}

/// Category names (label, else term), each once, in feed order.
fn sections(entry: &feed_rs::model::Entry) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in &entry.categories {
        let name = feed_text::plain(c.label.as_deref().unwrap_or(&c.term));
        let name = truncate(&name, MAX_SECTION_CHARS);
        if !name.is_empty() && !out.contains(&name) && out.len() < MAX_SECTIONS {
            out.push(name);
        }
    }
    out
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_and_atom() {
        let rss = br#"<?xml version="1.0"?><rss version="2.0"><channel><title>S</title>
<item><title>One &amp; two</title><link>https://n.example/1</link><guid>g1</guid><description>&lt;p&gt;Hi &lt;b&gt;there&lt;/b&gt;&lt;/p&gt;</description><pubDate>Mon, 23 Nov 2026 10:00:00 GMT</pubDate></item>
<item><title>One &amp; two</title><link>https://n.example/1</link><guid>g1</guid></item>
<item><title>No link</title></item>
<item><title>Bad scheme</title><link>javascript:alert(1)</link></item>
</channel></rss>"#;
        let parsed = parse(rss, None).unwrap();
        let items = parsed.articles;
        assert_eq!(items.len(), 1);
        assert_eq!(parsed.skipped, 2);
        assert_eq!(items[0].title, "One & two");
        assert_eq!(items[0].summary.as_deref(), Some("Hi there"));
        assert_eq!(items[0].guid.as_deref(), Some("g1"));
        let atom = br#"<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>A</title><id>urn:a</id><updated>2026-11-20T00:00:00Z</updated>
<entry><title>Atom post</title><id>urn:e1</id><link href="https://n.example/a"/><updated>2026-11-20T00:00:00Z</updated><summary>S</summary></entry></feed>"#;
        let parsed = parse(atom, None).unwrap();
        assert_eq!(parsed.articles[0].url, "https://n.example/a");
        assert!(parse(b"<html>nope</html>", None).is_err());
    }
}
