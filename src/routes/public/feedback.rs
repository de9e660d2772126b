//! GET and POST /feedback: readers' votes on articles, and GET
//! /feedback.js, the script of the site's widget.
//!
//! Two ways in, told apart by what the request carries:
//! - `url` (the site's widget, form or JSON): GET answers the counts as
//!   JSON; POST records the browser's vote (a signed cookie names the
//!   browser) and answers the new counts (JSON) or 303 back to the article
//!   (form, for pages without JavaScript).
//! - `token` (a digest's "Useful? Yes · No" links): GET is a page with one
//!   button, because link scanners fetch every link of an email; only its
//!   POST counts.

use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;

use super::{link_not_found, page};
use crate::domain::token::{self, verify_feedback_token};
use crate::domain::Vote;
use crate::feedback::{self, ArticleCounts, FeedbackError};
use crate::routes::web::{
    client_ip, field, form as parse_form, json_body, json_object, json_text, query, wants_json,
    ApiError, ErrorBody, PageError,
};
use crate::state::{AppState, SharedState};

/// The cookie naming a browser for the site's widget.
pub const VOTER_COOKIE: &str = "tidings_voter";

const SCRIPT: &str = include_str!("../../../templates/pages/feedback.js");

/// What GET /feedback and POST /feedback read, from the query, the form or
/// the JSON body.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedbackInput {
    /// the article (site votes): a known article's URL or a page under `site_url`
    url: Option<String>,
    /// a digest link's token (digest votes)
    token: Option<String>,
    /// the article id of a digest link
    article: Option<String>,
    /// `yes` or `no`
    vote: Option<String>,
}

/// A site vote as JSON (a digest vote carries `token` and `article`
/// instead of `url`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct VoteBody {
    url: Option<String>,
    /// `yes` or `no`
    vote: String,
    token: Option<String>,
    article: Option<String>,
}

#[utoipa::path(get, path = "/feedback", operation_id = "feedback", tag = "public",
    params(FeedbackInput),
    responses(
        (status = 200, description = "with `url`: the article's counts; with `token`: a page with one button", content(
            (ArticleCounts = "application/json"), (String = "text/html"))),
        (status = 400, description = "a malformed query", body = ErrorBody),
        (status = 404, description = "a digest link that is not valid", content_type = "text/html", body = String),
        (status = 422, description = "`url` missing, or not an article nor a page of the site", body = ErrorBody),
    ))]
pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let state = state.into_inner();
    let input: FeedbackInput = match query(&req) {
        Ok(q) => q,
        Err(e) => return ApiError::from(e).error_response(),
    };
    if let Some(token) = &input.token {
        return digest_page(&state, token, &input)
            .await
            .unwrap_or_else(|e| e.error_response());
    }
    let Some(raw) = input.url.as_deref() else {
        return ApiError::validation("url", "is required").error_response();
    };
    let url = match feedback::resolve_url(&state, raw).await {
        Ok(url) => url,
        Err(e) => return api_error(e).error_response(),
    };
    let voter = voter_id(&req, &state).map(|id| token::hash(&id));
    match feedback::counts(&state.pool, url, voter).await {
        Ok(counts) => counts_response(counts, None),
        Err(e) => ApiError::from(e).error_response(),
    }
}

#[utoipa::path(post, path = "/feedback", operation_id = "vote", tag = "public",
    request_body(content = VoteBody, content_type = "application/json"),
    responses(
        (status = 200, description = "recorded (a second vote replaces the first): the article's counts", content(
            (ArticleCounts = "application/json"), (String = "text/html"))),
        (status = 303, description = "a form's site vote, recorded: back to the article"),
        (status = 400, description = "not JSON, or not UTF-8", body = ErrorBody),
        (status = 404, description = "a digest link that is not valid", body = ErrorBody),
        (status = 413, description = "over 16 KB"),
        (status = 422, description = "`url` or `vote` invalid", body = ErrorBody),
        (status = 429, description = "past the per-address rate limit", body = ErrorBody),
    ))]
pub async fn vote(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let state = state.into_inner();
    let json = wants_json(req.headers());
    let reject = |api: ApiError, page: PageError| {
        if json {
            api.error_response()
        } else {
            page.error_response()
        }
    };
    if !state
        .vote_limiter
        .allow(client_ip(&req, &state.settings.trusted_proxies))
    {
        return reject(ApiError::TooManyRequests, PageError::TooManyRequests);
    }
    let input = if json_body(req.headers()) {
        read_json(&body)
    } else {
        read_form(&body)
    };
    let input = match input {
        Ok(i) => i,
        Err(e) => return reject(ApiError::BadRequest(e.clone()), PageError::BadRequest(e)),
    };
    let Some(vote) = input.vote.as_deref().and_then(|v| Vote::parse(v).ok()) else {
        let reason = "vote must be yes or no";
        return reject(
            ApiError::validation("vote", "must be yes or no"),
            PageError::Unprocessable(format!("The {reason}.")),
        );
    };
    if let Some(token) = &input.token {
        return digest_vote(&state, token, input.article.as_deref(), vote, json).await;
    }
    site_vote(
        &req,
        &state,
        input.url.as_deref().unwrap_or_default(),
        vote,
        json,
    )
    .await
}

fn read_json(body: &[u8]) -> Result<FeedbackInput, String> {
    let obj = json_object(body).map_err(|e| e.to_string())?;
    let text = |name: &str| json_text(&obj, name).map_err(|e| e.to_string());
    Ok(FeedbackInput {
        url: text("url")?,
        token: text("token")?,
        // The article id as a number or a string.
        article: match obj.get("article") {
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => text("article")?,
        },
        vote: text("vote")?,
    })
}

fn read_form(body: &[u8]) -> Result<FeedbackInput, String> {
    let pairs = parse_form(body).map_err(|e| e.to_string())?;
    let get = |name: &str| field(&pairs, name).map(str::to_string);
    Ok(FeedbackInput {
        url: get("url"),
        token: get("token"),
        article: get("article"),
        vote: get("vote"),
    })
}

/// A site vote: the browser's cookie (a new one when it has none), the
/// vote recorded, the counts (JSON) or back to the article (form).
async fn site_vote(
    req: &HttpRequest,
    state: &SharedState,
    raw_url: &str,
    vote: Vote,
    json: bool,
) -> HttpResponse {
    let url = match feedback::resolve_url(state, raw_url).await {
        Ok(url) => url,
        Err(FeedbackError::UnknownUrl(reason)) if !json => {
            return PageError::Unprocessable(format!(
                "This page cannot take votes: its address {reason}."
            ))
            .error_response()
        }
        Err(e) => return api_error(e).error_response(),
    };
    let (id, new_cookie) = match voter_id(req, state) {
        Some(id) => (id, None),
        None => {
            let (cookie, id) = token::new_voter_cookie(&state.secret);
            (id, Some(voter_cookie(state, cookie)))
        }
    };
    let counts = match feedback::vote_on_site(state, url.clone(), token::hash(&id), vote).await {
        Ok(c) => c,
        Err(e) if json => return ApiError::from(e).error_response(),
        Err(e) => return PageError::from(e).error_response(),
    };
    if json {
        return counts_response(counts, new_cookie);
    }
    let mut res = HttpResponse::SeeOther();
    res.insert_header((header::LOCATION, url))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    if let Some(cookie) = new_cookie {
        res.cookie(cookie);
    }
    res.finish()
}

/// A digest vote: a genuine token, an article of its digest, then the
/// thank-you page (or the counts as JSON).
async fn digest_vote(
    state: &SharedState,
    token: &str,
    article: Option<&str>,
    vote: Vote,
    json: bool,
) -> HttpResponse {
    let unknown = |state: &SharedState| {
        if json {
            return HttpResponse::NotFound().json(ErrorBody::new("unknown feedback link"));
        }
        invalid_link(state).unwrap_or_else(|e| e.error_response())
    };
    let (Some((digest_id, reader)), Some(article_id)) = (
        verify_feedback_token(&state.secret, token),
        article.and_then(|a| a.trim().parse::<i64>().ok()),
    ) else {
        return unknown(state);
    };
    let done = feedback::vote_from_digest(state, digest_id, reader, article_id, vote).await;
    let (article, counts) = match done {
        Ok(done) => done,
        Err(FeedbackError::Db(e)) if json => return ApiError::from(e).error_response(),
        Err(FeedbackError::Db(e)) => return PageError::from(e).error_response(),
        Err(_) => return unknown(state),
    };
    tracing::info!(digest_id, article_id, vote = %vote, "digest vote");
    if json {
        return counts_response(counts, None);
    }
    let other = match vote {
        Vote::Yes => Vote::No,
        Vote::No => Vote::Yes,
    };
    page(
        state,
        StatusCode::OK,
        "pages/feedback_done.html",
        minijinja::context! {
            title => article.title, url => article.url, vote => vote.as_str(),
            other => other.as_str(), token => token, article => article_id,
        },
    )
    .unwrap_or_else(|e| e.error_response())
}

/// GET with a digest link's token: the page with one button (two when the
/// link names no vote). Nothing is recorded.
async fn digest_page(
    state: &SharedState,
    token: &str,
    input: &FeedbackInput,
) -> Result<HttpResponse, PageError> {
    let Some((digest_id, _)) = verify_feedback_token(&state.secret, token) else {
        return invalid_link(state);
    };
    let Some(article_id) = input.article.as_deref().and_then(|a| a.trim().parse().ok()) else {
        return invalid_link(state);
    };
    let Some(article) = feedback::digest_article(&state.pool, digest_id, article_id).await? else {
        return invalid_link(state);
    };
    let vote = input.vote.as_deref().and_then(|v| Vote::parse(v).ok());
    page(
        state,
        StatusCode::OK,
        "pages/feedback.html",
        minijinja::context! {
            title => article.title, url => article.url, token => token,
            article => article_id, vote => vote.map(Vote::as_str),
        },
    )
}

fn invalid_link(state: &SharedState) -> Result<HttpResponse, PageError> {
    let message = "This feedback link is not valid. Please use the links in one of our emails.";
    link_not_found(state, message, false)
}

/// A vote's problem as the JSON surface says it.
fn api_error(e: FeedbackError) -> ApiError {
    match e {
        FeedbackError::UnknownUrl(reason) => ApiError::validation("url", reason),
        FeedbackError::UnknownLink => ApiError::NotFound(e.to_string()),
        FeedbackError::Db(e) => e.into(),
    }
}

fn counts_response(counts: ArticleCounts, cookie: Option<Cookie<'static>>) -> HttpResponse {
    let mut res = HttpResponse::Ok();
    res.insert_header((header::CACHE_CONTROL, "no-store"));
    if let Some(cookie) = cookie {
        res.cookie(cookie);
    }
    res.json(counts)
}

/// The browser id in a genuine voter cookie.
fn voter_id(req: &HttpRequest, state: &AppState) -> Option<String> {
    let cookie = req.cookie(VOTER_COOKIE)?;
    token::verify_voter_cookie(&state.secret, cookie.value())
}

/// The voter cookie: a year, only sent to /feedback. Cross-site (the widget
/// on the news site's pages) needs `SameSite=None`, which browsers take
/// only with `Secure`, so over plain http it is `Lax` (same site only).
fn voter_cookie(state: &AppState, value: String) -> Cookie<'static> {
    let secure = state.settings.base_url.scheme() == "https";
    Cookie::build(VOTER_COOKIE, value)
        .path(format!("{}/feedback", state.settings.mount()))
        .http_only(true)
        .secure(secure)
        .same_site(if secure {
            SameSite::None
        } else {
            SameSite::Lax
        })
        .max_age(time::Duration::days(365))
        .finish()
}

#[utoipa::path(get, path = "/feedback.js", operation_id = "feedback_script", tag = "public",
    responses((status = 200, description = "the widget's script", content_type = "text/javascript", body = String)))]
pub async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(SCRIPT)
}
