//! GET /admin/subscribers (search, status filter, paging) and
//! GET /admin/subscribers/{id} (the reader and their consent history).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::auth::Admin;
use super::{non_empty, query, render, AdminError};
use crate::db;
use crate::domain::status;
use crate::routes::api::subscribers::{parse_list, PER_PAGE};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/subscribers", web::get().to(list))
        .route("/subscribers/{id}", web::get().to(show));
}

#[derive(Deserialize)]
struct ListQuery {
    q: Option<String>,
    status: Option<String>,
    page: Option<String>,
}

async fn list(
    admin: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let state = state.into_inner();
    let raw: ListQuery = query(&req)?;
    let page = match non_empty(raw.page) {
        Some(p) => Some(
            p.parse::<i64>()
                .map_err(|_| AdminError::BadRequest("page must be a number from 1".into()))?,
        ),
        None => None,
    };
    let (filter, page) = parse_list(non_empty(raw.status), non_empty(raw.q), page)?;
    let shown = filter.clone();
    let (items, total) = db::run(&state.pool, move |c| {
        db::subscribers::list(c, &filter, page, PER_PAGE)
    })
    .await?;
    let pages = ((total + PER_PAGE - 1) / PER_PAGE).max(1);
    render(
        &state,
        StatusCode::OK,
        "admin/subscribers.html",
        &admin,
        "subscribers",
        serde_json::json!({
            "items": items,
            "total": total,
            "page": page,
            "pages": pages,
            "q": shown.q.unwrap_or_default(),
            "status": shown.status.unwrap_or_default(),
            "statuses": status::ALL,
        }),
    )
}

async fn show(
    admin: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let state = state.into_inner();
    let id = path.into_inner();
    if id.len() > 64 {
        return Err(AdminError::NotFound);
    }
    let found = db::run(&state.pool, move |c| {
        let Some(s) = db::subscribers::find(c, &id)? else {
            return Ok(None);
        };
        let consent = db::consent::for_subscriber(c, &id)?;
        Ok(Some((s, consent)))
    })
    .await?;
    let (subscriber, consent) = found.ok_or(AdminError::NotFound)?;
    render(
        &state,
        StatusCode::OK,
        "admin/subscriber.html",
        &admin,
        "subscribers",
        serde_json::json!({
            "subscriber": subscriber,
            "consent": consent,
        }),
    )
}
