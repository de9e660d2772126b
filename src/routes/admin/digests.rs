//! GET /admin/digests (list with live progress bars), POST
//! /admin/digests/send ("Send now"), POST /admin/digests/{id}/pause|resume|
//! cancel (the buttons of a digest in progress), GET
//! /admin/digests/progress (the JSON the bars poll).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::auth::{Admin, AdminJson};
use super::render;
use crate::db::{self, DbConnection};
use crate::digest::ComposeOutcome;
use crate::domain::DigestStatus;
use crate::routes::web::{form, query, AdminError, Items};
use crate::state::AppState;

/// Digests shown on the page and in the JSON.
const LISTED: i64 = 20;

/// A digest with its delivery counts, ready for a page or JSON.
#[derive(Serialize)]
pub struct DigestRow {
    pub id: i64,
    pub status: DigestStatus,
    /// Why it is paused.
    pub reason: Option<String>,
    pub subject: String,
    pub articles: i32,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub total: i64,
    pub sent: i64,
    pub failed: i64,
    pub skipped: i64,
    pub queued: i64,
    /// Deliveries settled (sent, failed or skipped).
    pub done: i64,
    pub percent: i64,
}

/// The newest `limit` digests with their progress.
pub fn rows(c: &mut DbConnection, limit: i64) -> db::QueryResult<Vec<DigestRow>> {
    let digests = db::views::recent_digests(c, limit)?;
    Ok(digests
        .into_iter()
        .map(|(d, p)| {
            let done = p.sent + p.failed + p.skipped;
            let percent = if p.total > 0 {
                (done * 100 / p.total).min(100)
            } else if d.status == DigestStatus::Sending {
                0
            } else {
                100
            };
            DigestRow {
                id: d.id,
                status: d.status,
                reason: d.status_reason,
                subject: d.subject,
                articles: d.article_count,
                created_at: d.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
                finished_at: d
                    .finished_at
                    .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
                total: p.total,
                sent: p.sent,
                failed: p.failed,
                skipped: p.skipped,
                queued: p.queued,
                done,
                percent,
            }
        })
        .collect())
}

#[derive(Deserialize)]
struct Notice {
    composed: Option<i64>,
    nothing_new: Option<String>,
    unchanged: Option<i64>,
}

/// The list page: the digests, and what the last button did.
#[derive(Serialize)]
struct ListPage {
    complaints: Vec<ComplaintNotice>,
    digests: Vec<DigestRow>,
    composed: Option<i64>,
    nothing_new: bool,
    unchanged: Option<i64>,
}

pub async fn list(
    admin: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let state = state.into_inner();
    let notice: Notice = query(&req)?;
    let items = db::run(&state.pool, |c| rows(c, LISTED)).await?;
    let flagged: Vec<(i64, i64)> = items.iter().map(|d| (d.id, d.sent)).collect();
    let complaints = db::run(&state.pool, move |c| complaint_notices(c, &flagged)).await?;
    render(
        &state,
        StatusCode::OK,
        "admin/digests.html",
        &admin,
        "digests",
        ListPage {
            digests: items,
            composed: notice.composed,
            nothing_new: notice.nothing_new.is_some(),
            unchanged: notice.unchanged,
            complaints,
        },
    )
}

/// A digest whose complaint rate passed a threshold.
#[derive(Serialize)]
struct ComplaintNotice {
    id: i64,
    complaints: i64,
    percent: String,
    level: &'static str,
}

fn complaint_notices(
    c: &mut DbConnection,
    digests: &[(i64, i64)],
) -> db::QueryResult<Vec<ComplaintNotice>> {
    let mut out = Vec::new();
    for &(id, sent) in digests {
        let b = crate::bounces::digest_bounces(c, id, sent)?;
        if let Some(level) = b.complaint_level {
            out.push(ComplaintNotice {
                id,
                complaints: b.complaints,
                percent: format!("{:.2}", b.complaint_rate * 100.0),
                level,
            });
        }
    }
    Ok(out)
}

pub async fn send_now(
    admin: Admin,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    admin.check_csrf(&form(&body)?)?;
    let state = state.into_inner();
    // A draft first: the editor previews it, may test it, and then sends
    // it to the readers with the page's "Send to N readers" button.
    let draft = crate::digest::Mode::Draft;
    let location = match crate::digest::compose_as(&state, None, draft).await? {
        ComposeOutcome::Created(c) | ComposeOutcome::Existing(c) => {
            tracing::info!(
                admin_id = admin.id,
                digest_id = c.id,
                "digest drafted from the console"
            );
            format!("/admin/digests/{}", c.id)
        }
        ComposeOutcome::NothingNew => "/admin/digests?nothing_new=1".to_string(),
    };
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish())
}

/// The Pause, Resume and Cancel buttons: back to the list, which shows the
/// new status (or why the action did not apply).
pub async fn control(
    admin: Admin,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    use crate::digest::control::{self, Action, ControlError};
    admin.check_csrf(&form(&body)?)?;
    let (id, action) = path.into_inner();
    let (Some(action), Ok(id)) = (Action::parse(&action), id.parse::<i64>()) else {
        return Err(AdminError::NotFound);
    };
    let location = match control::apply(&state, id, action).await {
        Ok(_) => {
            tracing::info!(
                admin_id = admin.id,
                digest_id = id,
                ?action,
                "digest control from the console"
            );
            "/admin/digests".to_string()
        }
        Err(ControlError::NotFound) => return Err(AdminError::NotFound),
        Err(ControlError::WrongStatus(_)) => format!("/admin/digests?unchanged={id}"),
        Err(ControlError::Db(e)) => return Err(e.into()),
    };
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish())
}

pub async fn progress(
    _admin: AdminJson,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let items = db::run(&state.pool, |c| rows(c, LISTED)).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Items { items }))
}
