//! GET /api/bounces: bounces and complaints as they came in, newest first,
//! `?digest=&subscriber=&kind=hard|soft|complaint&page=`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::ApiToken;
use crate::db::{self, bounces::BounceRecord};
use crate::routes::web::{parse_bounce_list, query, ApiError, ErrorBody, PER_PAGE};
use crate::state::AppState;

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// a digest id
    digest: Option<String>,
    /// a subscriber id
    subscriber: Option<String>,
    /// hard, soft or complaint
    kind: Option<String>,
    /// from 1
    page: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Page {
    items: Vec<BounceRecord>,
    page: i64,
    per_page: i64,
    total: i64,
}

#[utoipa::path(get, path = "/api/bounces", operation_id = "list_bounces", tag = "ops",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "bounces and complaints, newest first", body = Page),
        (status = 400, description = "bad query", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 422, description = "a parameter is invalid", body = ErrorBody),
    ))]
pub async fn list(
    _auth: ApiToken,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q: ListQuery = query(&req)?;
    let (filter, page) = parse_bounce_list(q.digest, q.subscriber, q.kind, q.page)?;
    let (items, total) = db::run(&state.pool, move |c| {
        db::bounces::list(c, &filter, page, PER_PAGE)
    })
    .await?;
    Ok(HttpResponse::Ok().json(Page {
        items,
        page,
        per_page: PER_PAGE,
        total,
    }))
}
