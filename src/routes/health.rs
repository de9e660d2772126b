//! Liveness and readiness.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/ready", web::get().to(ready));
}

/// 200 while the process is up.
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// 200 when the database can take a write now, 503 otherwise: a read-only
/// or full SQLite file still answers `SELECT 1`, so the probe writes
/// ([`crate::db::faults::probe_writable`]).
async fn ready(state: web::Data<AppState>) -> HttpResponse {
    match crate::db::run(&state.pool, crate::db::faults::probe_writable).await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ready"})),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            HttpResponse::ServiceUnavailable()
                .insert_header((header::RETRY_AFTER, super::RETRY_AFTER_SECONDS))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(serde_json::json!({"status": "unavailable", "error": "database unavailable"}))
        }
    }
}
