//! POST /api/articles (upsert by URL), GET /api/articles.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::ApiToken;
use crate::db;
use crate::routes::web::{
    json_object, json_text, parse_time, query, validate_article, ApiError, ArticleInput, Items,
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

/// What became of a submitted article.
#[derive(Serialize)]
struct Saved {
    id: i64,
    created: bool,
}

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

#[derive(Deserialize)]
pub struct ListQuery {
    since: Option<String>,
    limit: Option<i64>,
}

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
    let items = db::run(&state.pool, move |c| db::articles::list(c, since, limit)).await?;
    Ok(HttpResponse::Ok().json(Items { items }))
}
