//! The editor's page of one digest: GET /admin/digests/{id} (the preview at
//! desktop and phone widths, the edit form, "Send test", and the "Send to
//! N readers" step), GET /admin/digests/{id}/preview (the framed email),
//! POST /admin/digests/{id}/edit, /test and /send.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::auth::Admin;
use super::render;
use crate::db;
use crate::digest::editorial::{self, Edit, EditError, Sent};
use crate::domain::{DigestStatus, SubscriberEmail, SubscriberStatus};
use crate::routes::web::{field, form, parse_time, query, AdminError};
use crate::state::AppState;

/// The console's policy plus frames of its own origin (the preview).
const PAGE_CSP: &str =
    "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
     script-src 'self'; connect-src 'self'; form-action 'self'; frame-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'";
/// The framed email: its images from anywhere, no script, framed only here.
const FRAME_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src http: https: data:; \
     frame-ancestors 'self'; base-uri 'none'; form-action 'none'";

#[derive(Serialize)]
struct ArticleRow {
    id: i64,
    title: String,
    position: usize,
}

#[derive(Serialize)]
struct DraftPage {
    id: i64,
    status: DigestStatus,
    editable: bool,
    subject: String,
    custom_subject: String,
    intro: String,
    articles: Vec<ArticleRow>,
    readers: i64,
    html_bytes: usize,
    near_clipping: bool,
    scheduled_at: Option<String>,
    notice: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Notice {
    notice: Option<String>,
    error: Option<String>,
}

fn digest_id(raw: &str) -> Result<i64, AdminError> {
    raw.parse().map_err(|_| AdminError::NotFound)
}

pub async fn show(
    admin: Admin,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let id = digest_id(&path)?;
    let notice: Notice = query(&req)?;
    let state = state.into_inner();
    let found = db::run(&state.pool, move |c| {
        let Some(d) = db::digests::find(c, id)? else {
            return Ok(None);
        };
        let list = db::articles::in_digest(c, id)?;
        let readers = db::subscribers::count_by_status(c)?
            .into_iter()
            .find(|(s, _)| *s == SubscriberStatus::Confirmed)
            .map_or(0, |(_, n)| n);
        Ok(Some((d, list, readers)))
    })
    .await?;
    let (d, list, readers) = found.ok_or(AdminError::NotFound)?;
    let page = DraftPage {
        id: d.id,
        status: d.status,
        editable: d.status == DigestStatus::Draft,
        subject: d.subject.clone(),
        custom_subject: d.custom_subject.clone().unwrap_or_default(),
        intro: d.intro.clone().unwrap_or_default(),
        articles: list
            .iter()
            .enumerate()
            .map(|(i, a)| ArticleRow {
                id: a.id,
                title: a.title.clone(),
                position: i + 1,
            })
            .collect(),
        readers,
        html_bytes: d.body_html.len(),
        near_clipping: d.body_html.len() > editorial::SIZE_WARNING_BYTES,
        scheduled_at: d
            .scheduled_at
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
        notice: notice.notice,
        error: notice.error,
    };
    let mut response = render(
        &state,
        StatusCode::OK,
        "admin/digest.html",
        &admin,
        "digests",
        page,
    )?;
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(PAGE_CSP),
    );
    Ok(response)
}

/// The email itself, for the page's frames.
pub async fn frame(
    _admin: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let id = digest_id(&path)?;
    let digest = db::run(&state.pool, move |c| db::digests::find(c, id))
        .await?
        .ok_or(AdminError::NotFound)?;
    let (html, _) = editorial::preview(&state, &digest, false);
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_FRAME_OPTIONS, "SAMEORIGIN"))
        .insert_header((header::CONTENT_SECURITY_POLICY, FRAME_CSP))
        .body(html))
}

/// Back to the digest's page with a notice or an error.
fn back(id: i64, key: &str, message: &str) -> HttpResponse {
    let q = serde_urlencoded::to_string([(key, message)]).unwrap_or_default();
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/admin/digests/{id}?{q}")))
        .finish()
}

/// A refusal the editor can act on goes back to the page; the rest is an
/// error page.
fn outcome<T>(
    id: i64,
    result: Result<T, EditError>,
    done: &str,
) -> Result<HttpResponse, AdminError> {
    match result {
        Ok(_) => Ok(back(id, "notice", done)),
        Err(EditError::NotFound) => Err(AdminError::NotFound),
        Err(EditError::Db(e)) => Err(e.into()),
        Err(e) => Ok(back(id, "error", &e.to_string())),
    }
}

/// The edit form: `subject`, `intro`, and a position per article
/// (`pos_ID`; blank or 0 takes it out).
pub async fn edit(
    admin: Admin,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let id = digest_id(&path)?;
    let pairs = form(&body)?;
    admin.check_csrf(&pairs)?;
    let mut order: Vec<(i64, i64)> = Vec::new();
    for (key, value) in &pairs {
        let Some(article) = key.strip_prefix("pos_").and_then(|k| k.parse::<i64>().ok()) else {
            continue;
        };
        match value.trim() {
            "" | "0" => {}
            v => {
                match v.parse::<i64>() {
                    Ok(p) if p > 0 => order.push((p, article)),
                    _ => return Ok(back(
                        id,
                        "error",
                        "Positions must be whole numbers from 1 (0 or blank removes an article).",
                    )),
                }
            }
        }
    }
    order.sort();
    let edit = Edit {
        subject: field(&pairs, "subject").map(str::to_string),
        intro: field(&pairs, "intro").map(|s| s.replace("\r\n", "\n")),
        articles: Some(order.into_iter().map(|(_, a)| a).collect()),
    };
    let state = state.into_inner();
    outcome(id, editorial::edit(&state, id, edit).await, "Saved.")
}

/// "Send test": comma- or space-separated addresses.
pub async fn test(
    admin: Admin,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let id = digest_id(&path)?;
    let pairs = form(&body)?;
    admin.check_csrf(&pairs)?;
    let raw = field(&pairs, "to").unwrap_or_default();
    let mut to = Vec::new();
    for part in raw
        .split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        match SubscriberEmail::parse(part) {
            Ok(a) => to.push(a),
            Err(reason) => return Ok(back(id, "error", &format!("\"{part}\": {reason}"))),
        }
    }
    let state = state.into_inner();
    let result = editorial::test_send(&state, id, &to).await;
    outcome(
        id,
        result,
        &format!("Test sent to {} address(es).", to.len()),
    )
}

/// "Send to N readers": now, or at `at` (`YYYY-MM-DDTHH:MM`, UTC).
pub async fn send(
    admin: Admin,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let id = digest_id(&path)?;
    let pairs = form(&body)?;
    admin.check_csrf(&pairs)?;
    let at = match field(&pairs, "at").map(str::trim).filter(|s| !s.is_empty()) {
        Some(raw) => {
            match parse_time("at", raw).or_else(|_| parse_time("at", &format!("{raw}:00"))) {
                Ok(t) => Some(t),
                Err(_) => {
                    return Ok(back(
                        id,
                        "error",
                        "The time must look like 2026-12-05T08:00 (UTC).",
                    ))
                }
            }
        }
        None => None,
    };
    let state = state.into_inner();
    match editorial::send(&state, id, at).await {
        Ok(Sent::Now { recipients }) => {
            tracing::info!(
                admin_id = admin.id,
                digest_id = id,
                recipients,
                "draft sent from the console"
            );
            Ok(HttpResponse::SeeOther()
                .insert_header((header::LOCATION, format!("/admin/digests?composed={id}")))
                .finish())
        }
        other => outcome(id, other, "Scheduled."),
    }
}
