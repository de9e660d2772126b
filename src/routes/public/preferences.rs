//! GET /preferences?token=T shows the reader's own page; POST /preferences
//! (form: `token`, `action` and the action's fields) applies one change
//! and shows the page again. The token is the authority (it is signed per
//! reader and in the form, so another site cannot post without it); a
//! forged one is a 404 and an expired one a 410 before any lookup, and
//! every request counts against a per-IP limit (429 past it).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{link_not_found, page};
use crate::db::consent;
use crate::domain::preferences::{Pause, SectionChoice, PAUSE_WEEKS};
use crate::domain::{SubscriberEmail, SubscriberName};
use crate::preferences::{self as prefs, Applied, Change, PrefError};
use crate::routes::web::{client_ip, field, form, user_agent, PageError};
use crate::state::{AppState, SharedState};
use crate::subscriptions::{self, SignupPolicy, UnsubscribeOutcome};

/// A change the form asked for that cannot be made.
const INVALID: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

/// Takes one request from the client's budget.
fn allowed(req: &HttpRequest, state: &SharedState) -> Result<(), PageError> {
    match client_ip(req, &state.settings.trusted_proxies) {
        Some(ip) if state.preferences_limiter.check_key(&ip).is_err() => {
            Err(PageError::TooManyRequests)
        }
        _ => Ok(()),
    }
}

/// The page of a link that is not (or no longer) good.
fn refused(state: &SharedState, e: PrefError) -> Result<HttpResponse, PageError> {
    match e {
        PrefError::Expired => page(
            state,
            StatusCode::GONE,
            "pages/not_found.html",
            minijinja::context! {
                title => "This link has expired",
                message => e.to_string(),
                offer_signup => false,
            },
        ),
        PrefError::Db(e) => Err(e.into()),
        other => link_not_found(state, &other.to_string(), false),
    }
}

/// The page, with what just happened (`notice`) or went wrong (`error`).
async fn render(
    state: &SharedState,
    status: StatusCode,
    token: &str,
    id: &str,
    notice: Option<&str>,
    error: Option<(&str, String)>,
) -> Result<HttpResponse, PageError> {
    let Some(view) = prefs::view(&state.pool, id).await? else {
        return refused(state, PrefError::Unknown);
    };
    let (error_field, error) = error.unzip();
    page(
        state,
        status,
        "pages/preferences.html",
        minijinja::context! {
            token => token,
            reader => minijinja::Value::from(minijinja::value::Serde(&view)),
            pause_weeks => PAUSE_WEEKS,
            notice => notice,
            error => error,
            error_field => error_field,
        },
    )
}

#[utoipa::path(get, path = "/preferences", operation_id = "preferences_page", tag = "public",
    params(("token" = Option<String>, Query)),
    responses(
        (status = 200, description = "the reader's own page", content_type = "text/html", body = String),
        (status = 400, description = "a malformed query string", content_type = "text/html", body = String),
        (status = 404, description = "unknown link", content_type = "text/html", body = String),
        (status = 410, description = "expired link", content_type = "text/html", body = String),
        (status = 429, description = "too many requests from this address", content_type = "text/html", body = String),
    ))]
pub async fn show(
    req: HttpRequest,
    query: web::Query<TokenQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let state = state.into_inner();
    allowed(&req, &state)?;
    let token = query.token.clone().unwrap_or_default();
    match prefs::reader_of(&state.secret, &token, crate::db::now()) {
        Ok(id) => render(&state, StatusCode::OK, &token, &id, None, None).await,
        Err(e) => refused(&state, e),
    }
}

#[utoipa::path(post, path = "/preferences", operation_id = "preferences", tag = "public",
    params(("token" = Option<String>, Query, description = "or `token` in the form")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "token, action (settings|pause|resume|email|export|delete|unsubscribe) and its fields"),
    responses(
        (status = 200, description = "done: the page again (export: the data as a JSON file)", content_type = "text/html", body = String),
        (status = 400, description = "not a form", content_type = "text/html", body = String),
        (status = 404, description = "unknown link", content_type = "text/html", body = String),
        (status = 409, description = "not subscribed any more", content_type = "text/html", body = String),
        (status = 410, description = "expired link", content_type = "text/html", body = String),
        (status = 413, description = "over 16 KB"),
        (status = 422, description = "a bad field: nothing changed", content_type = "text/html", body = String),
        (status = 429, description = "too many requests from this address", content_type = "text/html", body = String),
    ))]
pub async fn update(
    req: HttpRequest,
    query: web::Query<TokenQuery>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let state = state.into_inner();
    allowed(&req, &state)?;
    let pairs = form(&body).map_err(|e| PageError::BadRequest(e.to_string()))?;
    let token = field(&pairs, "token")
        .map(str::to_string)
        .or_else(|| query.token.clone())
        .unwrap_or_default();
    let id = match prefs::reader_of(&state.secret, &token, crate::db::now()) {
        Ok(id) => id,
        Err(e) => return refused(&state, e),
    };
    let ctx = consent::Context {
        ip: client_ip(&req, &state.settings.trusted_proxies).map(|i| i.to_string()),
        user_agent: user_agent(&req),
        source: Some(state.link("/preferences")),
        method: Some("preferences".into()),
        consent_version: Some(state.consent_version.clone()),
    };
    let action = field(&pairs, "action").unwrap_or_default();
    match action {
        "export" => export(&state, &id).await,
        "delete" => delete(&state, &token, &id, &pairs, ctx).await,
        "unsubscribe" => unsubscribe(&state, &id, ctx).await,
        _ => change(&state, &token, &id, action, &pairs, ctx).await,
    }
}

/// A change of settings, pause or address: parsed whole, then applied in
/// one transaction (nothing changes when a field is bad).
async fn change(
    state: &SharedState,
    token: &str,
    id: &str,
    action: &str,
    pairs: &[(String, String)],
    ctx: consent::Context,
) -> Result<HttpResponse, PageError> {
    let parsed = match parse(action, pairs) {
        Ok(change) => change,
        Err((field, reason)) => {
            let error = Some((field.as_str(), reason));
            return render(state, INVALID, token, id, None, error).await;
        }
    };
    let policy = SignupPolicy::new(&state.settings, &state.secret);
    let notice = match prefs::apply(&state.pool, policy, id, parsed, ctx).await {
        Ok(Applied::Saved) => "Saved. Your next digest follows these settings.".to_string(),
        Ok(Applied::Paused) => "Paused. Your digest comes back by itself on the date below.".into(),
        Ok(Applied::Resumed) => "Welcome back: your digest is on again.".into(),
        Ok(Applied::AddressPending) => "We sent a link to the new address. Until it is confirmed, \
            our newsletter keeps going to your current one."
            .into(),
        Err(PrefError::Invalid { field, reason }) => {
            let error = Some((field, format!("{field} {reason}")));
            return render(state, INVALID, token, id, None, error).await;
        }
        Err(PrefError::NotSubscribed) => {
            let error = Some(("status", PrefError::NotSubscribed.to_string()));
            return render(state, StatusCode::CONFLICT, token, id, None, error).await;
        }
        Err(e) => return refused(state, e),
    };
    tracing::info!(action, "preferences changed");
    render(state, StatusCode::OK, token, id, Some(&notice), None).await
}

/// The form's fields as one change; `(field, reason)` when one is bad.
fn parse(action: &str, pairs: &[(String, String)]) -> Result<Change, (String, String)> {
    let bad = |field: &str, reason: String| (field.to_string(), format!("{field} {reason}"));
    match action {
        "settings" => {
            let weekly = match field(pairs, "frequency").unwrap_or("every") {
                "every" => false,
                "weekly" => true,
                _ => return Err(bad("frequency", "must be every or weekly".into())),
            };
            let names = pairs
                .iter()
                .filter(|(k, _)| k == "section")
                .map(|(_, v)| v.as_str());
            let sections = SectionChoice::parse(names).map_err(|r| bad("sections", r))?;
            let name = SubscriberName::parse(field(pairs, "name").unwrap_or_default())
                .map_err(|r| bad("name", r))?;
            Ok(Change::Settings {
                weekly,
                sections,
                name,
            })
        }
        "pause" => Pause::parse(field(pairs, "weeks").unwrap_or_default())
            .map(Change::Pause)
            .map_err(|r| bad("weeks", r)),
        "resume" => Ok(Change::Resume),
        "email" => SubscriberEmail::parse(field(pairs, "email").unwrap_or_default())
            .map(Change::Address)
            .map_err(|r| bad("email", r.to_string())),
        _ => Err(bad("action", "is not one this page knows".into())),
    }
}

/// The reader's data, as the GDPR export gives it, as a file.
async fn export(state: &SharedState, id: &str) -> Result<HttpResponse, PageError> {
    let Some(data) = crate::privacy::export(&state.pool, id).await? else {
        return refused(state, PrefError::Unknown);
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"newsletter-data.json\"",
        ))
        .json(data))
}

/// Erasure, as DELETE /api/subscribers/{id} does it; the form's `confirm`
/// box must be ticked.
async fn delete(
    state: &SharedState,
    token: &str,
    id: &str,
    pairs: &[(String, String)],
    ctx: consent::Context,
) -> Result<HttpResponse, PageError> {
    if field(pairs, "confirm") != Some("yes") {
        let error = Some((
            "confirm",
            "Tick the box to confirm that everything goes.".to_string(),
        ));
        return render(
            state,
            StatusCode::UNPROCESSABLE_ENTITY,
            token,
            id,
            None,
            error,
        )
        .await;
    }
    let ctx = consent::Context {
        method: Some("preferences".into()),
        ..ctx
    };
    if !crate::privacy::erase(&state.pool, &state.secret, id, ctx).await? {
        return refused(state, PrefError::Unknown);
    }
    tracing::info!("reader erased themselves");
    page(
        state,
        StatusCode::OK,
        "pages/preferences_deleted.html",
        minijinja::context! {},
    )
}

async fn unsubscribe(
    state: &SharedState,
    id: &str,
    ctx: consent::Context,
) -> Result<HttpResponse, PageError> {
    if subscriptions::unsubscribe(&state.pool, id, ctx).await? == UnsubscribeOutcome::Unknown {
        return refused(state, PrefError::Unknown);
    }
    page(
        state,
        StatusCode::OK,
        "pages/unsubscribe_done.html",
        minijinja::context! {},
    )
}
