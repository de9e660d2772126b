//! POST /api/articles (upsert by URL), GET /api/articles.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDateTime};
use serde::Deserialize;

use super::{query, ApiToken};
use crate::db::{self, articles::NewArticle};
use crate::routes::{json_object, json_text, ApiError};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/articles", web::post().to(create))
        .route("/articles", web::get().to(list));
}

/// An article as submitted, before validation (the API's JSON and the
/// console's form both fill it in).
#[derive(Default)]
pub struct ArticleInput {
    pub url: Option<String>,
    pub title: Option<String>,
    pub summary: Option<String>,
    pub published_at: Option<String>,
}

impl ArticleInput {
    fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        let obj = json_object(body)?;
        Ok(Self {
            url: json_text(&obj, "url")?,
            title: json_text(&obj, "title")?,
            summary: json_text(&obj, "summary")?,
            published_at: json_text(&obj, "published_at")?,
        })
    }
}

/// RFC 3339 (`2026-11-29T08:00:00Z`) or a naive UTC `2026-11-29T08:00:00`.
/// Times from year 1 to 9999 only: chrono reads any year, PostgreSQL
/// stores none before 4713 BC.
pub fn parse_time(field: &str, raw: &str) -> Result<NaiveDateTime, ApiError> {
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|d| d.naive_utc())
        .or_else(|_| NaiveDateTime::parse_from_str(raw.trim(), "%Y-%m-%dT%H:%M:%S%.f"))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
        })
        .ok()
        .filter(|t| (1..=9999).contains(&chrono::Datelike::year(t)))
        .ok_or_else(|| {
            ApiError::validation(field, "must be an RFC 3339 time like 2026-11-29T08:00:00Z")
        })
}

/// The one set of article rules, shared by POST /api/articles and the console.
pub fn validate(input: ArticleInput) -> Result<NewArticle, ApiError> {
    let url = input.url.unwrap_or_default().trim().to_string();
    if url.is_empty() {
        return Err(ApiError::validation("url", "is required"));
    }
    if url.len() > 2048 {
        return Err(ApiError::validation(
            "url",
            "is longer than 2048 characters",
        ));
    }
    let parsed =
        url::Url::parse(&url).map_err(|_| ApiError::validation("url", "is not a valid URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(ApiError::validation("url", "must be an http(s) URL"));
    }
    let title = input.title.unwrap_or_default().trim().to_string();
    if title.is_empty() {
        return Err(ApiError::validation("title", "is required"));
    }
    if title.chars().count() > 300 {
        return Err(ApiError::validation(
            "title",
            "is longer than 300 characters",
        ));
    }
    if title.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "title",
            "must not contain control characters",
        ));
    }
    let summary = input
        .summary
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let stray = |c: char| c.is_control() && !matches!(c, '\n' | '\r' | '\t');
    if summary.as_ref().is_some_and(|s| s.contains(stray)) {
        return Err(ApiError::validation(
            "summary",
            "must not contain control characters other than line breaks and tabs",
        ));
    }
    if summary.as_ref().is_some_and(|s| s.chars().count() > 5000) {
        return Err(ApiError::validation(
            "summary",
            "is longer than 5000 characters",
        ));
    }
    let published_at = match input.published_at.filter(|s| !s.trim().is_empty()) {
        Some(raw) => parse_time("published_at", &raw)?,
        None => db::now(),
    };
    Ok(NewArticle {
        url: parsed.to_string(),
        guid: None,
        title,
        summary,
        published_at,
    })
}

async fn create(
    _auth: ApiToken,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let article = validate(ArticleInput::from_json(&body)?)?;
    let (id, created) = db::run(&state.pool, move |c| db::articles::upsert(c, &article)).await?;
    let body = serde_json::json!({"id": id, "created": created});
    Ok(if created {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

#[derive(Deserialize)]
pub struct ListQuery {
    since: Option<String>,
    limit: Option<i64>,
}

async fn list(
    _auth: ApiToken,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query: ListQuery = query(&req)?;
    let since = match query.since.as_deref() {
        Some(raw) => Some(parse_time("since", raw)?),
        None => None,
    };
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::validation("limit", "must be between 1 and 1000"));
    }
    let items = db::run(&state.pool, move |c| db::articles::list(c, since, limit)).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}
