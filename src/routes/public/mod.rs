//! Reader-facing pages and endpoints: signup, confirmation, unsubscribe.

mod confirm;
mod signup;
mod unsubscribe;

use actix_web::web;

use crate::state::SharedState;

pub fn configure(cfg: &mut web::ServiceConfig, state: &SharedState) {
    cfg.route("/", web::get().to(signup::form));
    let origins = &state.settings.cors_origins;
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["POST"])
        .allowed_headers(["content-type", "accept"])
        .max_age(86_400);
    for origin in origins {
        cors = cors.allowed_origin(origin.trim_end_matches('/'));
    }
    cfg.service(
        web::resource("/subscriptions")
            .wrap(cors)
            .route(web::post().to(signup::subscribe)),
    );
    cfg.service(
        web::resource("/subscriptions/confirm")
            .route(web::get().to(confirm::show))
            .route(web::post().to(confirm::confirm)),
    );
    cfg.service(
        web::resource("/unsubscribe")
            .route(web::get().to(unsubscribe::show))
            .route(web::post().to(unsubscribe::unsubscribe)),
    );
}

/// Decodes a form body strictly: invalid UTF-8, raw or percent-encoded, is
/// an error rather than a silently replaced character.
pub(crate) fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    std::str::from_utf8(body).map_err(|_| "request body is not valid UTF-8".to_string())?;
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if pairs
        .iter()
        .any(|(k, v)| k.contains('\u{FFFD}') || v.contains('\u{FFFD}'))
    {
        return Err("form data is not valid UTF-8".into());
    }
    Ok(pairs)
}

pub(crate) fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}
