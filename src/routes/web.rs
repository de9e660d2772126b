//! What every handler file leans on: the request helpers (client address,
//! JSON or page, form and query parsing), the headers every response
//! carries, the JSON bodies with a fixed shape, the error type of each
//! surface ([`error`]) and the input rules the API and the console share
//! ([`input`]). Handlers import from here, never from each other.

mod error;
mod input;

use std::net::IpAddr;

use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::DefaultHeaders;
use actix_web::HttpRequest;
use serde::Serialize;

pub use error::{database_unavailable, RETRY_AFTER_SECONDS};
pub use error::{AdminError, ApiError, FieldError, FormError, PageError, QueryError};
pub use input::{
    non_empty, parse_bounce_list, parse_list, parse_time, validate_article, ArticleInput, PER_PAGE,
};

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

fn header_has_json(headers: &HeaderMap, name: header::HeaderName) -> bool {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

/// Whether the client asked for JSON (DESIGN.md: by Content-Type or Accept).
pub fn wants_json(headers: &HeaderMap) -> bool {
    header_has_json(headers, header::CONTENT_TYPE) || header_has_json(headers, header::ACCEPT)
}

/// Whether the body is JSON (by Content-Type alone).
pub fn json_body(headers: &HeaderMap) -> bool {
    header_has_json(headers, header::CONTENT_TYPE)
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

/// Decodes a form body strictly: invalid UTF-8, raw or percent-encoded, is
/// an error rather than a silently replaced character.
pub fn form(body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    std::str::from_utf8(body).map_err(|_| FormError::new("request body is not valid UTF-8"))?;
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if pairs
        .iter()
        .any(|(k, v)| k.contains('\u{FFFD}') || v.contains('\u{FFFD}'))
    {
        return Err(FormError::new("form data is not valid UTF-8"));
    }
    Ok(pairs)
}

/// The first value of a form field.
pub fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The query string, parsed in the handler. In the API it is read after
/// the token check: as an extractor beside the token, a malformed query
/// would answer 400 before the token was even checked (401).
pub fn query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, QueryError> {
    serde_urlencoded::from_str(req.query_string()).map_err(QueryError)
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

/// `{"status": …}`: what became of the request.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Status {
    pub status: &'static str,
}

impl Status {
    pub fn new(status: &'static str) -> Self {
        Self { status }
    }
}

/// `{"items": […]}`: a listing.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Items<T> {
    pub items: T,
}

/// `{"error": …}`, with the `field` at fault or the `status` it left
/// behind when there is one.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'a str>,
}

impl<'a> ErrorBody<'a> {
    pub fn new(error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            field: None,
            status: None,
        }
    }

    pub fn field(self, field: &'a str) -> Self {
        Self {
            field: Some(field),
            ..self
        }
    }

    pub fn status(self, status: &'a str) -> Self {
        Self {
            status: Some(status),
            ..self
        }
    }
}
