//! GET /admin/subscribers (search, status filter, paging),
//! GET /admin/subscribers/{id} (the reader and their consent history) and
//! POST /admin/subscribers/{id}/erase (GDPR erasure, [`crate::privacy::erase`]).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::auth::Admin;
use super::render;
use crate::db::{self, consent::ConsentRecord, subscribers::Subscriber};
use crate::domain::SubscriberStatus;
use crate::routes::web::{form, non_empty, parse_list, query, AdminError, PER_PAGE};
use crate::state::AppState;

#[derive(Deserialize)]
struct ListQuery {
    q: Option<String>,
    status: Option<String>,
    page: Option<String>,
}

/// A page of the listing, with the search that found it.
#[derive(Serialize)]
struct ListPage {
    items: Vec<Subscriber>,
    total: i64,
    page: i64,
    pages: i64,
    q: String,
    status: String,
    statuses: &'static [SubscriberStatus],
}

pub async fn list(
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
        ListPage {
            items,
            total,
            page,
            pages,
            q: shown.q.unwrap_or_default(),
            status: shown.status.map(|s| s.to_string()).unwrap_or_default(),
            statuses: SubscriberStatus::ALL,
        },
    )
}

/// One reader, their consent history, and whether they were just erased.
#[derive(Serialize)]
struct ShowPage {
    subscriber: Subscriber,
    consent: Vec<ConsentRecord>,
    bounces: Vec<db::bounces::BounceRecord>,
    erased: bool,
}

pub async fn show(
    admin: Admin,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let state = state.into_inner();
    let id = path.into_inner();
    if !crate::domain::plausible_subscriber_id(&id) {
        return Err(AdminError::NotFound);
    }
    let found = db::run(&state.pool, move |c| {
        let found = db::views::subscriber_with_consent(c, &id)?;
        Ok((found, db::bounces::for_subscriber(c, &id)?))
    })
    .await?;
    let (found, bounces) = found;
    let (subscriber, consent) = found.ok_or(AdminError::NotFound)?;
    render(
        &state,
        StatusCode::OK,
        "admin/subscriber.html",
        &admin,
        "subscribers",
        ShowPage {
            subscriber,
            consent,
            bounces,
            erased: req.query_string() == "erased=1",
        },
    )
}

/// Erases the reader's personal data in one transaction (the `erased` event
/// names the admin), then clears SQLite's log of the old pages.
pub async fn erase(
    admin: Admin,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    admin.check_csrf(&form(&body)?)?;
    let id = path.into_inner();
    if !crate::domain::plausible_subscriber_id(&id) {
        return Err(AdminError::NotFound);
    }
    let ctx = crate::db::consent::Context {
        ip: None,
        user_agent: None,
        source: Some(format!("admin console ({})", admin.name)),
        method: Some("admin".into()),
        consent_version: Some(state.consent_version.clone()),
    };
    let erased = crate::privacy::erase(&state.pool, &state.secret, &id, ctx).await?;
    let location = if erased {
        tracing::info!(admin_id = admin.id, subscriber_id = %id, "subscriber erased from the console");
        format!("/admin/subscribers/{id}?erased=1")
    } else {
        let lookup = id.clone();
        let known = db::run(&state.pool, move |c| db::subscribers::find(c, &lookup)).await?;
        if known.is_none() {
            return Err(AdminError::NotFound);
        }
        // Erased before: the page says so.
        format!("/admin/subscribers/{id}")
    };
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish())
}
