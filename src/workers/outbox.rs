//! The outbox on the worker skeleton: confirmation emails. A batch is a set
//! of leased outbox rows, an item one row.
//!
//! Signups that group-commit hand their rows over directly (see
//! [`crate::subscriptions::handoff::Handoff`]); everything else is claimed: at once when a request queued
//! mail, and every second for retries that came due and rows other
//! instances queued. A row whose lease ran out (its worker died mid-send)
//! is claimed again (looked for every 30 s, and whenever the worker is
//! woken), so a crash can repeat at most the sends that were in flight,
//! and never loses one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Mutex as AsyncMutex};
use tokio::time::Instant;

use super::retry::{backoff, MAX_ATTEMPTS};
use super::{Claimed, Handed, Settled, Shape, Work};
use crate::db::{self, outbox::OutboxJob, DbConnection, QueryResult};
use crate::domain::MailKind;
use crate::mail::message::{self, Rendered};
use crate::mail::SendError;
use crate::state::{AppState, SharedState};
use crate::subscriptions::ConfirmPayload;

/// How often the worker looks for rows whose lease ran out (their worker
/// died) when nothing woke it. The look reads every leased row's index
/// entry, the dead ones of rows sent since the last vacuum included, so
/// once a second it grew with the signups.
const RECLAIM: Duration = Duration::from_secs(30);
const BATCH: usize = 200;

pub async fn run(state: SharedState, shutdown: watch::Receiver<bool>) {
    let work = Arc::new(Outbox::new(&state));
    super::run(work, state, 1, shutdown).await;
}

pub struct Outbox {
    lease: Duration,
    /// Handed-over jobs: the receiver, and what `woken` took from it.
    handed: AsyncMutex<Option<mpsc::Receiver<OutboxJob>>>,
    taken: std::sync::Mutex<Vec<OutboxJob>>,
    /// Whether the next claim looks for rows whose lease ran out, and when
    /// it must look at the latest.
    reclaim: AtomicBool,
    next_reclaim: std::sync::Mutex<Instant>,
}

pub enum Outcome {
    Sent,
    Retry(String),
    Failed { reason: String, bounce: bool },
}

impl Outbox {
    fn new(state: &AppState) -> Self {
        Self {
            lease: Duration::from_secs(u64::from(state.settings.lease_seconds)),
            handed: AsyncMutex::new(state.outbox.attach()),
            taken: std::sync::Mutex::default(),
            reclaim: AtomicBool::new(true),
            next_reclaim: std::sync::Mutex::new(Instant::now()),
        }
    }

    /// Handed-over jobs ready now, up to a batch.
    async fn handed_over(&self) -> Vec<OutboxJob> {
        let mut jobs = self
            .taken
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        if let Some(rx) = self.handed.lock().await.as_mut() {
            while jobs.len() < BATCH {
                let Ok(job) = rx.try_recv() else { break };
                jobs.push(job);
            }
        }
        jobs
    }

    /// Whether this claim should look for expired leases too: when woken
    /// or every [`RECLAIM`], once the database has been reachable for the
    /// takeover grace (until then the look stays due).
    fn reclaim_now(&self, reach: &db::faults::Reach) -> bool {
        if !reach.may_take_over() {
            return false;
        }
        let Ok(mut next) = self.next_reclaim.lock() else {
            return false;
        };
        if self.reclaim.swap(false, Ordering::AcqRel) || Instant::now() >= *next {
            *next = Instant::now() + RECLAIM;
            return true;
        }
        false
    }
}

impl Work for Outbox {
    /// The ids of the batch's rows, whose lease the settler renews.
    type Batch = Vec<i64>;
    type Item = OutboxJob;
    type Outcome = Outcome;

    /// Confirmation emails are not paced by the window: a batch may be
    /// sent in full before its settle commits.
    fn shape(&self) -> Shape {
        Shape {
            name: "outbox",
            lease: self.lease,
            window: BATCH,
            ordered: false,
        }
    }

    async fn claim(&self, state: &SharedState) -> anyhow::Result<Claimed<Self>> {
        let orphans = state.outbox.take_orphans();
        if !orphans.is_empty() {
            let leases = orphans.clone();
            let released = db::run(&state.pool, move |c| {
                db::outbox::release_leased_until(c, &leases)
            })
            .await;
            if released.is_err() {
                state.outbox.keep_orphans(orphans);
            }
            released?;
        }
        let mut jobs = self.handed_over().await;
        if jobs.is_empty() {
            let now = db::now();
            let until = now + chrono::Duration::from_std(self.lease)?;
            let reclaim = self.reclaim_now(&state.db_reach);
            jobs = db::run(&state.pool, move |c| {
                db::outbox::claim(c, now, until, BATCH as i64, reclaim)
            })
            .await?;
        }
        if jobs.is_empty() {
            return Ok(None);
        }
        Ok(Some((jobs.iter().map(|j| j.id).collect(), jobs)))
    }

    async fn send(&self, state: &AppState, _batch: &Vec<i64>, job: &OutboxJob) -> Outcome {
        let outcome = send_one(state, job).await;
        let kind = job.kind.as_str();
        match &outcome {
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
        outcome
    }

    fn settle(
        &self,
        c: &mut DbConnection,
        batch: &Vec<i64>,
        done: &[(OutboxJob, Outcome)],
        renew: Option<chrono::NaiveDateTime>,
        _in_order: bool,
    ) -> QueryResult<Settled> {
        let go_on = db::in_transaction(c, |c| settle_in(c, batch, done, renew))?;
        Ok(if go_on { Settled::Go } else { Settled::Stop })
    }

    /// Rows of the batch still leased (a stop came before they were sent)
    /// go back to the queue.
    fn release(&self, c: &mut DbConnection, batch: &Vec<i64>) -> QueryResult<()> {
        db::outbox::release(c, batch).map(drop)
    }

    async fn woken(&self, state: &SharedState) {
        let mut handed = self.handed.lock().await;
        tokio::select! {
            Some(job) = recv(&mut handed) => {
                if let Ok(mut taken) = self.taken.lock() {
                    taken.push(job);
                }
            }
            _ = state.outbox.woken() => {
                self.reclaim.store(true, Ordering::Release);
            }
        }
    }

    fn more(&self, _state: &AppState) {}

    /// Stopping: what was handed over but not sent goes back to the queue.
    async fn stopped(&self, state: &SharedState) {
        state.outbox.close();
        let mut left: Vec<i64> = self
            .taken
            .lock()
            .map(|mut t| t.drain(..).map(|j| j.id).collect())
            .unwrap_or_default();
        if let Some(rx) = self.handed.lock().await.as_mut() {
            rx.close();
            while let Ok(job) = rx.try_recv() {
                left.push(job.id);
            }
        }
        crate::subscriptions::handoff::release(&state.pool, &state.outbox, left).await;
    }
}

/// The outbox's settle, inside its transaction.
fn settle_in(
    c: &mut DbConnection,
    batch: &[i64],
    done: &[(OutboxJob, Outcome)],
    renew: Option<chrono::NaiveDateTime>,
) -> QueryResult<bool> {
    let now = db::now();
    let sent: Vec<i64> = done
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Sent))
        .map(|(job, _)| job.id)
        .collect();
    db::outbox::mark_sent(c, &sent, now)?;
    for (job, outcome) in done {
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
    if let Some(until) = renew {
        db::outbox::renew(c, batch, until)?;
    }
    Ok(true)
}

async fn recv(rx: &mut Option<mpsc::Receiver<OutboxJob>>) -> Option<OutboxJob> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
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
    let built = message::build(
        &state.settings.mail_from,
        &job.recipient,
        name.as_deref(),
        &rendered,
        None,
    );
    let tag = job
        .subscriber_id
        .as_ref()
        .map(|id| crate::domain::verp::Tag {
            email: crate::domain::verp::Email::Confirmation(job.id),
            subscriber_id: id.clone(),
        });
    match super::hand_over_as(state, built, tag).await {
        Handed::Sent => Outcome::Sent,
        Handed::Unbuildable(reason) => Outcome::Failed {
            reason,
            bounce: false,
        },
        // A refusal of the sender or content is not the reader's fault:
        // retried with backoff like a transient failure.
        Handed::Failed(SendError::Transient(e) | SendError::Refused(e)) => Outcome::Retry(e),
        Handed::Failed(SendError::Recipient(reason)) => Outcome::Failed {
            reason,
            bounce: true,
        },
    }
}

fn render(state: &AppState, job: &OutboxJob) -> anyhow::Result<Rendered> {
    // The kind stays text on the claimed row: a kind this build does not
    // know fails its one row here instead of the whole claim.
    match MailKind::parse(&job.kind) {
        Ok(MailKind::Confirm) => {
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
        Ok(MailKind::Welcome) => render_welcome(state, job),
        Err(_) => anyhow::bail!("unknown outbox kind {:?}", job.kind),
    }
}

/// templates/emails/welcome: the reader's name, their unsubscribe link, the
/// archive (when public) and the signup page.
fn render_welcome(state: &AppState, job: &OutboxJob) -> anyhow::Result<Rendered> {
    let payload: serde_json::Value = serde_json::from_str(&job.payload)?;
    let subscriber = job.subscriber_id.as_deref().unwrap_or_default();
    let token = crate::domain::token::unsubscribe_token(&state.secret, subscriber);
    let ctx = minijinja::context! {
        name => payload.get("name").and_then(|n| n.as_str()),
        unsubscribe_url => state.link(&format!("/unsubscribe?token={token}")),
        preferences_url => state.link(&format!(
            "/preferences?token={}",
            crate::domain::token::preferences_token(&state.secret, subscriber, crate::domain::token::day_of(crate::db::now()))
        )),
        archive_url => if state.settings.archive_public { state.link("/archive") } else { String::new() },
        signup_url => state.link("/"),
    };
    let render = |part: &str| {
        crate::mail::templates::render(&state.templates, &format!("emails/welcome/{part}"), &ctx)
    };
    Ok(Rendered {
        subject: render("subject.txt")?.trim().to_string(),
        text: render("body.txt")?,
        html: render("body.html")?,
    })
}
