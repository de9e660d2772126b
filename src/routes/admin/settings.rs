//! GET /admin/settings: the running settings, secrets masked.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::auth::Admin;
use super::{render, AdminError};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/settings", web::get().to(show));
}

async fn show(admin: Admin, state: web::Data<AppState>) -> Result<HttpResponse, AdminError> {
    let state = state.into_inner();
    let settings = state.settings.masked();
    render(
        &state,
        StatusCode::OK,
        "admin/settings.html",
        &admin,
        "settings",
        serde_json::json!({ "settings": settings }),
    )
}
