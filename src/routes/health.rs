//! Liveness and readiness.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use super::web::{ErrorBody, Status, RETRY_AFTER_SECONDS};
use crate::state::AppState;

/// 200 while the process is up.
#[utoipa::path(get, path = "/health", operation_id = "health", tag = "probes",
    responses((status = 200, description = "up", body = Status)))]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Status::new("ok"))
}

/// 200 when the database can take a write now, 503 otherwise: a read-only
/// or full SQLite file still answers `SELECT 1`, so the probe writes
/// ([`crate::db::faults::probe_writable`]).
#[utoipa::path(get, path = "/ready", operation_id = "ready", tag = "probes",
    responses(
        (status = 200, description = "the database takes writes", body = Status),
        (status = 503, description = "it does not; Retry-After", body = ErrorBody),
    ))]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    match crate::db::run(&state.pool, crate::db::faults::probe_writable).await {
        Ok(()) => HttpResponse::Ok().json(Status::new("ready")),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            HttpResponse::ServiceUnavailable()
                .insert_header((header::RETRY_AFTER, RETRY_AFTER_SECONDS))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(ErrorBody::new("database unavailable").status("unavailable"))
        }
    }
}
