//! A deadline on the whole request body, for every route. actix-web's
//! `client_request_timeout` only covers the head: a client that sends
//! `Content-Length: 500` and then one byte every half second would hold its
//! connection (and a handler waiting on `web::Bytes`) for minutes.
//!
//! [`body_deadline`] wraps each request's payload: past `body_timeout_seconds`
//! from the head, reading fails and the answer is 408 with the connection
//! closed. A body still incomplete [`SLOW_AFTER`] after its head counts as
//! slow (a normal one, at most 16 KB, arrives within milliseconds); at most
//! [`MAX_SLOW_BODIES`] are waited for at once, so a crowd of tricklers cannot
//! hold connections that normal requests need: past the cap a slow body is
//! cut at once, also with a 408.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::web::{Bytes, Data};
use actix_web::{Error, HttpMessage, HttpResponse};
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

/// Most slow request bodies waited for at once across the server.
pub const MAX_SLOW_BODIES: usize = 64;

/// How long after its head a body may take before it counts as slow.
pub const SLOW_AFTER: Duration = Duration::from_secs(1);

/// The body deadline and the count of slow bodies, shared by every worker.
pub struct BodyGuard {
    timeout: Duration,
    max_slow: usize,
    slow: AtomicUsize,
}

impl BodyGuard {
    pub fn new(timeout: Duration, max_slow: usize) -> Self {
        Self {
            timeout,
            max_slow,
            slow: AtomicUsize::new(0),
        }
    }

    /// Takes a slow-body slot; false when all are taken.
    fn enter(&self) -> bool {
        self.slow
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_slow).then_some(n + 1)
            })
            .is_ok()
    }

    fn leave(&self) {
        self.slow.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The middleware (`middleware::from_fn(body_deadline)`, with a
/// `Data<BodyGuard>` in the app data).
pub async fn body_deadline(
    guard: Data<BodyGuard>,
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let expired = Rc::new(Cell::new(false));
    let start = Instant::now();
    let stream = Deadline {
        inner: req.take_payload(),
        slow_at: start + SLOW_AFTER.min(guard.timeout),
        deadline: start + guard.timeout,
        sleep: None,
        guard: guard.into_inner(),
        counted: false,
        done: false,
        expired: expired.clone(),
    };
    req.set_payload(Payload::from(Box::pin(stream) as BoxedStream));
    let res = next.call(req).await?;
    if !expired.get() {
        return Ok(res.map_into_left_body());
    }
    // Whatever the handler made of the failed read (its extractor's 400),
    // the client was too slow: say so and drop the rest of its body.
    let json = super::web::wants_json(res.request().headers());
    let mut timeout = HttpResponse::RequestTimeout();
    timeout.insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"));
    timeout.force_close();
    let response = if json {
        timeout.json(super::web::ErrorBody::new(
            "request body not received in time",
        ))
    } else {
        timeout
            .content_type("text/plain; charset=utf-8")
            .body("Request body not received in time.")
    };
    Ok(res.into_response(response).map_into_right_body())
}

type BoxedStream = Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>;

/// A payload that fails once its deadline passes.
struct Deadline {
    inner: Payload,
    /// When an incomplete body starts to count as slow.
    slow_at: Instant,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    guard: std::sync::Arc<BodyGuard>,
    /// Holds one of the guard's slow-body slots.
    counted: bool,
    done: bool,
    expired: Rc<Cell<bool>>,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish();
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(Some(Ok(bytes))) => Poll::Ready(Some(Ok(bytes))),
            Poll::Pending => this.wait(cx),
        }
    }
}

impl Deadline {
    fn finish(&mut self) {
        self.done = true;
        self.sleep = None;
        if std::mem::take(&mut self.counted) {
            self.guard.leave();
        }
    }

    fn expire(&mut self) -> Poll<Option<Result<Bytes, PayloadError>>> {
        self.finish();
        self.expired.set(true);
        Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "request body not received in time",
        )))))
    }

    /// The body has to wait: until it counts as slow, then (with a slot)
    /// until the deadline.
    fn wait(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, PayloadError>>> {
        loop {
            let until = if self.counted {
                self.deadline
            } else {
                self.slow_at
            };
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if self.counted || !self.guard.enter() {
                return self.expire();
            }
            self.counted = true;
            self.sleep = None;
        }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_body_slots_are_capped_and_given_back() {
        let guard = BodyGuard::new(Duration::from_secs(1), 2);
        assert!(guard.enter());
        assert!(guard.enter());
        assert!(!guard.enter());
        guard.leave();
        assert!(guard.enter());
    }
}
