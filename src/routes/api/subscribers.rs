//! GET /api/subscribers, GET /api/subscribers/{id}, and the GDPR pair:
//! GET /api/subscribers/{id}/export (access) and DELETE /api/subscribers/{id}
//! (erasure).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{query, ApiToken};
use crate::db::{self, subscribers::Filter};
use crate::domain::status;
use crate::routes::ApiError;
use crate::state::AppState;

pub const PER_PAGE: i64 = 50;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/subscribers", web::get().to(list))
        .route("/subscribers/{id}", web::get().to(show))
        .route("/subscribers/{id}", web::delete().to(erase))
        .route("/subscribers/{id}/export", web::get().to(export));
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    q: Option<String>,
    page: Option<i64>,
}

/// The listing's filter and page, checked: shared by the API and the console.
pub fn parse_list(
    status: Option<String>,
    q: Option<String>,
    page: Option<i64>,
) -> Result<(Filter, i64), ApiError> {
    if let Some(s) = &status {
        if !status::ALL.contains(&s.as_str()) {
            return Err(ApiError::validation(
                "status",
                format!("must be one of {}", status::ALL.join(", ")),
            ));
        }
    }
    let page = page.unwrap_or(1);
    if !(1..=1_000_000).contains(&page) {
        return Err(ApiError::validation("page", "must be a number from 1"));
    }
    if q.as_ref().is_some_and(|q| q.len() > 254) {
        return Err(ApiError::validation("q", "is longer than 254 characters"));
    }
    if q.as_ref().is_some_and(|q| q.chars().any(char::is_control)) {
        return Err(ApiError::validation(
            "q",
            "must not contain control characters",
        ));
    }
    Ok((Filter { status, q }, page))
}

async fn list(
    _auth: ApiToken,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query: ListQuery = query(&req)?;
    let (filter, page) = parse_list(query.status, query.q, query.page)?;
    let (items, total) = db::run(&state.pool, move |c| {
        db::subscribers::list(c, &filter, page, PER_PAGE)
    })
    .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "items": items,
        "page": page,
        "per_page": PER_PAGE,
        "total": total,
    })))
}

/// The `{id}` of a route; one that cannot be a reader's id is not found.
fn subscriber_id(path: web::Path<String>) -> Result<String, ApiError> {
    let id = path.into_inner();
    if crate::domain::plausible_subscriber_id(&id) {
        Ok(id)
    } else {
        Err(ApiError::NotFound("no such subscriber".into()))
    }
}

async fn show(
    _auth: ApiToken,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = subscriber_id(path)?;
    let found = db::run(&state.pool, move |c| {
        let Some(s) = db::subscribers::find(c, &id)? else {
            return Ok(None);
        };
        let consent = db::consent::for_subscriber(c, &id)?;
        Ok(Some((s, consent)))
    })
    .await?;
    let (subscriber, consent) =
        found.ok_or_else(|| ApiError::NotFound("no such subscriber".into()))?;
    let mut body = serde_json::to_value(&subscriber).map_err(anyhow::Error::from)?;
    body["consent"] = serde_json::to_value(&consent).map_err(anyhow::Error::from)?;
    Ok(HttpResponse::Ok().json(body))
}

async fn export(
    _auth: ApiToken,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = subscriber_id(path)?;
    let found = db::run(&state.pool, move |c| crate::privacy::export(c, &id)).await?;
    let body = found.ok_or_else(|| ApiError::NotFound("no such subscriber".into()))?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(body))
}

async fn erase(
    auth: ApiToken,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = subscriber_id(path)?;
    let ctx = db::consent::Context {
        source: Some(format!("api token \"{}\"", auth.name)),
        method: Some("api".into()),
        ..Default::default()
    };
    let secret = state.secret.clone();
    let target = id.clone();
    let erased = db::transaction(&state.pool, move |c| {
        crate::privacy::erase(c, &secret, &target, &ctx)
    })
    .await?;
    if !erased {
        return Err(ApiError::NotFound("no such subscriber".into()));
    }
    // Old page images of the erased rows linger in SQLite's write-ahead log
    // until a checkpoint; do it now. Erasure stands even if this fails.
    match db::run(&state.pool, crate::privacy::purge_freed).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            "erasure committed; WAL checkpoint busy, old pages remain until the next one"
        ),
        Err(e) => tracing::warn!(error = %e, "erasure committed; WAL checkpoint failed"),
    }
    tracing::info!(subscriber = %id, "subscriber erased");
    Ok(HttpResponse::Ok().json(serde_json::json!({"id": id, "status": status::ERASED})))
}
