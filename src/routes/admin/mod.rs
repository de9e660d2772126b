//! The admin console under `/admin`: server-rendered pages from
//! `templates/admin/`, one static script for the live progress bars.
//!
//! Every page needs a session ([`auth::Admin`]); without one a page redirects
//! to `/admin/login` and a JSON endpoint answers 401. Every POST carries the
//! session's `csrf_token` (checked with [`auth::Admin::check_csrf`]) and, when
//! the browser sends one, an `Origin` of this site.

pub mod auth;
mod chart;
mod dashboard;
mod digests;
mod settings;
mod subscribers;

mod articles;

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};
use serde::Serialize;

use crate::db::DbError;
use crate::state::SharedState;

/// The script behind the live progress bars (the CSP allows `script-src 'self'`).
const CONSOLE_JS: &str = include_str!("../../../templates/admin/console.js");

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            .route("", web::get().to(dashboard::show))
            .route("/", web::get().to(dashboard::show))
            .route("/console.js", web::get().to(script))
            .configure(auth::configure)
            .configure(subscribers::configure)
            .configure(articles::configure)
            .configure(digests::configure)
            .configure(settings::configure)
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(AdminError::NotFound)
            })),
    );
}

async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(CONSOLE_JS)
}

/// What can go wrong on a console page, mapped to a status in one place.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No live session: pages go to the login form.
    #[error("Please log in.")]
    LoginRequired,
    /// No live session on a JSON endpoint.
    #[error("not logged in")]
    Unauthorized,
    #[error(
        "This form has expired or did not come from this console. Reload the page and try again."
    )]
    Forbidden,
    #[error("There is nothing here.")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("The service is busy or its database is unavailable. Please try again in a minute.")]
    Unavailable,
    #[error("Something went wrong on our side. The error is in the log.")]
    Unexpected(#[source] anyhow::Error),
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::LoginRequired => StatusCode::SEE_OTHER,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::LoginRequired => {
                return HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, "/admin/login"))
                    .insert_header((header::CACHE_CONTROL, "no-store"))
                    .finish()
            }
            Self::Unauthorized => {
                return HttpResponse::Unauthorized()
                    .insert_header((header::CACHE_CONTROL, "no-store"))
                    .json(serde_json::json!({"error": self.to_string()}))
            }
            Self::Unexpected(e) => {
                tracing::error!(error = %format!("{e:#}"), "console page failed")
            }
            _ => {}
        }
        let message = super::html_escape(&self.to_string());
        let mut res = HttpResponse::build(self.status_code());
        if matches!(self, Self::Unavailable) {
            res.insert_header((header::RETRY_AFTER, super::RETRY_AFTER_SECONDS));
        }
        res.content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(format!(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
                 <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
                 <title>{status}</title></head><body><main><h1>{status}</h1><p>{message}</p>\
                 <p><a href=\"/admin\">Back to the console</a></p></main></body></html>",
                status = self.status_code()
            ))
    }
}

impl From<DbError> for AdminError {
    fn from(e: DbError) -> Self {
        if super::database_unavailable(&e) {
            return Self::Unavailable;
        }
        Self::Unexpected(e.into())
    }
}

impl From<anyhow::Error> for AdminError {
    fn from(e: anyhow::Error) -> Self {
        Self::Unexpected(e)
    }
}

/// The API's validation errors, shown on a page.
impl From<super::ApiError> for AdminError {
    fn from(e: super::ApiError) -> Self {
        match e {
            super::ApiError::Unavailable => Self::Unavailable,
            super::ApiError::Unexpected(e) => Self::Unexpected(e),
            super::ApiError::NotFound(_) => Self::NotFound,
            other => Self::BadRequest(other.to_string()),
        }
    }
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

/// Decodes a form body; broken encoding is a 400.
pub(crate) fn form(body: &[u8]) -> Result<Vec<(String, String)>, AdminError> {
    super::public::parse_form(body).map_err(AdminError::BadRequest)
}

pub(crate) use super::public::field;

/// Parses a page's query string; a malformed one is a 400, not a 500.
pub(crate) fn query<T: serde::de::DeserializeOwned>(
    req: &actix_web::HttpRequest,
) -> Result<T, AdminError> {
    serde_urlencoded::from_str(req.query_string())
        .map_err(|e| AdminError::BadRequest(format!("invalid query: {e}")))
}

/// Empty form and query values mean "not given".
pub(crate) fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

impl From<crate::digest::ComposeError> for AdminError {
    fn from(e: crate::digest::ComposeError) -> Self {
        match e {
            crate::digest::ComposeError::Db(e) => e.into(),
            crate::digest::ComposeError::Render(e) => Self::Unexpected(e),
        }
    }
}
