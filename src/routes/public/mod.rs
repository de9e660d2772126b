//! Reader-facing pages and endpoints: signup, confirmation, unsubscribe,
//! feedback on articles.
//! Their routes are in [`crate::routes::configure`].

pub mod archive;
pub mod confirm;
pub mod feedback;
pub mod preferences;
pub mod signup;
pub mod unsubscribe;

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use serde::Serialize;

use super::web::PageError;
use crate::state::SharedState;

/// POST /subscriptions may come from the sites in `cors_origins` (a signup
/// form embedded elsewhere).
pub fn signup_cors(origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["POST"])
        .allowed_headers(["content-type", "accept"])
        .max_age(86_400);
    for origin in origins {
        cors = cors.allowed_origin(origin.trim_end_matches('/'));
    }
    cors
}

/// GET and POST /feedback may come from the sites in `cors_origins` (the
/// widget's script, with the browser's cookie, reads the counts).
pub fn feedback_cors(origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST"])
        .allowed_headers(["content-type", "accept"])
        .supports_credentials()
        .max_age(86_400);
    for origin in origins {
        cors = cors.allowed_origin(origin.trim_end_matches('/'));
    }
    cors
}

/// Renders a page template with a status.
fn page<S: Serialize>(
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

/// The 404 page of a link we do not know.
fn link_not_found(
    state: &SharedState,
    message: &str,
    offer_signup: bool,
) -> Result<HttpResponse, PageError> {
    page(
        state,
        StatusCode::NOT_FOUND,
        "pages/not_found.html",
        minijinja::context! {
            title => "Link not recognised",
            message => message,
            offer_signup => offer_signup,
        },
    )
}
