//! GET / (the signup form) and POST /subscriptions (form or JSON).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::page;
use crate::db::consent;
use crate::domain::consent as consent_event;
use crate::domain::{SubscriberEmail, SubscriberName, SubscriberStatus};
use crate::routes::web::{
    client_ip, field, form as parse_form, json_body, json_object, json_text, user_agent,
    wants_json, ApiError, PageError, Status,
};
use crate::state::{AppState, SharedState};
use crate::subscriptions::batch::Signup;

/// The hidden field bots fill in and people never see.
pub const HONEYPOT: &str = "website";

#[derive(Serialize, Default)]
struct FormContext<'a> {
    consent_text: &'a str,
    consent_version: &'a str,
    honeypot: &'a str,
    email: &'a str,
    name: &'a str,
    error: Option<String>,
    error_field: Option<&'a str>,
}

#[utoipa::path(get, path = "/", operation_id = "signup_page", tag = "public",
    responses((status = 200, description = "the signup page", content_type = "text/html", body = String)))]
pub async fn form(state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let state = state.into_inner();
    page(
        &state,
        StatusCode::OK,
        "pages/signup.html",
        base_context(&state),
    )
}

fn base_context(state: &AppState) -> FormContext<'_> {
    FormContext {
        consent_text: &state.settings.consent_text,
        consent_version: &state.consent_version,
        honeypot: HONEYPOT,
        ..Default::default()
    }
}

/// What the request carried, before parsing.
struct Input {
    email: String,
    name: String,
    honeypot: bool,
}

fn read_json(body: &[u8]) -> Result<Input, ApiError> {
    let obj = json_object(body)?;
    let text = |name: &str| json_text(&obj, name).map(Option::unwrap_or_default);
    Ok(Input {
        email: text("email")?,
        name: text("name")?,
        honeypot: !text(HONEYPOT)?.trim().is_empty(),
    })
}

fn read_form(body: &[u8]) -> Result<Input, ApiError> {
    let pairs = parse_form(body)?;
    Ok(Input {
        email: field(&pairs, "email").unwrap_or_default().to_string(),
        name: field(&pairs, "name").unwrap_or_default().to_string(),
        honeypot: field(&pairs, HONEYPOT).is_some_and(|v| !v.trim().is_empty()),
    })
}

/// A JSON signup (the form posts `email`, `name` and the honeypot).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SignupBody {
    email: String,
    name: Option<String>,
}

#[utoipa::path(post, path = "/subscriptions", operation_id = "subscribe", tag = "public",
    request_body(content = SignupBody, content_type = "application/json"),
    responses(
        (status = 202, description = "the same for a new, pending or confirmed address", body = crate::routes::web::Status),
        (status = 400, description = "not JSON, or not UTF-8", body = crate::routes::web::ErrorBody),
        (status = 413, description = "over 16 KB"),
        (status = 422, description = "a field is invalid", body = crate::routes::web::ErrorBody),
        (status = 429, description = "past the per-address rate limit", body = crate::routes::web::ErrorBody),
    ))]
pub async fn subscribe(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let state = state.into_inner();
    let json = wants_json(req.headers());
    let is_json_body = json_body(req.headers());
    let ip = client_ip(&req, &state.settings.trusted_proxies);
    if let (Some(limiter), Some(ip)) = (&state.signup_limiter, ip) {
        if limiter.check_key(&ip).is_err() {
            return if json {
                actix_web::ResponseError::error_response(&ApiError::TooManyRequests)
            } else {
                actix_web::ResponseError::error_response(&PageError::TooManyRequests)
            };
        }
    }
    let input = if is_json_body {
        read_json(&body)
    } else {
        read_form(&body)
    };
    let input = match input {
        Ok(i) => i,
        Err(e) if json => return actix_web::ResponseError::error_response(&e),
        Err(e) => {
            return actix_web::ResponseError::error_response(&PageError::BadRequest(e.to_string()))
        }
    };
    if input.honeypot {
        tracing::info!("honeypot filled; signup ignored");
        return accepted(&state, json);
    }
    let parsed = SubscriberEmail::parse(&input.email)
        .map_err(|reason| ("email", reason))
        .and_then(|email| {
            SubscriberName::parse(&input.name)
                .map(|name| (email, name))
                .map_err(|reason| ("name", reason))
        });
    let (email, name) = match parsed {
        Ok(v) => v,
        Err((field_name, reason)) => {
            return invalid(&state, json, field_name, &reason, &input);
        }
    };
    let referer = req
        .headers()
        .get(actix_web::http::header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(consent_event::source_from_referer);
    let method = if is_json_body { "api" } else { "form" };
    let ctx = consent::Context {
        ip: ip.map(|i| i.to_string()),
        user_agent: user_agent(&req),
        source: Some(referer.unwrap_or_else(|| state.link("/"))),
        method: Some(method.to_string()),
        consent_version: Some(state.consent_version.clone()),
    };
    let signup = Signup {
        email,
        name,
        ctx,
        respect_suppression: is_json_body,
    };
    match state.signups.signup(signup).await {
        Ok(outcome) => {
            tracing::info!(outcome = ?outcome, method, "signup");
            accepted(&state, json)
        }
        Err(e) if json => actix_web::ResponseError::error_response(&ApiError::from(e)),
        Err(e) => actix_web::ResponseError::error_response(&PageError::from(e)),
    }
}

fn accepted(state: &SharedState, json: bool) -> HttpResponse {
    if json {
        return HttpResponse::Accepted().json(Status::new(SubscriberStatus::Pending.as_str()));
    }
    page(
        state,
        StatusCode::OK,
        "pages/signup_done.html",
        minijinja::context! {},
    )
    .unwrap_or_else(|e| actix_web::ResponseError::error_response(&e))
}

fn invalid(
    state: &SharedState,
    json: bool,
    field_name: &str,
    reason: &str,
    input: &Input,
) -> HttpResponse {
    if json {
        return actix_web::ResponseError::error_response(&ApiError::validation(field_name, reason));
    }
    let label = if field_name == "email" {
        "Email"
    } else {
        "Name"
    };
    let ctx = FormContext {
        email: &input.email,
        name: &input.name,
        error: Some(format!("{label} {reason}.")),
        error_field: Some(field_name),
        ..base_context(state)
    };
    page(
        state,
        StatusCode::UNPROCESSABLE_ENTITY,
        "pages/signup.html",
        ctx,
    )
    .unwrap_or_else(|e| actix_web::ResponseError::error_response(&e))
}
