//! POST /api/digests (compose now), GET /api/digests, GET /api/digests/{id},
//! POST /api/digests/{id}/pause, /resume, /cancel.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDateTime;
use serde::Serialize;

use super::ApiToken;
use crate::db;
use crate::digest::ComposeOutcome;
use crate::domain::DigestStatus;
use crate::routes::web::{ApiError, Items, Status};
use crate::state::AppState;

pub async fn create(
    _auth: ApiToken,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let key = match req.headers().get("idempotency-key") {
        Some(v) => {
            let k = v
                .to_str()
                .map_err(|_| ApiError::validation("Idempotency-Key", "must be visible ASCII"))?
                .trim()
                .to_string();
            if k.is_empty() || k.len() > 200 {
                return Err(ApiError::validation(
                    "Idempotency-Key",
                    "must be 1 to 200 characters",
                ));
            }
            Some(k)
        }
        None => None,
    };
    let state = state.into_inner();
    match crate::digest::compose(&state, key).await? {
        ComposeOutcome::Created(c) => Ok(HttpResponse::Created().json(c)),
        ComposeOutcome::Existing(c) => Ok(HttpResponse::Created()
            .insert_header(("Idempotent-Replayed", "true"))
            .json(c)),
        ComposeOutcome::NothingNew => Ok(HttpResponse::Ok().json(Status::new("nothing_new"))),
    }
}

/// A digest with its live counts (`reason` is null unless it is paused).
#[derive(Serialize)]
struct DigestView {
    id: i64,
    status: DigestStatus,
    subject: String,
    articles: i32,
    reason: Option<String>,
    created_at: NaiveDateTime,
    finished_at: Option<NaiveDateTime>,
    total: i64,
    sent: i64,
    failed: i64,
    queued: i64,
    skipped: i64,
}

fn view(d: &db::digests::Digest, p: &db::digests::Progress) -> DigestView {
    DigestView {
        id: d.id,
        status: d.status,
        subject: d.subject.clone(),
        articles: d.article_count,
        reason: d.status_reason.clone(),
        created_at: d.created_at,
        finished_at: d.finished_at,
        total: p.total,
        sent: p.sent,
        failed: p.failed,
        queued: p.queued,
        skipped: p.skipped,
    }
}

pub async fn list(_auth: ApiToken, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let digests = db::run(&state.pool, |c| db::views::recent_digests(c, 50)).await?;
    let items: Vec<_> = digests.iter().map(|(d, p)| view(d, p)).collect();
    Ok(HttpResponse::Ok().json(Items { items }))
}

pub async fn show(
    _auth: ApiToken,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id: i64 = path
        .parse()
        .map_err(|_| ApiError::NotFound("no such digest".into()))?;
    #[derive(Serialize)]
    struct WithBounces {
        #[serde(flatten)]
        digest: DigestView,
        bounces: crate::bounces::DigestBounces,
    }
    let found = db::run(&state.pool, move |c| {
        let Some(d) = db::digests::find(c, id)? else {
            return Ok(None);
        };
        let p = db::digests::progress(c, id)?;
        let bounces = crate::bounces::digest_bounces(c, id, p.sent)?;
        Ok(Some(WithBounces {
            digest: view(&d, &p),
            bounces,
        }))
    })
    .await?;
    found
        .map(|v| HttpResponse::Ok().json(v))
        .ok_or_else(|| ApiError::NotFound("no such digest".into()))
}

/// POST /api/digests/{id}/pause|resume|cancel: 200 with the digest, 404
/// unknown, 409 when its status does not allow it.
pub async fn control(
    _auth: ApiToken,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    use crate::digest::control::{self, Action, ControlError};
    let (id, action) = path.into_inner();
    let not_found = || ApiError::NotFound("no such digest".into());
    let action =
        Action::parse(&action).ok_or_else(|| ApiError::NotFound("no such API route".into()))?;
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let digest = control::apply(&state, id, action)
        .await
        .map_err(|e| match e {
            ControlError::NotFound => not_found(),
            ControlError::WrongStatus(_) => ApiError::Conflict(e.to_string()),
            ControlError::Db(e) => e.into(),
        })?;
    let progress = db::run(&state.pool, move |c| db::digests::progress(c, id)).await?;
    Ok(HttpResponse::Ok().json(view(&digest, &progress)))
}
