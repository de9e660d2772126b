//! HTTP handlers. `public/` serves readers (pages by default, JSON when asked),
//! `api/` serves ops (Bearer tokens, JSON only), `admin/` is the console
//! (session cookie, server-rendered pages). Errors are mapped to status
//! codes in one place each: [`ApiError`] for JSON, [`PageError`] for pages.

pub mod admin;
pub mod api;
pub mod body_deadline;
pub mod health;
pub mod public;

use std::net::IpAddr;

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;

use crate::db::DbError;
use crate::state::SharedState;

pub fn configure(cfg: &mut web::ServiceConfig, state: &SharedState) {
    health::configure(cfg);
    public::configure(cfg, state);
    api::configure(cfg);
    admin::configure(cfg);
}

/// Headers on every response. Pages carry no inline script; the strict CSP
/// is the second line of defence behind template escaping.
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "same-origin"))
        .add((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
             script-src 'self'; connect-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ))
        .add(("Permissions-Policy", "interest-cohort=()"))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
}

/// Whether the client asked for JSON (DESIGN.md: by Content-Type or Accept).
pub fn wants_json(headers: &HeaderMap) -> bool {
    let has = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/json"))
    };
    has(header::CONTENT_TYPE) || has(header::ACCEPT)
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the
/// last X-Forwarded-For hop that is not itself a trusted proxy.
pub fn client_ip(req: &HttpRequest, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip())?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !trusted.contains(ip))
            .unwrap_or(peer),
    )
}

pub fn user_agent(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(512).collect())
}

/// Seconds a client is asked to wait (`Retry-After`) before trying again
/// after a 503: the database is away, read-only or full.
pub const RETRY_AFTER_SECONDS: u32 = 5;

/// Whether a database failure is the database's (503, logged at most once a
/// second, see [`crate::telemetry::database_unavailable`]) and not the
/// query's (500). Every surface's `From<DbError>` asks here.
pub(crate) fn database_unavailable(e: &DbError) -> bool {
    if e.is_unavailable() {
        crate::telemetry::database_unavailable(e);
        return true;
    }
    false
}

/// Errors of JSON endpoints: `{"error": …, "field"?: …}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{field} {reason}")]
    Validation { field: String, reason: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid API token")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("too many requests, slow down")]
    TooManyRequests,
    #[error("database unavailable, try again shortly")]
    Unavailable,
    #[error("internal error")]
    Unexpected(#[source] anyhow::Error),
}

impl ApiError {
    pub fn validation(field: &str, reason: impl Into<String>) -> Self {
        Self::Validation {
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Unexpected(e) = self {
            tracing::error!(error = %format!("{e:#}"), "request failed");
        }
        let field = match self {
            Self::Validation { field, .. } => Some(field.as_str()),
            _ => None,
        };
        let mut res = HttpResponse::build(self.status_code());
        match self {
            Self::Unauthorized => {
                res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            Self::Unavailable => {
                res.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECONDS));
            }
            _ => {}
        }
        res.json(ErrorBody {
            error: self.to_string(),
            field,
        })
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        if database_unavailable(&e) {
            return Self::Unavailable;
        }
        Self::Unexpected(e.into())
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        Self::Unexpected(e)
    }
}

/// Errors of HTML pages that have no page of their own: a short page with
/// the status. Pages with a specific answer (404 token, 410 expired) render
/// their own templates instead.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("The service is busy or its database is unavailable. Please try again in a minute.")]
    Unavailable,
    #[error("Too many requests from your address. Please wait a minute and try again.")]
    TooManyRequests,
    #[error("{0}")]
    BadRequest(String),
    #[error("Something went wrong on our side. Please try again later.")]
    Unexpected(#[source] anyhow::Error),
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Unexpected(e) = self {
            tracing::error!(error = %format!("{e:#}"), "page failed");
        }
        let message = html_escape(&self.to_string());
        let mut res = HttpResponse::build(self.status_code());
        if matches!(self, Self::Unavailable) {
            res.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECONDS));
        }
        res.content_type("text/html; charset=utf-8").body(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
                 <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
                 <title>{status}</title></head><body><main><h1>{status}</h1><p>{message}</p>\
                 </main></body></html>",
            status = self.status_code()
        ))
    }
}

impl From<DbError> for PageError {
    fn from(e: DbError) -> Self {
        if database_unavailable(&e) {
            return Self::Unavailable;
        }
        Self::Unexpected(e.into())
    }
}

impl From<anyhow::Error> for PageError {
    fn from(e: anyhow::Error) -> Self {
        Self::Unexpected(e)
    }
}

/// Parses a JSON object body; broken JSON or another shape is a 400.
pub fn json_object(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON: {e}")))?;
    match value {
        serde_json::Value::Object(map) => Ok(map),
        _ => Err(ApiError::BadRequest("expected a JSON object".into())),
    }
}

/// An optional string field of a JSON object; another type is a 422 naming it.
pub fn json_text(
    obj: &serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<Option<String>, ApiError> {
    match obj.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::validation(name, "must be a string")),
    }
}

/// Escapes text for HTML outside templates (templates escape on their own).
pub fn html_escape(s: &str) -> String {
    minijinja::HtmlEscape(s).to_string()
}

/// Renders a page template with a status.
pub fn page<S: Serialize>(
    state: &SharedState,
    status: StatusCode,
    template: &str,
    ctx: S,
) -> Result<HttpResponse, PageError> {
    let body = crate::mail::templates::render(&state.templates, template, ctx)?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}

impl From<crate::digest::ComposeError> for ApiError {
    fn from(e: crate::digest::ComposeError) -> Self {
        match e {
            crate::digest::ComposeError::Db(e) => e.into(),
            crate::digest::ComposeError::Render(e) => Self::Unexpected(e),
        }
    }
}
