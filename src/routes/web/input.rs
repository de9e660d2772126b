//! The input rules the ops API and the console share: one set of article
//! rules (POST /api/articles and the console's add form) and one check
//! each of the subscriber and the bounce listings' filter and page. A
//! broken rule is a [`FieldError`]; each surface says it its own way.

use chrono::{DateTime, NaiveDateTime};

use super::FieldError;
use crate::db::{self, articles::NewArticle, subscribers::Filter};
use crate::domain::SubscriberStatus;

/// Subscribers on a page of the listing (API and console).
pub const PER_PAGE: i64 = 50;

/// An article as submitted, before validation (the API's JSON and the
/// console's form both fill it in).
#[derive(Default)]
pub struct ArticleInput {
    pub url: Option<String>,
    pub title: Option<String>,
    pub summary: Option<String>,
    pub published_at: Option<String>,
    pub image_url: Option<String>,
    pub author: Option<String>,
    pub sections: Vec<String>,
}

/// RFC 3339 (`2026-11-29T08:00:00Z`) or a naive UTC `2026-11-29T08:00:00`.
/// Times from year 1 to 9999 only: chrono reads any year, PostgreSQL
/// stores none before 4713 BC.
pub fn parse_time(field: &str, raw: &str) -> Result<NaiveDateTime, FieldError> {
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|d| d.naive_utc())
        .or_else(|_| NaiveDateTime::parse_from_str(raw.trim(), "%Y-%m-%dT%H:%M:%S%.f"))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
        })
        .ok()
        .filter(|t| (1..=9999).contains(&chrono::Datelike::year(t)))
        .ok_or_else(|| FieldError::new(field, "must be an RFC 3339 time like 2026-11-29T08:00:00Z"))
}

/// The one set of article rules, shared by POST /api/articles and the console.
pub fn validate_article(input: ArticleInput) -> Result<NewArticle, FieldError> {
    let url = article_url(input.url)?;
    let title = article_title(input.title)?;
    let summary = article_summary(input.summary)?;
    let published_at = match input.published_at.filter(|s| !s.trim().is_empty()) {
        Some(raw) => parse_time("published_at", &raw)?,
        None => db::now(),
    };
    let image_url = match input.image_url.filter(|s| !s.trim().is_empty()) {
        Some(raw) => Some(http_url("image_url", raw)?),
        None => None,
    };
    Ok(NewArticle {
        url,
        guid: None,
        title,
        summary,
        published_at,
        image_url,
        author: short_text("author", input.author, 200)?,
        sections: article_sections(input.sections)?,
        dated: true,
    })
}

/// A line of text (a byline, a section name): trimmed, `None` when blank.
fn short_text(field: &str, raw: Option<String>, max: usize) -> Result<Option<String>, FieldError> {
    let text = raw.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    if text.as_ref().is_some_and(|t| t.chars().count() > max) {
        return Err(FieldError::new(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    if text
        .as_ref()
        .is_some_and(|t| t.chars().any(char::is_control))
    {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(text)
}

/// At most 10 names of at most 100 characters, blanks dropped, each once.
fn article_sections(raw: Vec<String>) -> Result<Vec<String>, FieldError> {
    let mut out: Vec<String> = Vec::new();
    for name in raw {
        if let Some(name) = short_text("sections", Some(name), 100)? {
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    if out.len() > 10 {
        return Err(FieldError::new("sections", "has more than 10 names"));
    }
    Ok(out)
}

fn http_url(field: &str, raw: String) -> Result<String, FieldError> {
    let raw = raw.trim();
    if raw.len() > 2048 {
        return Err(FieldError::new(field, "is longer than 2048 characters"));
    }
    let parsed = url::Url::parse(raw).map_err(|_| FieldError::new(field, "is not a valid URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(FieldError::new(field, "must be an http(s) URL"));
    }
    Ok(parsed.to_string())
}

fn article_url(raw: Option<String>) -> Result<String, FieldError> {
    let url = raw.unwrap_or_default().trim().to_string();
    if url.is_empty() {
        return Err(FieldError::new("url", "is required"));
    }
    http_url("url", url)
}

fn article_title(raw: Option<String>) -> Result<String, FieldError> {
    let title = raw.unwrap_or_default().trim().to_string();
    if title.is_empty() {
        return Err(FieldError::new("title", "is required"));
    }
    if title.chars().count() > 300 {
        return Err(FieldError::new("title", "is longer than 300 characters"));
    }
    if title.chars().any(char::is_control) {
        return Err(FieldError::new(
            "title",
            "must not contain control characters",
        ));
    }
    Ok(title)
}

fn article_summary(raw: Option<String>) -> Result<Option<String>, FieldError> {
    let summary = raw.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let stray = |c: char| c.is_control() && !matches!(c, '\n' | '\r' | '\t');
    if summary.as_ref().is_some_and(|s| s.contains(stray)) {
        return Err(FieldError::new(
            "summary",
            "must not contain control characters other than line breaks and tabs",
        ));
    }
    if summary.as_ref().is_some_and(|s| s.chars().count() > 5000) {
        return Err(FieldError::new("summary", "is longer than 5000 characters"));
    }
    Ok(summary)
}

/// The listing's filter and page, checked: shared by the API and the console.
pub fn parse_list(
    status: Option<String>,
    q: Option<String>,
    page: Option<i64>,
) -> Result<(Filter, i64), FieldError> {
    let status = match status {
        Some(s) => Some(s.parse::<SubscriberStatus>().map_err(|_| {
            FieldError::new(
                "status",
                format!("must be one of {}", SubscriberStatus::NAMES.join(", ")),
            )
        })?),
        None => None,
    };
    let page = page.unwrap_or(1);
    if !(1..=1_000_000).contains(&page) {
        return Err(FieldError::new("page", "must be a number from 1"));
    }
    if q.as_ref().is_some_and(|q| q.len() > 254) {
        return Err(FieldError::new("q", "is longer than 254 characters"));
    }
    if q.as_ref().is_some_and(|q| q.chars().any(char::is_control)) {
        return Err(FieldError::new("q", "must not contain control characters"));
    }
    Ok((Filter { status, q }, page))
}

/// Empty form and query values mean "not given".
pub fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// The bounce listing's filter and page, checked (GET /api/bounces and
/// /admin/bounces): empty values are not given.
pub fn parse_bounce_list(
    digest: Option<String>,
    subscriber: Option<String>,
    kind: Option<String>,
    page: Option<String>,
) -> Result<(db::bounces::Filter, i64), FieldError> {
    use crate::domain::BounceKind;
    let digest_id = match non_empty(digest) {
        Some(d) => Some(
            d.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| FieldError::new("digest", "must be a digest id"))?,
        ),
        None => None,
    };
    let subscriber_id = match non_empty(subscriber) {
        Some(s) if crate::domain::plausible_subscriber_id(&s) => Some(s),
        Some(_) => return Err(FieldError::new("subscriber", "must be a subscriber id")),
        None => None,
    };
    let kind = match non_empty(kind) {
        Some(k) => Some(k.parse::<BounceKind>().map_err(|_| {
            FieldError::new(
                "kind",
                format!("must be one of {}", BounceKind::NAMES.join(", ")),
            )
        })?),
        None => None,
    };
    let page = match non_empty(page) {
        Some(p) => p
            .parse::<i64>()
            .ok()
            .filter(|p| (1..=1_000_000).contains(p))
            .ok_or_else(|| FieldError::new("page", "must be a number from 1"))?,
        None => 1,
    };
    Ok((
        db::bounces::Filter {
            digest_id,
            subscriber_id,
            kind,
        },
        page,
    ))
}
