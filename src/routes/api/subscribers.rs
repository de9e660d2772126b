//! GET /api/subscribers, GET /api/subscribers/{id}, and the GDPR pair:
//! GET /api/subscribers/{id}/export (access) and DELETE /api/subscribers/{id}
//! (erasure).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::ApiToken;
use crate::db::{self, consent::ConsentRecord, subscribers::Subscriber};
use crate::domain::SubscriberStatus;
use crate::routes::web::{parse_list, query, ApiError, ErrorBody, PER_PAGE};
use crate::state::AppState;

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// pending, confirmed, unsubscribed, bounced or erased
    status: Option<String>,
    /// part of the address
    q: Option<String>,
    /// from 1
    page: Option<i64>,
}

/// A page of the listing.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Page {
    items: Vec<Subscriber>,
    page: i64,
    per_page: i64,
    total: i64,
}

#[utoipa::path(get, path = "/api/subscribers", operation_id = "list_subscribers", tag = "ops", security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "a page of readers", body = Page),
        (status = 400, description = "bad query", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 422, description = "a parameter is invalid", body = ErrorBody),
    ))]
pub async fn list(
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
    Ok(HttpResponse::Ok().json(Page {
        items,
        page,
        per_page: PER_PAGE,
        total,
    }))
}

/// A reader with their consent history.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WithConsent {
    #[serde(flatten)]
    subscriber: Subscriber,
    consent: Vec<ConsentEntry>,
}

/// A consent event with the exact wording of its consent text version.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConsentEntry {
    #[serde(flatten)]
    record: ConsentRecord,
    consent_text: Option<String>,
}

/// What became of an erased reader.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Erased {
    id: String,
    #[schema(value_type = String, example = "erased")]
    status: SubscriberStatus,
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

#[utoipa::path(get, path = "/api/subscribers/{id}", operation_id = "show_subscriber", tag = "ops", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "the reader and their consent log", body = WithConsent),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 404, description = "no such subscriber", body = ErrorBody),
    ))]
pub async fn show(
    _auth: ApiToken,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = subscriber_id(path)?;
    let found = db::run(&state.pool, move |c| {
        db::views::subscriber_with_consent_texts(c, &id)
    })
    .await?;
    let (subscriber, records, texts) =
        found.ok_or_else(|| ApiError::NotFound("no such subscriber".into()))?;
    let consent = records
        .into_iter()
        .map(|record| ConsentEntry {
            consent_text: record
                .consent_text_version
                .as_ref()
                .and_then(|v| texts.get(v).cloned()),
            record,
        })
        .collect();
    Ok(HttpResponse::Ok().json(WithConsent {
        subscriber,
        consent,
    }))
}

#[utoipa::path(get, path = "/api/subscribers/{id}/export", operation_id = "export_subscriber", tag = "ops", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "everything held about the reader (GDPR access)", body = Object),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 404, description = "no such subscriber", body = ErrorBody),
    ))]
pub async fn export(
    _auth: ApiToken,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = subscriber_id(path)?;
    let found = crate::privacy::export(&state.pool, &id).await?;
    let body = found.ok_or_else(|| ApiError::NotFound("no such subscriber".into()))?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(body))
}

#[utoipa::path(delete, path = "/api/subscribers/{id}", operation_id = "erase_subscriber", tag = "ops", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "erased (GDPR erasure)", body = Erased),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 404, description = "no such subscriber", body = ErrorBody),
    ))]
pub async fn erase(
    auth: ApiToken,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = subscriber_id(path)?;
    let ctx = db::consent::Context {
        source: Some(format!("api token \"{}\"", auth.name)),
        method: Some("api".into()),
        consent_version: Some(state.consent_version.clone()),
        ..Default::default()
    };
    if !crate::privacy::erase(&state.pool, &state.secret, &id, ctx).await? {
        return Err(ApiError::NotFound("no such subscriber".into()));
    }
    tracing::info!(subscriber = %id, "subscriber erased");
    Ok(HttpResponse::Ok().json(Erased {
        id,
        status: SubscriberStatus::Erased,
    }))
}
