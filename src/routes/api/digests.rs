//! POST /api/digests (compose now), GET /api/digests, GET /api/digests/{id},
//! POST /api/digests/{id}/pause, /resume, /cancel.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDateTime;
use serde::Serialize;

use super::ApiToken;
use crate::db;
use crate::digest::editorial::{self, Edit, EditError, Sent};
use crate::digest::{ComposeOutcome, Mode};
use crate::domain::{DigestStatus, SubscriberEmail};
use crate::routes::web::{
    json_object, json_text, parse_time, query, ApiError, ErrorBody, Items, Status,
};
use crate::state::AppState;

/// `{"draft": true}` composes a draft for an editor instead of sending.
fn compose_mode(body: &[u8]) -> Result<Mode, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Mode::Send);
    }
    match json_object(body)?.get("draft") {
        None | Some(serde_json::Value::Bool(false)) => Ok(Mode::Send),
        Some(serde_json::Value::Bool(true)) => Ok(Mode::Draft),
        Some(_) => Err(ApiError::validation("draft", "must be true or false")),
    }
}

/// The optional body of POST /api/digests (its shape for the document).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ComposeBody {
    /// compose a draft for an editor instead of sending
    draft: Option<bool>,
}

#[utoipa::path(post, path = "/api/digests", operation_id = "compose_digest", tag = "ops", security(("bearer" = [])),
    request_body(content = Option<ComposeBody>, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header, description = "a repeat returns the same digest")),
    responses(
        (status = 201, description = "composed and queued", body = crate::digest::compose::Created),
        (status = 200, description = "nothing new: {\"status\":\"nothing_new\"}", body = Status),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 422, description = "bad Idempotency-Key", body = ErrorBody),
    ))]
pub async fn create(
    _auth: ApiToken,
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mode = compose_mode(&body)?;
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
    match crate::digest::compose_as(&state, key, mode).await? {
        ComposeOutcome::Created(c) => Ok(HttpResponse::Created().json(c)),
        ComposeOutcome::Existing(c) => Ok(HttpResponse::Created()
            .insert_header(("Idempotent-Replayed", "true"))
            .json(c)),
        ComposeOutcome::NothingNew => Ok(HttpResponse::Ok().json(Status::new("nothing_new"))),
    }
}

/// A digest with its live counts (`reason` is null unless it is paused).
#[derive(Serialize, utoipa::ToSchema)]
pub struct DigestView {
    id: i64,
    #[schema(value_type = String, example = "sending")]
    status: DigestStatus,
    subject: String,
    articles: i32,
    reason: Option<String>,
    intro: Option<String>,
    #[serde(serialize_with = "crate::domain::time::utc_opt")]
    scheduled_at: Option<NaiveDateTime>,
    #[serde(serialize_with = "crate::domain::time::utc")]
    created_at: NaiveDateTime,
    #[serde(serialize_with = "crate::domain::time::utc_opt")]
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
        intro: d.intro.clone(),
        scheduled_at: d.scheduled_at,
        created_at: d.created_at,
        finished_at: d.finished_at,
        total: p.total,
        sent: p.sent,
        failed: p.failed,
        queued: p.queued,
        skipped: p.skipped,
    }
}

#[utoipa::path(get, path = "/api/digests", operation_id = "list_digests", tag = "ops", security(("bearer" = [])),
    responses(
        (status = 200, description = "the 50 most recent", body = Items<Vec<DigestView>>),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
    ))]
pub async fn list(_auth: ApiToken, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let digests = db::run(&state.pool, |c| db::views::recent_digests(c, 50)).await?;
    let items: Vec<_> = digests.iter().map(|(d, p)| view(d, p)).collect();
    Ok(HttpResponse::Ok().json(Items { items }))
}

#[utoipa::path(get, path = "/api/digests/{id}", operation_id = "show_digest", tag = "ops", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "status and progress", body = DigestView),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 404, description = "no such digest", body = ErrorBody),
    ))]
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
#[utoipa::path(post, path = "/api/digests/{id}/{action}", operation_id = "control_digest", tag = "ops", security(("bearer" = [])),
    params(("id" = String, Path), ("action" = String, Path, description = "pause, resume or cancel")),
    responses(
        (status = 200, description = "the digest after the action", body = DigestView),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 404, description = "no such digest or action", body = ErrorBody),
        (status = 409, description = "its status does not allow it", body = ErrorBody),
    ))]
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

fn digest_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound("no such digest".into()))
}

impl From<EditError> for ApiError {
    fn from(e: EditError) -> Self {
        match e {
            EditError::NotFound => Self::NotFound("no such digest".into()),
            EditError::NotDraft(_) => Self::Conflict(e.to_string()),
            EditError::Invalid { field, reason } => Self::validation(field, reason),
            EditError::Refused(_) => Self::validation("to", e.to_string()),
            EditError::Render(_) | EditError::Mail(_) => Self::Unexpected(anyhow::anyhow!("{e}")),
            EditError::Db(e) => e.into(),
        }
    }
}

#[derive(serde::Deserialize)]
pub struct PreviewQuery {
    format: Option<String>,
}

/// GET /api/digests/{id}/preview: the HTML a reader gets (`?format=text`:
/// the text part), a stand-in for their unsubscribe link. The HTML part's
/// size is in `Tidings-Html-Bytes`; near Gmail's clipping, a `Warning`.
#[utoipa::path(get, path = "/api/digests/{id}/preview", operation_id = "preview_digest", tag = "ops",
    security(("bearer" = [])),
    params(("id" = String, Path), ("format" = Option<String>, Query, description = "html (default) or text")),
    responses(
        (status = 200, description = "the digest as a reader sees it", content(
            (String = "text/html"), (String = "text/plain"))),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 404, description = "no such digest", body = ErrorBody),
        (status = 422, description = "bad format", body = ErrorBody),
    ))]
pub async fn preview(
    _auth: ApiToken,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = digest_id(&path)?;
    let q: PreviewQuery = query(&req)?;
    let text = match q.format.as_deref() {
        None | Some("html") => false,
        Some("text") => true,
        Some(_) => return Err(ApiError::validation("format", "must be html or text")),
    };
    let digest = db::run(&state.pool, move |c| db::digests::find(c, id))
        .await?
        .ok_or_else(|| ApiError::NotFound("no such digest".into()))?;
    let (body, bytes) = editorial::preview(&state, &digest, text);
    let mut response = HttpResponse::Ok();
    response
        .content_type(if text {
            "text/plain; charset=utf-8"
        } else {
            "text/html; charset=utf-8"
        })
        .insert_header(("Tidings-Html-Bytes", bytes.to_string()));
    if bytes > editorial::SIZE_WARNING_BYTES {
        response.insert_header((
            "Warning",
            format!("299 tidings \"HTML part is {bytes} bytes; Gmail clips past about 102 KB\""),
        ));
    }
    Ok(response.body(body))
}

/// PATCH /api/digests/{id}: a draft's `subject`, `intro` and `articles`
/// (ids, in the order wanted; the ones left out go back to the pool).
#[utoipa::path(patch, path = "/api/digests/{id}", operation_id = "edit_digest", tag = "ops",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body(content = Object, description = "a draft's subject, intro and articles (ids, in order)"),
    responses(
        (status = 200, description = "the draft after the edit", body = DigestView),
        (status = 400, description = "not JSON", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 404, description = "no such digest", body = ErrorBody),
        (status = 409, description = "not a draft", body = ErrorBody),
        (status = 422, description = "a field is invalid", body = ErrorBody),
    ))]
pub async fn patch(
    _auth: ApiToken,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = digest_id(&path)?;
    let obj = json_object(&body)?;
    let subject = json_text(&obj, "subject")?;
    if subject
        .as_ref()
        .is_some_and(|s| s.chars().count() > 200 || s.chars().any(char::is_control))
    {
        return Err(ApiError::validation(
            "subject",
            "must be at most 200 characters, one line",
        ));
    }
    let intro = json_text(&obj, "intro")?;
    let stray = |c: char| c.is_control() && c != '\n';
    if intro
        .as_ref()
        .is_some_and(|s| s.chars().count() > 2000 || s.contains(stray))
    {
        return Err(ApiError::validation(
            "intro",
            "must be at most 2000 characters, no control characters",
        ));
    }
    let articles = match obj.get("articles") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Array(items)) if items.len() <= 1000 => Some(
            items
                .iter()
                .map(|v| {
                    v.as_i64().ok_or_else(|| {
                        ApiError::validation("articles", "must be an array of article ids")
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => {
            return Err(ApiError::validation(
                "articles",
                "must be an array of article ids",
            ))
        }
    };
    let state = state.into_inner();
    let digest = editorial::edit(
        &state,
        id,
        Edit {
            subject,
            intro,
            articles,
        },
    )
    .await?;
    let progress = db::run(&state.pool, move |c| db::digests::progress(c, id)).await?;
    Ok(HttpResponse::Ok().json(view(&digest, &progress)))
}

/// POST /api/digests/{id}/test `{to: [addresses]}`: "[Test]" copies to
/// those addresses only.
#[utoipa::path(post, path = "/api/digests/{id}/test", operation_id = "test_digest", tag = "ops",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body(content = Object, description = "{\"to\": [addresses]}"),
    responses(
        (status = 200, description = "sent to those addresses only, marked as a test", body = Object),
        (status = 400, description = "not JSON", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 404, description = "no such digest", body = ErrorBody),
        (status = 422, description = "bad addresses", body = ErrorBody),
    ))]
pub async fn test(
    _auth: ApiToken,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = digest_id(&path)?;
    let obj = json_object(&body)?;
    let wrong = || ApiError::validation("to", "must be an array of email addresses");
    let Some(serde_json::Value::Array(items)) = obj.get("to") else {
        return Err(wrong());
    };
    if items.is_empty() || items.len() > editorial::MAX_TEST_RECIPIENTS {
        return Err(ApiError::validation(
            "to",
            format!(
                "must list 1 to {} addresses",
                editorial::MAX_TEST_RECIPIENTS
            ),
        ));
    }
    let to = items
        .iter()
        .map(|v| {
            let raw = v.as_str().ok_or_else(wrong)?;
            SubscriberEmail::parse(raw).map_err(|reason| ApiError::validation("to", reason))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let state = state.into_inner();
    let sent = editorial::test_send(&state, id, &to).await?;
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({"status": "sent", "test": true, "recipients": sent})))
}

/// POST /api/digests/{id}/send: a draft (or scheduled digest) goes to every
/// confirmed reader now, or `{at: RFC3339}` later.
#[utoipa::path(post, path = "/api/digests/{id}/send", operation_id = "send_digest", tag = "ops",
    security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body(content = Option<Object>, description = "optional {\"at\": RFC 3339}"),
    responses(
        (status = 200, description = "sending now", body = DigestView),
        (status = 202, description = "scheduled", body = DigestView),
        (status = 400, description = "not JSON", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 404, description = "no such digest", body = ErrorBody),
        (status = 409, description = "not a draft", body = ErrorBody),
        (status = 422, description = "bad time", body = ErrorBody),
    ))]
pub async fn send(
    _auth: ApiToken,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = digest_id(&path)?;
    let at = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match json_text(&json_object(&body)?, "at")? {
            Some(raw) => Some(parse_time("at", &raw)?),
            None => None,
        }
    };
    let state = state.into_inner();
    let outcome = editorial::send(&state, id, at).await?;
    let progress = db::run(&state.pool, move |c| db::digests::progress(c, id)).await?;
    let digest = db::run(&state.pool, move |c| db::digests::find(c, id))
        .await?
        .ok_or_else(|| ApiError::NotFound("no such digest".into()))?;
    let body = view(&digest, &progress);
    Ok(match outcome {
        Sent::Now { .. } => HttpResponse::Ok().json(body),
        Sent::At(_) => HttpResponse::Accepted().json(body),
    })
}
