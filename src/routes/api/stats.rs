//! GET /api/stats: readers by status, emails sent, growth per day.

use actix_web::{web, HttpResponse};

use super::ApiToken;
use crate::db;
use crate::routes::web::{ApiError, ErrorBody};
use crate::state::AppState;

#[utoipa::path(get, path = "/api/stats", operation_id = "stats", tag = "ops", security(("bearer" = [])),
    responses(
        (status = 200, description = "readers by status, sends, growth per day", body = Object),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
    ))]
pub async fn show(_auth: ApiToken, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let today = db::now().date();
    let stats = db::run(&state.pool, move |c| crate::stats::gather(c, today)).await?;
    Ok(HttpResponse::Ok().json(stats))
}
