//! Logging in and out of the console, and the session every page needs.
//!
//! - Passwords are argon2id; at most [`crate::limits::HASHING_PERMITS`] verifications run at
//!   once (each takes ~19 MiB), so a flood of logins queues instead of
//!   ballooning memory. An unknown name is verified against a dummy hash, so
//!   it costs what a wrong password costs.
//! - Attempts are throttled per client address and per (account name,
//!   address) pair (429): guessing at one account from one place is slowed,
//!   and someone else's guessing never locks the real admin out from an
//!   address that has not failed. IPv6 clients count per /64, the block one
//!   subscriber line gets.
//! - A session is a random 256-bit id in an HttpOnly, SameSite=Strict cookie
//!   (Secure when `base_url` is https); the database keeps only its SHA-256,
//!   so sessions survive restarts and work across instances. Every login makes
//!   a new id and deletes the session the browser had before.
//! - The login form has no session yet, so its CSRF defence is a signed double
//!   submit: a random nonce in a cookie and, in the form, its HMAC under the
//!   secret key. A cross-site page can neither read the cookie nor forge the
//!   MAC. Every console POST also rejects a foreign `Origin`.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::Duration;

use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::{header, StatusCode};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde::Serialize;

use crate::db;
use crate::domain::{password, token};
use crate::routes::web::{client_ip, field, form, AdminError};
use crate::state::{AppState, SharedState};

pub const SESSION_COOKIE: &str = "tidings_session";
pub const LOGIN_COOKIE: &str = "tidings_login";
/// How long a session lasts from login.
pub const SESSION_HOURS: i64 = 12;
/// How long a login waits for a hashing permit before giving up with 503.
const HASHING_WAIT: Duration = Duration::from_secs(15);

/// A logged-in admin: what the session row says.
pub struct Admin {
    pub id: i64,
    pub name: String,
    pub csrf_token: String,
    id_hash: String,
}

impl Admin {
    /// The form's `csrf_token` must be this session's, compared in constant time.
    pub fn check_csrf(&self, pairs: &[(String, String)]) -> Result<(), AdminError> {
        let sent = field(pairs, "csrf_token").unwrap_or_default();
        if sent.is_empty() || !token::constant_time_eq(sent.as_bytes(), self.csrf_token.as_bytes())
        {
            tracing::warn!(admin_id = self.id, "console POST with a wrong csrf_token");
            return Err(AdminError::Forbidden);
        }
        Ok(())
    }
}

/// The session id in the cookie, when it looks like one of ours.
fn cookie_token(req: &HttpRequest, name: &str) -> Option<String> {
    let value = req.cookie(name)?.value().to_string();
    let plausible = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plausible.then_some(value)
}

async fn load_session(req: &HttpRequest) -> Result<Admin, AdminError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| AdminError::Unexpected(anyhow::anyhow!("no app state")))?;
    let raw = cookie_token(req, SESSION_COOKIE).ok_or(AdminError::LoginRequired)?;
    let id_hash = token::hash(&raw);
    let lookup = id_hash.clone();
    let session = db::run(&state.pool, move |c| db::admins::find_session(c, &lookup))
        .await?
        .ok_or(AdminError::LoginRequired)?;
    Ok(Admin {
        id: session.admin_id,
        name: session.admin_name,
        csrf_token: session.csrf_token,
        id_hash,
    })
}

/// A POST whose `Origin` names another site is refused before anything runs.
/// Browsers send `Origin` on every POST; tools that send none are not
/// browsers riding a cookie, and the CSRF token still guards them.
fn check_origin(req: &HttpRequest, state: &AppState) -> Result<(), AdminError> {
    if req.method() != actix_web::http::Method::POST {
        return Ok(());
    }
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().map_err(|_| AdminError::Forbidden)?;
    let parsed = url::Url::parse(origin).map_err(|_| AdminError::Forbidden)?;
    if parsed.origin() == state.settings.base_url.origin() {
        return Ok(());
    }
    let host_port = match (parsed.host_str(), parsed.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => return Err(AdminError::Forbidden),
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if host.eq_ignore_ascii_case(&host_port) {
        Ok(())
    } else {
        tracing::warn!("console POST from a foreign origin refused");
        Err(AdminError::Forbidden)
    }
}

/// Console pages: a live session or a redirect to the login form.
impl FromRequest for Admin {
    type Error = AdminError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AdminError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            if let Some(state) = req.app_data::<web::Data<AppState>>() {
                check_origin(&req, state)?;
            }
            load_session(&req).await
        })
    }
}

/// JSON endpoints of the console: a live session or 401.
pub struct AdminJson(pub Admin);

impl FromRequest for AdminJson {
    type Error = AdminError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AdminError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            match load_session(&req).await {
                Ok(admin) => Ok(AdminJson(admin)),
                Err(AdminError::LoginRequired) => Err(AdminError::Unauthorized),
                Err(e) => Err(e),
            }
        })
    }
}

fn secure(state: &AppState) -> bool {
    state.settings.base_url.scheme() == "https"
}

fn cookie<'a>(
    state: &AppState,
    name: &'a str,
    value: String,
    max_age: time::Duration,
) -> Cookie<'a> {
    Cookie::build(name, value)
        .path(format!("{}/admin", state.settings.mount()))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure(state))
        .max_age(max_age)
        .finish()
}

fn expired_cookie<'a>(state: &AppState, name: &'a str) -> Cookie<'a> {
    let mut c = cookie(state, name, String::new(), time::Duration::ZERO);
    c.make_removal();
    c
}

/// The login form's token: the HMAC of the nonce in the login cookie.
fn login_csrf(state: &AppState, nonce: &str) -> String {
    token::mac_hex(&state.secret, &format!("admin-login:{nonce}"))
}

#[derive(Serialize, Default)]
struct LoginPage<'a> {
    csrf_token: String,
    name: &'a str,
    error: Option<&'a str>,
    no_admin: bool,
}

/// Renders the login form, (re)setting the nonce cookie its token is tied to.
async fn login_page(
    state: &SharedState,
    req: &HttpRequest,
    status: StatusCode,
    name: &str,
    error: Option<&str>,
) -> Result<HttpResponse, AdminError> {
    let nonce = cookie_token(req, LOGIN_COOKIE).unwrap_or_else(token::random_token);
    let no_admin = db::run(&state.pool, db::admins::count).await? == 0;
    let body = crate::mail::templates::render(
        &state.templates,
        "admin/login.html",
        LoginPage {
            csrf_token: login_csrf(state, &nonce),
            name,
            error,
            no_admin,
        },
    )?;
    let mut res = HttpResponse::build(status);
    res.content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .cookie(cookie(state, LOGIN_COOKIE, nonce, time::Duration::hours(2)));
    if status == StatusCode::TOO_MANY_REQUESTS {
        res.insert_header((header::RETRY_AFTER, "60"));
    }
    Ok(res.body(body))
}

pub async fn login_form(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let state = state.into_inner();
    if load_session(&req).await.is_ok() {
        return Ok(see_other("/admin"));
    }
    login_page(&state, &req, StatusCode::OK, "", None).await
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// A PHC string with the same parameters as real ones, so an unknown name
/// costs one full verification like a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| password::hash(&token::random_token()).unwrap_or_default())
}

pub async fn login(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let state = state.into_inner();
    check_origin(&req, &state)?;
    let pairs = form(&body)?;
    check_login_csrf(&req, &state, &pairs)?;
    let name = field(&pairs, "name").unwrap_or_default().trim().to_string();
    let password = field(&pairs, "password").unwrap_or_default().to_string();
    let ip = client_ip(&req, &state.settings.trusted_proxies);
    if !state.login_guard.allow(ip, &name) {
        tracing::warn!(ip = ?ip, "login throttled");
        let msg = "Too many login attempts. Wait a minute and try again.";
        return login_page(
            &state,
            &req,
            StatusCode::TOO_MANY_REQUESTS,
            &name,
            Some(msg),
        )
        .await;
    }
    if name.is_empty() || password.is_empty() || name.len() > 200 || password.len() > 1024 {
        return wrong_credentials(&state, &req, &name).await;
    }
    let Some(admin_id) = check_password(&state, &name, password).await? else {
        tracing::warn!(ip = ?ip, "console login failed");
        return wrong_credentials(&state, &req, &name).await;
    };
    start_session(&state, &req, admin_id).await
}

/// The form's token must be the MAC of the nonce in the login cookie.
fn check_login_csrf(
    req: &HttpRequest,
    state: &AppState,
    pairs: &[(String, String)],
) -> Result<(), AdminError> {
    let nonce = cookie_token(req, LOGIN_COOKIE).ok_or(AdminError::Forbidden)?;
    let sent = field(pairs, "csrf_token").unwrap_or_default();
    if !token::constant_time_eq(sent.as_bytes(), login_csrf(state, &nonce).as_bytes()) {
        tracing::warn!("login POST with a wrong csrf_token");
        return Err(AdminError::Forbidden);
    }
    Ok(())
}

async fn wrong_credentials(
    state: &SharedState,
    req: &HttpRequest,
    name: &str,
) -> Result<HttpResponse, AdminError> {
    let msg = "Wrong name or password.";
    login_page(state, req, StatusCode::UNAUTHORIZED, name, Some(msg)).await
}

/// The admin's id when the name and password are one's. An unknown name is
/// verified against [`dummy_hash`], under a hashing permit like any other.
async fn check_password(
    state: &SharedState,
    name: &str,
    password: String,
) -> Result<Option<i64>, AdminError> {
    // No admin's name holds a control character (and PostgreSQL cannot
    // even compare a NUL): such a name is unknown without asking.
    let account = if name.chars().any(char::is_control) {
        None
    } else {
        let lookup = name.to_string();
        db::run(&state.pool, move |c| db::admins::find_by_name(c, &lookup)).await?
    };
    let ok = {
        let _permit = tokio::time::timeout(HASHING_WAIT, state.login_guard.hashing())
            .await
            .map_err(|_| AdminError::Unavailable)?
            .map_err(|_| AdminError::Unavailable)?;
        let stored = account.as_ref().map(|(_, h)| h.clone());
        tokio::task::spawn_blocking(move || match stored {
            Some(hash) => password::verify(&password, &hash),
            None => {
                password::verify(&password, dummy_hash());
                false
            }
        })
        .await
        .map_err(|e| AdminError::Unexpected(anyhow::anyhow!("password check: {e}")))?
    };
    Ok(match (ok, account) {
        (true, Some((id, _))) => Some(id),
        _ => None,
    })
}

/// A new session for `admin_id` and a redirect to the console that sets its
/// cookie; the session this browser had before is gone.
async fn start_session(
    state: &SharedState,
    req: &HttpRequest,
    admin_id: i64,
) -> Result<HttpResponse, AdminError> {
    let previous = cookie_token(req, SESSION_COOKIE).map(|raw| token::hash(&raw));
    let raw = token::random_token();
    let id_hash = token::hash(&raw);
    let csrf = token::random_token();
    let expires = db::now() + chrono::Duration::hours(SESSION_HOURS);
    let session = crate::console::NewSession {
        id_hash,
        admin_id,
        csrf_token: csrf,
        expires_at: expires,
    };
    crate::console::start_session(&state.pool, previous, session).await?;
    tracing::info!(admin_id, "console login");
    let mut res = see_other("/admin");
    res.add_cookie(&cookie(
        state,
        SESSION_COOKIE,
        raw,
        time::Duration::hours(SESSION_HOURS),
    ))
    .map_err(|e| AdminError::Unexpected(anyhow::anyhow!("cookie: {e}")))?;
    res.add_cookie(&expired_cookie(state, LOGIN_COOKIE))
        .map_err(|e| AdminError::Unexpected(anyhow::anyhow!("cookie: {e}")))?;
    Ok(res)
}

pub async fn logout(
    admin: Admin,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    admin.check_csrf(&form(&body)?)?;
    let id_hash = admin.id_hash.clone();
    db::run(&state.pool, move |c| {
        db::admins::delete_session(c, &id_hash)
    })
    .await?;
    tracing::info!(admin_id = admin.id, "console logout");
    let mut res = see_other("/admin/login");
    res.add_cookie(&expired_cookie(&state, SESSION_COOKIE))
        .map_err(|e| AdminError::Unexpected(anyhow::anyhow!("cookie: {e}")))?;
    Ok(res)
}
