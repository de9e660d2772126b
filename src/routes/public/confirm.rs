//! GET /subscriptions/confirm shows one button; only the POST confirms, so
//! link scanners that prefetch GETs confirm nobody.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{link_not_found, page};
use crate::db::{self, consent};
use crate::domain::SubscriberStatus;
use crate::routes::web::{
    client_ip, field, form, json_body, user_agent, wants_json, ErrorBody, PageError, Status,
};
use crate::state::{AppState, SharedState};
use crate::subscriptions::{self, ConfirmOutcome};

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

/// Tokens are URL-safe base64 of a fixed size; anything else is unknown.
fn plausible(token: &str) -> bool {
    (16..=128).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub async fn show_for(state: &SharedState, token: Option<&str>) -> Result<HttpResponse, PageError> {
    let Some(token) = token.filter(|t| plausible(t)) else {
        return not_found(state);
    };
    let hash = crate::domain::token::hash(token);
    let known = db::run(&state.pool, move |c| db::confirmations::find(c, &hash)).await?;
    if known.is_none() {
        return not_found(state);
    }
    page(
        state,
        StatusCode::OK,
        "pages/confirm.html",
        minijinja::context! { token => token },
    )
}

#[utoipa::path(get, path = "/subscriptions/confirm", operation_id = "confirm_page", tag = "public",
    params(("token" = Option<String>, Query)),
    responses(
        (status = 200, description = "a page with one Confirm button", content_type = "text/html", body = String),
        (status = 404, description = "unknown link", content_type = "text/html", body = String),
        (status = 410, description = "expired link", content_type = "text/html", body = String),
    ))]
pub async fn show(
    query: web::Query<TokenQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    show_for(&state.into_inner(), query.token.as_deref()).await
}

fn not_found(state: &SharedState) -> Result<HttpResponse, PageError> {
    let message = "This confirmation link is not valid. It may have been mistyped, or already \
                   replaced by a newer one.";
    link_not_found(state, message, true)
}

/// The JSON form of the Confirm button.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ConfirmBody {
    token: String,
}

#[utoipa::path(post, path = "/subscriptions/confirm", operation_id = "confirm", tag = "public",
    request_body(content = ConfirmBody, content_type = "application/json"),
    responses(
        (status = 200, description = "confirmed (idempotent)", body = crate::routes::web::Status),
        (status = 400, description = "no token, or not JSON", body = crate::routes::web::ErrorBody),
        (status = 404, description = "unknown token", body = crate::routes::web::ErrorBody),
        (status = 410, description = "expired: sign up again for a new link", body = crate::routes::web::ErrorBody),
        (status = 413, description = "over 16 KB"),
    ))]
pub async fn confirm(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let state = state.into_inner();
    let json = wants_json(req.headers());
    let token = match token_from(&req, &body) {
        Ok(token) => token,
        Err(reason) if json => {
            return Ok(HttpResponse::BadRequest().json(ErrorBody::new(reason).field("token")))
        }
        Err(reason) => return Err(PageError::BadRequest(reason)),
    };
    if !plausible(&token) {
        return unknown(&state, json);
    }
    let ctx = consent::Context {
        ip: client_ip(&req, &state.settings.trusted_proxies).map(|i| i.to_string()),
        user_agent: user_agent(&req),
        source: Some(state.link("/subscriptions/confirm")),
        method: Some("link".into()),
        consent_version: Some(state.consent_version.clone()),
    };
    let welcome = state.settings.welcome_email;
    let outcome = subscriptions::confirm(&state.pool, &token, ctx, welcome).await?;
    tracing::info!(outcome = outcome.label(), "confirmation");
    match outcome {
        ConfirmOutcome::Confirmed
        | ConfirmOutcome::AlreadyConfirmed
        | ConfirmOutcome::AddressChanged
            if json =>
        {
            Ok(HttpResponse::Ok().json(Status::new(SubscriberStatus::Confirmed.as_str())))
        }
        ConfirmOutcome::Confirmed | ConfirmOutcome::AlreadyConfirmed => page(
            &state,
            StatusCode::OK,
            "pages/confirm_done.html",
            minijinja::context! { already => outcome == ConfirmOutcome::AlreadyConfirmed },
        ),
        ConfirmOutcome::AddressChanged => page(
            &state,
            StatusCode::OK,
            "pages/confirm_done.html",
            minijinja::context! { already => false, address_changed => true },
        ),
        ConfirmOutcome::Expired { .. } if json => {
            let error = "this confirmation link has expired: sign up again for a new one";
            Ok(HttpResponse::Gone().json(ErrorBody::new(error).status("expired")))
        }
        ConfirmOutcome::Expired { email } => page(
            &state,
            StatusCode::GONE,
            "pages/confirm_expired.html",
            minijinja::context! { email => email },
        ),
        ConfirmOutcome::Unknown => unknown(&state, json),
    }
}

/// The token of a confirming POST: the form's `token=`, or `{"token": …}`
/// when the body is JSON.
fn token_from(req: &HttpRequest, body: &[u8]) -> Result<String, String> {
    if json_body(req.headers()) {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
        return Ok(value["token"].as_str().unwrap_or_default().to_string());
    }
    let pairs = form(body).map_err(|e| e.to_string())?;
    Ok(field(&pairs, "token").unwrap_or_default().to_string())
}

fn unknown(state: &SharedState, json: bool) -> Result<HttpResponse, PageError> {
    if json {
        return Ok(HttpResponse::NotFound().json(ErrorBody::new("unknown confirmation link")));
    }
    not_found(state)
}
