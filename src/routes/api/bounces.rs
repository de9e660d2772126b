//! GET /api/bounces: bounces and complaints as they came in, newest first,
//! `?digest=&subscriber=&kind=hard|soft|complaint&page=`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::ApiToken;
use crate::db::{self, bounces::BounceRecord, bounces::Filter};
use crate::domain::BounceKind;
use crate::routes::web::{query, ApiError, ErrorBody, PER_PAGE};
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

/// The filter and page, checked: a bad one is a 422 naming its field.
fn parse(q: ListQuery) -> Result<(Filter, i64), ApiError> {
    let digest_id = match q.digest.filter(|d| !d.is_empty()) {
        Some(d) => Some(
            d.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ApiError::validation("digest", "must be a digest id"))?,
        ),
        None => None,
    };
    let subscriber_id = match q.subscriber.filter(|s| !s.is_empty()) {
        Some(s) if crate::domain::plausible_subscriber_id(&s) => Some(s),
        Some(_) => {
            return Err(ApiError::validation(
                "subscriber",
                "must be a subscriber id",
            ))
        }
        None => None,
    };
    let kind = match q.kind.filter(|k| !k.is_empty()) {
        Some(k) => Some(k.parse::<BounceKind>().map_err(|_| {
            ApiError::validation(
                "kind",
                format!("must be one of {}", BounceKind::NAMES.join(", ")),
            )
        })?),
        None => None,
    };
    let page = match q.page {
        Some(p) => p
            .parse::<i64>()
            .ok()
            .filter(|p| (1..=1_000_000).contains(p))
            .ok_or_else(|| ApiError::validation("page", "must be a number from 1"))?,
        None => 1,
    };
    Ok((
        Filter {
            digest_id,
            subscriber_id,
            kind,
        },
        page,
    ))
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
    let (filter, page) = parse(query(&req)?)?;
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
