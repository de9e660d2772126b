//! GET /subscriptions/confirm shows one button; only the POST confirms, so
//! link scanners that prefetch GETs confirm nobody.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{field, parse_form};
use crate::db::{self, consent};
use crate::routes::{client_ip, page, user_agent, wants_json, PageError};
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

pub async fn show(
    query: web::Query<TokenQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    show_for(&state.into_inner(), query.token.as_deref()).await
}

fn not_found(state: &SharedState) -> Result<HttpResponse, PageError> {
    page(
        state,
        StatusCode::NOT_FOUND,
        "pages/not_found.html",
        minijinja::context! {
            title => "Link not recognised",
            message => "This confirmation link is not valid. It may have been mistyped, or already replaced by a newer one.",
            offer_signup => true,
        },
    )
}

pub async fn confirm(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let state = state.into_inner();
    let pairs = parse_form(&body).map_err(PageError::BadRequest)?;
    let token = field(&pairs, "token").unwrap_or_default().to_string();
    if !plausible(&token) {
        return not_found(&state);
    }
    let ctx = consent::Context {
        ip: client_ip(&req, &state.settings.trusted_proxies).map(|i| i.to_string()),
        user_agent: user_agent(&req),
        source: Some(state.link("/subscriptions/confirm")),
        method: Some("link".into()),
    };
    let outcome = db::transaction(&state.pool, move |c| {
        subscriptions::confirm(c, &token, &ctx)
    })
    .await?;
    tracing::info!(outcome = outcome.label(), "confirmation");
    let json = wants_json(req.headers());
    match outcome {
        ConfirmOutcome::Confirmed | ConfirmOutcome::AlreadyConfirmed if json => {
            Ok(HttpResponse::Ok().json(serde_json::json!({"status": "confirmed"})))
        }
        ConfirmOutcome::Confirmed | ConfirmOutcome::AlreadyConfirmed => page(
            &state,
            StatusCode::OK,
            "pages/confirm_done.html",
            minijinja::context! { already => outcome == ConfirmOutcome::AlreadyConfirmed },
        ),
        ConfirmOutcome::Expired { email } => page(
            &state,
            StatusCode::GONE,
            "pages/confirm_expired.html",
            minijinja::context! { email => email },
        ),
        ConfirmOutcome::Unknown => not_found(&state),
    }
}
