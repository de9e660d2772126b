//! POST /api/articles (upsert by URL), GET /api/articles.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::ApiToken;
use crate::db;
use crate::routes::web::{
    json_object, json_text, parse_time, query, validate_article, ApiError, ArticleInput, ErrorBody,
    Items,
};
use crate::state::AppState;

fn input_from_json(body: &[u8]) -> Result<ArticleInput, ApiError> {
    let obj = json_object(body)?;
    Ok(ArticleInput {
        url: json_text(&obj, "url")?,
        title: json_text(&obj, "title")?,
        summary: json_text(&obj, "summary")?,
        published_at: json_text(&obj, "published_at")?,
        image_url: json_text(&obj, "image_url")?,
        author: json_text(&obj, "author")?,
        sections: json_strings(&obj, "sections")?,
    })
}

/// An optional array of strings; anything else is a 422 naming it.
fn json_strings(
    obj: &serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<Vec<String>, ApiError> {
    let wrong = || ApiError::validation(name, "must be an array of strings");
    match obj.get(name) {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(serde_json::Value::Array(items)) if items.len() <= 100 => items
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(wrong))
            .collect(),
        Some(_) => Err(wrong()),
    }
}

/// The body of POST /api/articles (read field by field, so that each
/// mistake names its field; this is its shape for the document).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ArticleBody {
    /// http(s) URL; the same URL again updates the article
    url: String,
    /// at most 300 characters, no control characters
    title: String,
    /// at most 5000 characters
    summary: Option<String>,
    /// RFC 3339; default now
    #[schema(format = DateTime)]
    published_at: Option<String>,
    image_url: Option<String>,
    author: Option<String>,
    sections: Option<Vec<String>>,
}

/// What became of a submitted article.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Saved {
    id: i64,
    created: bool,
}

#[utoipa::path(post, path = "/api/articles", operation_id = "create_article", tag = "ops", security(("bearer" = [])),
    request_body = ArticleBody,
    responses(
        (status = 201, description = "created", body = Saved),
        (status = 200, description = "updated (same URL)", body = Saved),
        (status = 400, description = "not JSON", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 422, description = "a field is invalid", body = ErrorBody),
    ))]
pub async fn create(
    _auth: ApiToken,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let article = validate_article(input_from_json(&body)?)?;
    let (id, created) = db::run(&state.pool, move |c| db::articles::upsert(c, &article)).await?;
    let body = Saved { id, created };
    Ok(if created {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

/// An article as GET /api/articles lists it: its fields and its votes.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Listed {
    #[serde(flatten)]
    article: db::articles::Article,
    /// Readers' votes on it: from the site's widget, from the digest's
    /// links, and both together.
    feedback: db::feedback::Counts,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// only articles published since (RFC 3339)
    since: Option<String>,
    /// 1 to 1000 (default 100)
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/articles", operation_id = "list_articles", tag = "ops", security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "newest first, each with its votes", body = Items<Vec<Listed>>),
        (status = 400, description = "bad query", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 422, description = "a parameter is invalid", body = ErrorBody),
    ))]
pub async fn list(
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
    let items = db::run(&state.pool, move |c| {
        let articles = db::articles::list(c, since, limit)?;
        let urls: Vec<String> = articles.iter().map(|a| a.url.clone()).collect();
        let mut counts = db::feedback::counts_for(c, &urls)?;
        Ok(articles
            .into_iter()
            .map(|article| Listed {
                feedback: counts.remove(&article.url).unwrap_or_default(),
                article,
            })
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(HttpResponse::Ok().json(Items { items }))
}
