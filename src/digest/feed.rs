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
use crate::state::AppState;

/// Largest feed document read.
pub const MAX_FEED_BYTES: usize = 5 * 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct PollOutcome {
    pub new: usize,
    pub updated: usize,
    pub skipped: usize,
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
    let (entries, skipped) = parse(&body)?;
    let outcome = db::transaction(&state.pool, move |c| {
        let mut outcome = PollOutcome {
            skipped,
            ..Default::default()
        };
        for entry in &entries {
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
        "feed polled"
    );
    Ok(outcome)
}

/// Parses RSS or Atom into articles; entries without a title or an http(s)
/// link are counted as skipped.
pub fn parse(body: &[u8]) -> anyhow::Result<(Vec<NewArticle>, usize)> {
    let feed = feed_rs::parser::parse(body)
        .map_err(|e| anyhow::anyhow!("not a valid RSS or Atom feed: {e}"))?;
    let now = db::now();
    let mut skipped = 0;
    let mut out: Vec<NewArticle> = Vec::new();
    for entry in feed.entries {
        let link = entry
            .links
            .iter()
            .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
            .or_else(|| entry.links.first())
            .map(|l| l.href.trim().to_string());
        let title = entry
            .title
            .map(|t| strip_tags(&t.content))
            .unwrap_or_default();
        let valid_link = link
            .as_deref()
            .and_then(|l| url::Url::parse(l).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https"));
        let (Some(link), false) = (valid_link, title.trim().is_empty()) else {
            skipped += 1;
            continue;
        };
        let summary = entry
            .summary
            .map(|s| strip_tags(&s.content))
            .filter(|s| !s.is_empty())
            .map(|s| truncate(&s, 2000));
        let published = entry
            .published
            .or(entry.updated)
            .map(|d| d.naive_utc())
            .filter(|d| (1..=9999).contains(&chrono::Datelike::year(d)))
            .unwrap_or(now);
        let guid = (!entry.id.trim().is_empty()).then(|| entry.id.trim().to_string());
        // A feed that repeats an item counts it once.
        if out
            .iter()
            .any(|a| a.url == link.as_str() || (guid.is_some() && a.guid == guid))
        {
            continue;
        }
        out.push(NewArticle {
            url: link.to_string(),
            guid,
            title: truncate(title.trim(), 300),
            summary,
            published_at: published.min(now),
        });
    }
    Ok((out, skipped))
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Feed titles and summaries often carry HTML; digests want plain text
/// (escaped again when rendered).
fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for ch in s.chars() {
        match ch {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            // Control characters (a NUL, which PostgreSQL cannot store)
            // become spaces, folded with the rest below.
            c if !in_tag && c.is_control() => out.push(' '),
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
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
        let (items, skipped) = parse(rss).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(skipped, 2);
        assert_eq!(items[0].title, "One & two");
        assert_eq!(items[0].summary.as_deref(), Some("Hi there"));
        assert_eq!(items[0].guid.as_deref(), Some("g1"));
        let atom = br#"<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>A</title><id>urn:a</id><updated>2026-11-20T00:00:00Z</updated>
<entry><title>Atom post</title><id>urn:e1</id><link href="https://n.example/a"/><updated>2026-11-20T00:00:00Z</updated><summary>S</summary></entry></feed>"#;
        let (items, _) = parse(atom).unwrap();
        assert_eq!(items[0].url, "https://n.example/a");
        assert!(parse(b"<html>nope</html>").is_err());
    }

    #[test]
    fn control_characters_become_spaces() {
        // Escaped in the feed as entities that decode to control characters.
        assert_eq!(strip_tags("a\u{0}b\u{7}c \u{1b}d"), "a b c d");
    }
}
