//! The outbox worker: claims due rows, renders and sends them, and settles
//! each one (sent, retry later with backoff, or failed for good).
//!
//! Signups that group-commit hand their rows over directly (see
//! [`Handoff`]); everything else it claims: it wakes at once when a request
//! queued mail, and polls every second for retries that came due and rows
//! other instances queued. A row whose lease ran out (its worker died
//! mid-send) is claimed again (looked for every 30 s, and whenever the
//! worker is woken), so a crash can repeat at most the sends that were in
//! flight, and never loses one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use rand::Rng;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;

use crate::db::{self, outbox::OutboxJob};
use crate::mail::message::{self, Rendered};
use crate::mail::SendError;
use crate::state::{AppState, SharedState};
use crate::subscriptions::ConfirmPayload;

const POLL: Duration = Duration::from_secs(1);
const LEASE: Duration = Duration::from_secs(120);
/// How often the worker looks for rows whose lease ran out (their worker
/// died) when nothing woke it. The look reads every leased row's index
/// entry, the dead ones of rows sent since the last vacuum included, so
/// once a second it grew with the signups.
const RECLAIM: Duration = Duration::from_secs(30);
const BATCH: i64 = 200;
/// Handed-over jobs waiting for the worker; more go to the queue instead.
const HANDOFF_ROOM: usize = 4096;
/// After this many attempts a transiently failing email is given up.
pub const MAX_ATTEMPTS: i32 = 16;

/// How the signup group commit gives its confirmation emails straight to
/// this instance's worker. The rows go in already leased to the worker
/// (`sending`), so no claim query and no update comes between the insert
/// and the send; they are still rows, so a crash loses none (the lease runs
/// out and any instance claims them again). Jobs the worker cannot take
/// (no worker running, queue full, stopping) go back to the queue.
pub struct Handoff {
    tx: mpsc::Sender<OutboxJob>,
    rx: Mutex<Option<mpsc::Receiver<OutboxJob>>>,
    open: AtomicBool,
    /// Poked after a commit that queued rows for claiming.
    wake: Notify,
}

impl Default for Handoff {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(HANDOFF_ROOM);
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
            open: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }
}

impl Handoff {
    /// Tells the worker that queued rows are waiting to be claimed.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Until when rows written now are leased to this instance's worker, or
    /// `None` when no worker takes handed-over jobs (queue them instead).
    pub fn lease(&self, now: chrono::NaiveDateTime) -> Option<chrono::NaiveDateTime> {
        let open = self.open.load(Ordering::Acquire);
        open.then(|| now + chrono::Duration::seconds(LEASE.as_secs() as i64))
    }

    /// Gives jobs to the worker; returns the ids of those it could not take,
    /// which the caller must release.
    pub fn give(&self, jobs: Vec<OutboxJob>) -> Vec<i64> {
        jobs.into_iter()
            .filter_map(|job| match self.tx.try_send(job) {
                Ok(()) => None,
                Err(e) => Some(e.into_inner().id),
            })
            .collect()
    }

    fn attach(&self) -> Option<mpsc::Receiver<OutboxJob>> {
        let rx = self.rx.lock().ok()?.take()?;
        self.open.store(true, Ordering::Release);
        Some(rx)
    }
}

/// Puts handed-over rows nobody will send back in the queue. If even that
/// fails, their lease runs out and they are claimed again then.
pub async fn release(pool: &db::Pool, outbox: &Handoff, ids: Vec<i64>) {
    if ids.is_empty() {
        return;
    }
    let n = ids.len();
    match db::run(pool, move |c| db::outbox::release(c, &ids)).await {
        Ok(_) => outbox.wake(),
        Err(e) => {
            tracing::warn!(error = %e, rows = n, "releasing outbox rows failed; their lease will run out")
        }
    }
}

/// Works handed-over jobs as they come, and claims queued rows when woken
/// and once a second (retries that came due, other instances' rows); rows
/// whose lease ran out when woken and every [`RECLAIM`].
pub async fn run(state: SharedState, mut shutdown: watch::Receiver<bool>) {
    let mut handed = state.outbox.attach();
    let mut next_claim = Instant::now();
    let mut next_reclaim = Instant::now();
    let mut reclaim = true;
    loop {
        if *shutdown.borrow() {
            break;
        }
        if Instant::now() >= next_claim {
            reclaim |= Instant::now() >= next_reclaim;
            match step(&state, reclaim).await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "outbox step failed"),
            }
            if reclaim {
                reclaim = false;
                next_reclaim = Instant::now() + RECLAIM;
            }
            next_claim = Instant::now() + POLL;
        }
        tokio::select! {
            Some(job) = recv(&mut handed) => {
                let mut jobs = vec![job];
                if let Some(rx) = handed.as_mut() {
                    while jobs.len() < BATCH as usize {
                        let Ok(job) = rx.try_recv() else { break };
                        jobs.push(job);
                    }
                }
                if let Err(e) = work(&state, jobs).await {
                    tracing::warn!(error = %format!("{e:#}"), "outbox step failed");
                }
            }
            _ = state.outbox.wake.notified() => {
                next_claim = Instant::now();
                reclaim = true;
            }
            _ = tokio::time::sleep_until(next_claim) => {}
            _ = shutdown.changed() => {}
        }
    }
    // Stopping: what was handed over but not sent goes back to the queue.
    if let Some(mut rx) = handed {
        state.outbox.open.store(false, Ordering::Release);
        rx.close();
        let mut left = Vec::new();
        while let Ok(job) = rx.try_recv() {
            left.push(job.id);
        }
        release(&state.pool, &state.outbox, left).await;
    }
}

async fn recv(rx: &mut Option<mpsc::Receiver<OutboxJob>>) -> Option<OutboxJob> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Exponential backoff with jitter: 2 s, 4 s, 8 s … capped at one hour
/// (16 attempts span about seven hours of an outage).
pub fn backoff(attempts: i32) -> chrono::Duration {
    let base = 2i64
        .saturating_mul(1i64 << (attempts - 1).clamp(0, 12))
        .min(3600);
    let jitter = rand::thread_rng().gen_range(0.75..1.25);
    chrono::Duration::milliseconds((base as f64 * 1000.0 * jitter) as i64)
}

enum Outcome {
    Sent,
    Retry(String),
    Failed { reason: String, bounce: bool },
}

/// Claims one batch (rows whose lease ran out too, with `reclaim`) and
/// works it. Returns how many rows it handled.
pub async fn step(state: &AppState, reclaim: bool) -> anyhow::Result<usize> {
    let now = db::now();
    let lease = now + chrono::Duration::from_std(LEASE)?;
    let jobs = db::run(&state.pool, move |c| {
        db::outbox::claim(c, now, lease, BATCH, reclaim)
    })
    .await?;
    work(state, jobs).await
}

/// Sends leased jobs and settles each one. Returns how many it handled.
async fn work(state: &AppState, jobs: Vec<OutboxJob>) -> anyhow::Result<usize> {
    if jobs.is_empty() {
        return Ok(0);
    }
    let n = jobs.len();
    let results: Vec<(OutboxJob, Outcome)> = stream::iter(jobs)
        .map(|job| async move {
            let outcome = send_one(state, &job).await;
            (job, outcome)
        })
        .buffer_unordered(state.mailer.concurrency())
        .collect()
        .await;
    for (job, outcome) in &results {
        let kind = job.kind.as_str();
        match outcome {
            Outcome::Sent => state.metrics.emails_sent.with_label_values(&[kind]).inc(),
            Outcome::Retry(e) => {
                let error = crate::domain::email::mask_in(e);
                tracing::info!(outbox_id = job.id, attempt = job.attempts, %error, "send will be retried");
                state
                    .metrics
                    .emails_retried
                    .with_label_values(&[kind])
                    .inc()
            }
            Outcome::Failed { reason, .. } => {
                let error = crate::domain::email::mask_in(reason);
                tracing::warn!(outbox_id = job.id, %error, "send failed for good");
                state.metrics.emails_failed.with_label_values(&[kind]).inc()
            }
        }
    }
    db::transaction(&state.pool, move |c| {
        let now = db::now();
        let sent: Vec<i64> = results
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Sent))
            .map(|(job, _)| job.id)
            .collect();
        db::outbox::mark_sent(c, &sent, now)?;
        for (job, outcome) in &results {
            match outcome {
                Outcome::Sent => 0,
                Outcome::Retry(e) if job.attempts < MAX_ATTEMPTS => {
                    db::outbox::retry_at(c, job.id, now + backoff(job.attempts), e)?
                }
                Outcome::Retry(e) => db::outbox::mark_failed(c, job.id, e)?,
                Outcome::Failed { reason, bounce } => {
                    if let (true, Some(id)) = (bounce, &job.subscriber_id) {
                        crate::subscriptions::bounce(c, id, reason)?;
                    }
                    db::outbox::mark_failed(c, job.id, reason)?
                }
            };
        }
        Ok(())
    })
    .await?;
    Ok(n)
}

async fn send_one(state: &AppState, job: &OutboxJob) -> Outcome {
    let rendered = match render(state, job) {
        Ok(r) => r,
        Err(e) => {
            return Outcome::Failed {
                reason: format!("{e:#}"),
                bounce: false,
            }
        }
    };
    let name = serde_json::from_str::<ConfirmPayload>(&job.payload)
        .ok()
        .and_then(|p| p.name);
    let msg = match message::build(
        &state.settings.mail_from,
        &job.recipient,
        name.as_deref(),
        &rendered,
        None,
    ) {
        Ok(m) => m,
        Err(reason) => {
            return Outcome::Failed {
                reason,
                bounce: false,
            }
        }
    };
    let envelope = msg.envelope().clone();
    let raw = state.sign_and_format(msg);
    match state.mailer.send(&envelope, &raw).await {
        Ok(()) => Outcome::Sent,
        Err(SendError::Transient(e)) => Outcome::Retry(e),
        Err(SendError::Permanent { reason, recipient }) => Outcome::Failed {
            reason,
            bounce: recipient,
        },
    }
}

fn render(state: &AppState, job: &OutboxJob) -> anyhow::Result<Rendered> {
    match job.kind.as_str() {
        "confirm" => {
            let payload: ConfirmPayload = serde_json::from_str(&job.payload)?;
            let token = crate::domain::token::confirmation_token(&state.secret, &payload.nonce);
            let link = state.link(&format!("/subscriptions/confirm?token={token}"));
            let ctx = minijinja::context! {
                name => payload.name,
                link => link,
                ttl_hours => state.settings.confirm_ttl_hours,
                site => state.settings.base_url.as_str(),
            };
            let render = |part: &str| {
                crate::mail::templates::render(
                    &state.templates,
                    &format!("emails/confirm/{part}"),
                    &ctx,
                )
            };
            Ok(Rendered {
                subject: render("subject.txt")?.trim().to_string(),
                text: render("body.txt")?,
                html: render("body.html")?,
            })
        }
        other => anyhow::bail!("unknown outbox kind {other:?}"),
    }
}
