//! The admin console under `/admin`: server-rendered pages from
//! `templates/admin/`, one static script for the live progress bars. Its
//! routes are in [`crate::routes::configure`].
//!
//! Every page needs a session ([`auth::Admin`]); without one a page redirects
//! to `/admin/login` and a JSON endpoint answers 401. Every POST carries the
//! session's `csrf_token` (checked with [`auth::Admin::check_csrf`]) and, when
//! the browser sends one, an `Origin` of this site.

pub mod articles;
pub mod auth;
pub mod bounces;
mod chart;
pub mod dashboard;
pub mod digests;
pub mod drafts;
pub mod settings;
pub mod subscribers;

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::Serialize;

use super::web::AdminError;
use crate::state::SharedState;

/// The script behind the live progress bars (the CSP allows `script-src 'self'`).
const CONSOLE_JS: &str = include_str!("../../../templates/admin/console.js");

/// GET /admin/console.js
pub async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(CONSOLE_JS)
}

/// Renders a console page; every page gets the admin's name, the session's
/// CSRF token for its forms, and which section is open.
pub fn render<S: Serialize>(
    state: &SharedState,
    status: StatusCode,
    template: &str,
    admin: &auth::Admin,
    section: &str,
    ctx: S,
) -> Result<HttpResponse, AdminError> {
    let ctx = minijinja::context! {
        admin => admin.name.as_str(),
        csrf_token => admin.csrf_token.as_str(),
        section => section,
        ..minijinja::Value::from(minijinja::value::Serde(&ctx))
    };
    let body = crate::mail::templates::render(&state.templates, template, ctx)?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}
