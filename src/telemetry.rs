//! Tracing: `RUST_LOG` filters (default `info`), one span per request with a
//! request id (tracing-actix-web). Addresses never go to info-level logs;
//! where one must be mentioned, use [`crate::domain::email::mask`]. Faults
//! that fail every request are logged through a [`Throttle`].

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

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
        .with_writer(|| AboveBars)
        .try_init();
}

/// The progress bar a command is drawing, if any: log lines are written
/// above it instead of through it.
static BAR: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

/// Shows log lines above `bar` until [`clear_bar`].
pub fn set_bar(bar: &indicatif::ProgressBar) {
    *BAR.lock().unwrap_or_else(PoisonError::into_inner) = Some(bar.clone());
}

pub fn clear_bar() {
    *BAR.lock().unwrap_or_else(PoisonError::into_inner) = None;
}

/// Stderr, with the progress bar (if one is drawn) lifted out of the way.
struct AboveBars;

impl std::io::Write for AboveBars {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = BAR.lock().unwrap_or_else(PoisonError::into_inner).clone();
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf).map(|()| buf.len())),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Lets through at most one log line per window and counts the rest, so a
/// fault that fails every request (a database gone away) writes one line a
/// second saying how many it stood for, not one per request.
pub struct Throttle {
    window: Duration,
    state: Mutex<ThrottleState>,
}

struct ThrottleState {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    pub const fn new(window: Duration) -> Self {
        Self {
            window,
            state: Mutex::new(ThrottleState {
                last: None,
                suppressed: 0,
            }),
        }
    }

    /// `Some(n)` when a line may be written at `now`, `n` being how many were
    /// held back since the previous one; `None` when this one is held back.
    pub fn admit(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let due = state
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= self.window);
        if !due {
            state.suppressed += 1;
            return None;
        }
        state.last = Some(now);
        Some(std::mem::take(&mut state.suppressed))
    }
}

static DATABASE_UNAVAILABLE: Throttle = Throttle::new(Duration::from_secs(1));

/// Logs a database fault behind a 503 at `error`, at most once a second.
pub fn database_unavailable(error: &dyn std::fmt::Display) {
    if let Some(more) = DATABASE_UNAVAILABLE.admit(Instant::now()) {
        tracing::error!(
            error = %error,
            suppressed = more,
            "database unavailable ({more} more in the last second)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_lets_one_line_a_second_through_and_counts_the_rest() {
        let throttle = Throttle::new(Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(throttle.admit(t0), Some(0));
        for ms in [1, 10, 500, 999] {
            assert_eq!(throttle.admit(t0 + Duration::from_millis(ms)), None);
        }
        assert_eq!(throttle.admit(t0 + Duration::from_millis(1000)), Some(4));
        assert_eq!(throttle.admit(t0 + Duration::from_millis(1200)), None);
        assert_eq!(throttle.admit(t0 + Duration::from_secs(5)), Some(1));
        assert_eq!(throttle.admit(t0 + Duration::from_secs(9)), Some(0));
    }
}
