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
    })
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
