//! GET /archive (a page of sent digests), GET /archive/{id} (one, as
//! sent, without any reader's link), GET /archive/feed.xml (Atom). All 404
//! when `archive_public` is false.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{link_not_found, page};
use crate::digest::archive;
use crate::routes::web::{query, wants_json, PageError};
use crate::state::{AppState, SharedState};

#[derive(Deserialize)]
pub struct PageQuery {
    page: Option<i64>,
}

/// One digest in the list.
#[derive(Serialize)]
struct Entry {
    id: i64,
    subject: String,
    sent_at: String,
    /// RFC 3339, for the Atom feed.
    updated: String,
    url: String,
}

fn entries(state: &AppState, digests: Vec<crate::db::digests::Digest>) -> Vec<Entry> {
    digests
        .into_iter()
        .map(|d| Entry {
            id: d.id,
            url: state.link(&format!("/archive/{}", d.id)),
            subject: d.subject,
            sent_at: d.created_at.format("%B %-d, %Y").to_string(),
            updated: d.created_at.and_utc().to_rfc3339(),
        })
        .collect()
}

fn closed(state: &SharedState) -> Result<HttpResponse, PageError> {
    link_not_found(state, "This newsletter has no public archive.", false)
}

#[utoipa::path(get, path = "/archive", operation_id = "archive", tag = "public",
    params(("page" = Option<String>, Query)),
    responses(
        (status = 200, description = "sent digests, newest first", content_type = "text/html", body = String),
        (status = 400, description = "bad page", content_type = "text/html", body = String),
        (status = 404, description = "no public archive", content_type = "text/html", body = String),
    ))]
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let state = state.into_inner();
    if !state.settings.archive_public {
        return closed(&state);
    }
    let q: PageQuery =
        query(&req).map_err(|_| PageError::BadRequest("page must be a number from 1".into()))?;
    let number = q.page.unwrap_or(1);
    if !(1..=1_000_000).contains(&number) {
        return Err(PageError::BadRequest("page must be a number from 1".into()));
    }
    let (digests, total) = archive::page(&state.pool, number).await?;
    let items = entries(&state, digests);
    let pages = (total + archive::PER_PAGE - 1) / archive::PER_PAGE;
    if wants_json(req.headers()) {
        return Ok(HttpResponse::Ok().json(serde_json::json!({
            "items": items, "page": number, "per_page": archive::PER_PAGE, "total": total,
        })));
    }
    page(
        &state,
        StatusCode::OK,
        "pages/archive.html",
        minijinja::context! {
            items => minijinja::Value::from(minijinja::value::Serde(&items)),
            page => number,
            previous => (number > 1).then(|| number - 1),
            next => (number < pages).then(|| number + 1),
            feed_url => state.link("/archive/feed.xml"),
            archive_url => state.link("/archive"),
            signup_url => state.link("/"),
        },
    )
}

#[utoipa::path(get, path = "/archive/{id}", operation_id = "archived_digest", tag = "public",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "one sent digest, no reader's link in it", content_type = "text/html", body = String),
        (status = 404, description = "no such digest, or no public archive", content_type = "text/html", body = String),
    ))]
pub async fn show(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let state = state.into_inner();
    if !state.settings.archive_public {
        return closed(&state);
    }
    let Ok(id) = path.into_inner().parse::<i64>() else {
        return link_not_found(&state, "There is no such issue in the archive.", false);
    };
    let Some(digest) = archive::find(&state.pool, id).await? else {
        return link_not_found(&state, "There is no such issue in the archive.", false);
    };
    let body = archive::web_version(&digest.body_html, &state.link("/"));
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(body))
}

#[utoipa::path(get, path = "/archive/feed.xml", operation_id = "archive_feed", tag = "public",
    responses(
        (status = 200, description = "an Atom feed of the archive", content_type = "application/atom+xml", body = String),
        (status = 404, description = "no public archive", content_type = "text/html", body = String),
    ))]
pub async fn feed(state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let state = state.into_inner();
    if !state.settings.archive_public {
        return closed(&state);
    }
    let (digests, _) = archive::page(&state.pool, 1).await?;
    let items = entries(&state, digests);
    let updated = items
        .first()
        .map(|e| e.updated.clone())
        .unwrap_or_else(|| chrono::DateTime::UNIX_EPOCH.to_rfc3339());
    let body = crate::mail::templates::render(
        &state.templates,
        "pages/archive_feed.xml",
        minijinja::context! {
            items => minijinja::Value::from(minijinja::value::Serde(&items)),
            updated => updated,
            archive_url => state.link("/archive"),
            feed_url => state.link("/archive/feed.xml"),
        },
    )?;
    Ok(HttpResponse::Ok()
        .content_type("application/atom+xml; charset=utf-8")
        .body(body))
}
