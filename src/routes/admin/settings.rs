//! GET /admin/settings: the running settings, secrets masked.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::auth::Admin;
use super::render;
use crate::routes::web::AdminError;
use crate::state::AppState;

/// The running settings as (name, value) rows, secrets masked.
#[derive(Serialize)]
struct SettingsPage {
    settings: Vec<(&'static str, String)>,
}

pub async fn show(admin: Admin, state: web::Data<AppState>) -> Result<HttpResponse, AdminError> {
    let state = state.into_inner();
    let settings = state.settings.masked();
    render(
        &state,
        StatusCode::OK,
        "admin/settings.html",
        &admin,
        "settings",
        SettingsPage { settings },
    )
}
