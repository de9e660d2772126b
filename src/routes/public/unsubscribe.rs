//! GET /unsubscribe shows one button; POST unsubscribes at once. The POST is
//! also RFC 8058's one-click target: no cookie, no CSRF token, answers 200.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{link_not_found, page};
use crate::db::{self, consent};
use crate::domain::token::verify_unsubscribe_token;
use crate::domain::SubscriberStatus;
use crate::routes::web::{client_ip, form, user_agent, wants_json, ErrorBody, PageError, Status};
use crate::state::{AppState, SharedState};
use crate::subscriptions::{self, UnsubscribeOutcome};

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

fn not_found(state: &SharedState) -> Result<HttpResponse, PageError> {
    let message = "This unsubscribe link is not valid. Please use the link from one of our emails.";
    link_not_found(state, message, false)
}

#[utoipa::path(get, path = "/unsubscribe", operation_id = "unsubscribe_page", tag = "public",
    params(("token" = Option<String>, Query)),
    responses(
        (status = 200, description = "a page with one Unsubscribe button", content_type = "text/html", body = String),
        (status = 404, description = "unknown link", content_type = "text/html", body = String),
    ))]
pub async fn show(
    query: web::Query<TokenQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let state = state.into_inner();
    let token = query.token.clone().unwrap_or_default();
    let Some(id) = verify_unsubscribe_token(&state.secret, &token) else {
        return not_found(&state);
    };
    let found = db::run(&state.pool, move |c| db::subscribers::find(c, &id)).await?;
    match found {
        Some(s) if s.status != SubscriberStatus::Erased => page(
            &state,
            StatusCode::OK,
            "pages/unsubscribe.html",
            minijinja::context! { token => token, already => s.status == SubscriberStatus::Unsubscribed },
        ),
        _ => not_found(&state),
    }
}

#[utoipa::path(post, path = "/unsubscribe", operation_id = "unsubscribe", tag = "public",
    params(
        ("token" = Option<String>, Query),
        ("Accept" = Option<String>, Header, description = "application/json for a JSON answer"),
    ),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "RFC 8058 one-click: List-Unsubscribe=One-Click"),
    responses(
        (status = 200, description = "unsubscribed at once", content(
            (crate::routes::web::Status = "application/json"), (String = "text/html"))),
        (status = 404, description = "unknown link", content(
            (crate::routes::web::ErrorBody = "application/json"), (String = "text/html"))),
        (status = 413, description = "over 16 KB"),
    ))]
pub async fn unsubscribe(
    req: HttpRequest,
    query: web::Query<TokenQuery>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let state = state.into_inner();
    let json = wants_json(req.headers());
    let unknown = |state: &SharedState| {
        if json {
            return Ok(HttpResponse::NotFound().json(ErrorBody::new("unknown unsubscribe link")));
        }
        not_found(state)
    };
    let token = query.token.clone().unwrap_or_default();
    let Some(id) = verify_unsubscribe_token(&state.secret, &token) else {
        return unknown(&state);
    };
    // RFC 8058: mail clients POST `List-Unsubscribe=One-Click`; our page's
    // button posts without it.
    let one_click = form(&body)
        .map(|pairs| {
            pairs
                .iter()
                .any(|(k, v)| k == "List-Unsubscribe" && v == "One-Click")
        })
        .unwrap_or(false);
    let ctx = consent::Context {
        ip: client_ip(&req, &state.settings.trusted_proxies).map(|i| i.to_string()),
        user_agent: user_agent(&req),
        source: Some(state.link("/unsubscribe")),
        method: Some(if one_click { "one-click" } else { "page" }.into()),
        consent_version: Some(state.consent_version.clone()),
    };
    let outcome = subscriptions::unsubscribe(&state.pool, &id, ctx).await?;
    tracing::info!(outcome = ?outcome, one_click, "unsubscribe");
    if outcome == UnsubscribeOutcome::Unknown {
        return unknown(&state);
    }
    if json {
        return Ok(HttpResponse::Ok().json(Status::new(SubscriberStatus::Unsubscribed.as_str())));
    }
    page(
        &state,
        StatusCode::OK,
        "pages/unsubscribe_done.html",
        minijinja::context! {},
    )
}
