//! Tracing: `RUST_LOG` filters (default `info`), one span per request with a
//! request id (tracing-actix-web). Addresses never go to info-level logs;
//! where one must be mentioned, use [`crate::domain::email::mask`].

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::HttpMessage;
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};
use tracing_subscriber::{fmt, EnvFilter};

/// The span every request's log lines carry: method, route pattern (e.g.
/// `/api/subscribers/{id}`), request id and status. Neither the path nor
/// the query string: those are what the client typed, and can hold an
/// address (`?q=` searches) or a token.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        let route = request
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        tracing::info_span!(
            "request",
            method = %request.method(),
            route = %route,
            request_id = %request_id,
            status = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        let status = match outcome {
            Ok(response) => response.status(),
            Err(e) => e.as_response_error().status_code(),
        };
        span.record("status", status.as_u16());
    }
}

/// Installs the global subscriber once; later calls are no-ops (tests).
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tokio_cron_scheduler=warn"));
    let _ = fmt()
        .with_env_filter(filter)
        .with_target(false)
        // Colours for a terminal only, not into a pipe or a journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
