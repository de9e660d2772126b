//! The error of each surface, each mapped to a status in one place:
//! [`ApiError`] (JSON), [`PageError`] (reader pages), [`AdminError`]
//! (console). What they share is written once: a database that is away is
//! a 503 with `Retry-After`, anything else unexpected a logged 500, a broken
//! form a 400; the HTML ones render `templates/pages/error.html` (the
//! console's `templates/admin/error.html`).

use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder, ResponseError};

use super::ErrorBody;
use crate::db::DbError;

/// Seconds a client is asked to wait (`Retry-After`) before trying again
/// after a 503: the database is away, read-only or full.
pub const RETRY_AFTER_SECONDS: u32 = 5;

/// Whether a database failure is the database's (503, logged at most once a
/// second, see [`crate::telemetry::database_unavailable`]) and not the
/// query's (500). Every surface's `From<DbError>` asks here.
pub fn database_unavailable(e: &DbError) -> bool {
    if e.is_unavailable() {
        crate::telemetry::database_unavailable(e);
        return true;
    }
    false
}

/// A field the client got wrong: `{field} {reason}`.
#[derive(Debug, thiserror::Error)]
#[error("{field} {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: &str, reason: impl Into<String>) -> Self {
        Self {
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}

/// A body that is not a form we can read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FormError(String);

impl FormError {
    pub(super) fn new(message: &str) -> Self {
        Self(message.to_string())
    }
}

/// A query string that does not fit what the handler expects.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub(super) serde_urlencoded::de::Error);

/// What every surface shares: the conversions (each surface has
/// `Unavailable`, 503; `Unexpected`, 500; `BadRequest`, 400) and the start
/// of its error response, logged as `$what` when unexpected.
macro_rules! shared {
    ($($surface:ident => $what:literal),+) => {$(
        impl From<DbError> for $surface {
            fn from(e: DbError) -> Self {
                if database_unavailable(&e) {
                    return Self::Unavailable;
                }
                Self::Unexpected(e.into())
            }
        }

        impl From<anyhow::Error> for $surface {
            fn from(e: anyhow::Error) -> Self {
                Self::Unexpected(e)
            }
        }

        impl From<FormError> for $surface {
            fn from(e: FormError) -> Self {
                Self::BadRequest(e.to_string())
            }
        }

        impl From<crate::digest::ComposeError> for $surface {
            fn from(e: crate::digest::ComposeError) -> Self {
                match e {
                    crate::digest::ComposeError::Db(e) => e.into(),
                    crate::digest::ComposeError::Render(e) => Self::Unexpected(e),
                }
            }
        }

        impl $surface {
            /// The status, `Retry-After` on a 503, and an unexpected error
            /// logged with its causes.
            fn respond(&self) -> HttpResponseBuilder {
                if let Self::Unexpected(e) = self {
                    tracing::error!(error = %format!("{e:#}"), $what);
                }
                let status = self.status_code();
                let mut res = HttpResponse::build(status);
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    res.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECONDS));
                }
                res
            }
        }
    )+};
}

shared!(
    ApiError => "request failed",
    PageError => "page failed",
    AdminError => "console page failed"
);

/// Error pages are rendered without the app state (a `ResponseError` has
/// none), from the same compiled-in templates, checked at start-up.
static TEMPLATES: LazyLock<anyhow::Result<minijinja::Environment<'static>>> =
    LazyLock::new(crate::mail::templates::builtin);

/// An error page: the status as its title and heading, then the message.
fn html_page(template: &str, error: &dyn ResponseError) -> String {
    let message = error.to_string();
    let ctx = minijinja::context! {
        status => error.status_code().to_string(),
        message => &message,
        root => crate::mail::templates::href(crate::routes::mount::current()),
    };
    let rendered = match &*TEMPLATES {
        Ok(env) => crate::mail::templates::render(env, template, ctx),
        Err(e) => Err(anyhow::anyhow!("{e:#}")),
    };
    rendered.unwrap_or_else(|e| {
        tracing::error!(error = %format!("{e:#}"), "error page failed");
        minijinja::HtmlEscape(&message).to_string()
    })
}

/// Errors of JSON endpoints: `{"error": …, "field"?: …}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Validation(#[from] FieldError),
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid API token")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("too many requests, slow down")]
    TooManyRequests,
    #[error("database unavailable, try again shortly")]
    Unavailable,
    #[error("internal error")]
    Unexpected(#[source] anyhow::Error),
}

impl ApiError {
    pub fn validation(field: &str, reason: impl Into<String>) -> Self {
        Self::Validation(FieldError::new(field, reason))
    }
}

/// Said the way actix-web says it for a `web::Query` extractor.
impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        Self::BadRequest(actix_web::error::QueryPayloadError::Deserialize(e.0).to_string())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = self.respond();
        if let Self::Unauthorized = self {
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        let body = ErrorBody::new(self.to_string());
        res.json(match self {
            Self::Validation(e) => body.field(&e.field),
            _ => body,
        })
    }
}

/// Errors of HTML pages that have no page of their own: a short page with
/// the status. Pages with a specific answer (404 token, 410 expired) render
/// their own templates instead.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("The service is busy or its database is unavailable. Please try again in a minute.")]
    Unavailable,
    #[error("Too many requests from your address. Please wait a minute and try again.")]
    TooManyRequests,
    #[error("{0}")]
    BadRequest(String),
    /// A field of a form that cannot be taken as it is (422).
    #[error("{0}")]
    Unprocessable(String),
    #[error("Something went wrong on our side. Please try again later.")]
    Unexpected(#[source] anyhow::Error),
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.respond()
            .content_type("text/html; charset=utf-8")
            .body(html_page("pages/error.html", self))
    }
}

/// What can go wrong on a console page.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No live session: pages go to the login form.
    #[error("Please log in.")]
    LoginRequired,
    /// No live session on a JSON endpoint.
    #[error("not logged in")]
    Unauthorized,
    #[error(
        "This form has expired or did not come from this console. Reload the page and try again."
    )]
    Forbidden,
    #[error("There is nothing here.")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("The service is busy or its database is unavailable. Please try again in a minute.")]
    Unavailable,
    #[error("Something went wrong on our side. The error is in the log.")]
    Unexpected(#[source] anyhow::Error),
}

/// A rejected field, shown on the error page.
impl From<FieldError> for AdminError {
    fn from(e: FieldError) -> Self {
        Self::BadRequest(e.to_string())
    }
}

impl From<QueryError> for AdminError {
    fn from(e: QueryError) -> Self {
        Self::BadRequest(format!("invalid query: {e}"))
    }
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::LoginRequired => StatusCode::SEE_OTHER,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = self.respond();
        res.insert_header((header::CACHE_CONTROL, "no-store"));
        match self {
            Self::LoginRequired => res
                .insert_header((header::LOCATION, "/admin/login"))
                .finish(),
            Self::Unauthorized => res.json(ErrorBody::new(self.to_string())),
            _ => res
                .content_type("text/html; charset=utf-8")
                .body(html_page("admin/error.html", self)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page as it was when written inline, before the template.
    fn inline(status: &str, message: &str, after: &str) -> String {
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{status}</title></head><body><main><h1>{status}</h1><p>{message}</p>\
             {after}</main></body></html>"
        )
    }

    #[test]
    fn error_pages_are_the_inline_pages_they_replace_but_for_line_breaks() {
        let page = html_page(
            "pages/error.html",
            &PageError::BadRequest("a <b> & c".into()),
        );
        let message = "a &lt;b&gt; &amp; c";
        assert_eq!(
            page.replace('\n', ""),
            inline("400 Bad Request", message, "")
        );
        let admin = html_page("admin/error.html", &AdminError::NotFound);
        let back = "<p><a href=\"/admin\">Back to the console</a></p>";
        let message = "There is nothing here.";
        assert_eq!(
            admin.replace('\n', ""),
            inline("404 Not Found", message, back)
        );
    }
}
