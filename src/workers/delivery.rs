//! Digest delivery on the worker skeleton: a batch is a leased chunk of a
//! digest's readers (see [`crate::db::deliveries`]), an item one reader's
//! send. Readers are read at claim time, so someone who left after the
//! digest was queued is not sent it. Outcomes are committed in the
//! chunk's order ([`Shape::ordered`]): a commit of sends moves the chunk's
//! cursor, and only exceptions write a row.
//!
//! Outcomes (see [`SendError`]): sent; a transient failure retries with
//! backoff; a refusal of the recipient fails the delivery and bounces the
//! reader; a refusal of the sender, the content or the session fails the
//! attempt only (the delivery retries, the reader is untouched). After
//! [`BREAKER`] refusals in a row on this instance the digest is paused
//! with the reason, until an operator resumes it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::retry::{backoff, MAX_ATTEMPTS};
use super::{Claimed, Handed, Settled, Shape, Work};
use crate::db::deliveries::{Chunk, Counts, DeliveryJob, Move, Update};
use crate::db::{self, DbConnection, QueryResult};
use crate::digest::compose::{FEEDBACK_MARKER, PREFERENCES_MARKER, UNSUBSCRIBE_MARKER};
use crate::domain::{DeliveryStatus, SubscriberStatus};
use crate::mail::message::{self, ListHeaders, PreEncoded};
use crate::mail::SendError;
use crate::state::{AppState, SharedState};

/// Claim/send/settle loops side by side, so one lane's claim and settle
/// (and the slow tail of its chunk) overlap the other lane's sends.
const LANES: usize = 2;
/// Refusals of the sender or content in a row (no send between them went
/// through) after which a digest is paused.
pub const BREAKER: u32 = 10;

pub async fn run(state: SharedState, shutdown: watch::Receiver<bool>) {
    let work = Arc::new(Delivery::new(&state));
    super::run(work, state, LANES, shutdown).await;
}

pub struct Delivery {
    shape: Shape,
    /// Each digest's content per section choice (`None`: the digest's
    /// own); a choice with no edition of the digest has `None`.
    contents: Mutex<HashMap<(i64, Option<i64>), Edition>>,
    breaker: Mutex<HashMap<i64, Streak>>,
    paused: prometheus::IntCounterVec,
}

/// Refusals in a row of one digest, and the last reply.
#[derive(Default)]
struct Streak {
    refusals: u32,
    reason: String,
}

/// A digest as every send uses it: the subject, and the bodies encoded
/// once with a gap for each reader's unsubscribe link and feedback token.
pub struct Content {
    subject: String,
    bodies: PreEncoded,
}

/// A digest's content as one section choice gets it; `None`: the choice
/// matches nothing in it.
type Edition = Option<Arc<Content>>;

/// A leased chunk and the content its sends use.
pub struct Leased {
    chunk: Chunk,
    /// The digest's editions its readers get, by section choice.
    editions: HashMap<Option<i64>, Edition>,
    /// The fresh readers read at claim, in order, and where each is in it:
    /// a run's cursor moves from the one before its first.
    fresh: Vec<String>,
    place: HashMap<String, usize>,
    /// Of those, how many have no outcome committed yet: none left at
    /// release means the chunk's range is passed.
    fresh_left: AtomicUsize,
    /// When a settle last read the digest's status.
    status_read: Mutex<Instant>,
    /// The breaker's reason, once it tripped while this chunk was being
    /// sent: every later settle of the chunk pauses the digest (again, if
    /// the first try failed) and stops, without waiting for a status look.
    halt: Mutex<Option<String>>,
}

/// How often settles look whether the digest was paused or cancelled.
const STATUS_EVERY: Duration = Duration::from_millis(200);

pub enum Outcome {
    Sent,
    Skipped,
    Retry(String),
    Refused(String),
    Failed { reason: String, bounce: bool },
}

impl Delivery {
    pub fn new(state: &AppState) -> Self {
        Self {
            shape: Shape {
                name: "delivery",
                lease: Duration::from_secs(u64::from(state.settings.lease_seconds)),
                // What a crash may repeat: the sends in flight, and as many
                // finished but not yet committed.
                window: super::SENDS_PER_CONNECTION * state.mailer.concurrency(),
                ordered: true,
            },
            contents: Mutex::default(),
            breaker: Mutex::default(),
            paused: state.metrics.digests_paused.clone(),
        }
    }

    /// The digest as readers with section choice `choice` get it, loaded
    /// once per instance; `None` when the choice matches none of it.
    async fn content(
        &self,
        state: &AppState,
        id: i64,
        choice: Option<i64>,
    ) -> anyhow::Result<Option<Arc<Content>>> {
        if let Some(c) = self
            .contents
            .lock()
            .ok()
            .and_then(|m| m.get(&(id, choice)).cloned())
        {
            return Ok(c);
        }
        let (digest, edition) = db::run(&state.pool, move |c| {
            let edition = match choice {
                Some(choice) => db::audience::edition(c, id, choice)?.map(Some),
                None => Some(None),
            };
            Ok((db::digests::find(c, id)?, edition))
        })
        .await?;
        let digest = digest.ok_or_else(|| anyhow::anyhow!("digest {id} vanished"))?;
        let content = edition.map(|edition| {
            let own = edition.unwrap_or_default();
            let text = own.body_text.as_deref().unwrap_or(&digest.body_text);
            let html = own.body_html.as_deref().unwrap_or(&digest.body_html);
            Arc::new(Content {
                bodies: PreEncoded::new(
                    text,
                    html,
                    &[UNSUBSCRIBE_MARKER, FEEDBACK_MARKER, PREFERENCES_MARKER],
                ),
                subject: own.subject.unwrap_or(digest.subject),
            })
        });
        if let Ok(mut map) = self.contents.lock() {
            if map.len() > 64 {
                map.clear();
            }
            map.insert((id, choice), content.clone());
        }
        Ok(content)
    }

    /// Counts a send's result towards the digest's breaker.
    fn observe(&self, digest_id: i64, outcome: &Outcome) {
        let Ok(mut streaks) = self.breaker.lock() else {
            return;
        };
        match outcome {
            Outcome::Sent => {
                streaks.remove(&digest_id);
            }
            Outcome::Refused(reason) => {
                let streak = streaks.entry(digest_id).or_default();
                streak.refusals += 1;
                streak.reason.clone_from(reason);
            }
            _ => {}
        }
    }

    /// The reason to pause the digest, once, when its streak reached the
    /// breaker.
    fn tripped(&self, digest_id: i64) -> Option<String> {
        let mut streaks = self.breaker.lock().ok()?;
        if streaks.get(&digest_id)?.refusals < BREAKER {
            return None;
        }
        streaks.remove(&digest_id).map(|s| s.reason)
    }
}

impl Delivery {
    /// One run's settle: the common case (fresh sends that all went out)
    /// as one statement on its own, anything else in a transaction.
    fn settle_run(
        &self,
        c: &mut DbConnection,
        batch: &Leased,
        done: &[(DeliveryJob, Outcome)],
        renew: Option<chrono::NaiveDateTime>,
        in_order: bool,
        tripped: Option<String>,
    ) -> QueryResult<Settled> {
        let plain = in_order
            && tripped.is_none()
            && done
                .iter()
                .all(|(job, o)| !job.retry && matches!(o, Outcome::Sent));
        if !plain {
            return db::in_transaction(c, |c| {
                self.settle_in(c, batch, done, renew, in_order, tripped)
            });
        }
        Ok(
            match db::deliveries::progress(c, &batch.chunk, &batch.counts(done, true), renew)? {
                Update::Held => batch.go_on(c, renew)?,
                Update::Lost => Settled::Stop,
                Update::OutOfTurn => Settled::OutOfTurn,
            },
        )
    }

    /// The general settle, inside its transaction: every kind of outcome,
    /// and the breaker's pause. The chunk's row first: a commit out of
    /// turn writes nothing else.
    fn settle_in(
        &self,
        c: &mut DbConnection,
        batch: &Leased,
        done: &[(DeliveryJob, Outcome)],
        renew: Option<chrono::NaiveDateTime>,
        in_order: bool,
        tripped: Option<String>,
    ) -> QueryResult<Settled> {
        let chunk = &batch.chunk;
        match db::deliveries::progress(c, chunk, &batch.counts(done, in_order), renew)? {
            Update::Held => {}
            Update::Lost => return Ok(Settled::Stop),
            Update::OutOfTurn => return Ok(Settled::OutOfTurn),
        }
        write_exceptions(c, done, in_order)?;
        if let Some(reason) = tripped {
            let reason = crate::domain::email::mask_in(&reason);
            if db::digests::pause(c, chunk.digest_id, &reason)? {
                self.paused.with_label_values(&["breaker"]).inc();
                tracing::warn!(digest_id = chunk.digest_id, %reason, "digest paused: the relay keeps refusing the sender or the content");
            }
            return Ok(Settled::Stop);
        }
        batch.go_on(c, renew)
    }
}

impl Leased {
    /// The part of `done` after the chunk's cursor when the cursor is on
    /// one of its readers (`None`: it is not, the run is simply not next).
    fn after_cursor<'a>(
        &self,
        c: &mut DbConnection,
        done: &'a [(DeliveryJob, Outcome)],
    ) -> QueryResult<Option<&'a [(DeliveryJob, Outcome)]>> {
        let Some(cursor) = db::deliveries::cursor_of(c, &self.chunk)? else {
            return Ok(None);
        };
        Ok(done
            .iter()
            .position(|(job, _)| !job.retry && job.subscriber_id == cursor)
            .map(|i| &done[i + 1..]))
    }

    /// Keeps a reason the breaker gave, and returns the one in force.
    fn halted(&self, tripped: Option<String>) -> Option<String> {
        let mut halt = self.halt.lock().ok()?;
        if tripped.is_some() {
            *halt = tripped;
        }
        halt.clone()
    }

    /// What a run of outcomes adds to the chunk's counters, and (in
    /// order) where it moves the cursor: from the fresh reader before its
    /// first to its last.
    fn counts(&self, done: &[(DeliveryJob, Outcome)], in_order: bool) -> Counts {
        let mut counts = Counts::default();
        for (job, outcome) in done {
            match outcome {
                Outcome::Sent => counts.sent += 1,
                Outcome::Skipped => counts.skipped += 1,
                Outcome::Retry(_) | Outcome::Refused(_) if job.attempts + 1 < MAX_ATTEMPTS => {}
                Outcome::Retry(_) | Outcome::Refused(_) | Outcome::Failed { .. } => {
                    counts.failed += 1
                }
            }
        }
        let mut fresh = done.iter().filter(|(job, _)| !job.retry);
        if let (true, Some((first, _))) = (in_order, fresh.next()) {
            let to = fresh.next_back().map_or(first, |(last, _)| last);
            let from = match self.place.get(&first.subscriber_id) {
                Some(&i) if i > 0 => Some(self.fresh[i - 1].clone()),
                _ => self.chunk.cursor.clone(),
            };
            counts.cursor = Some(Move {
                from,
                to: to.subscriber_id.clone(),
            });
        }
        counts
    }

    /// Whether sending goes on after a settle: a pause or cancel (from any
    /// instance) stops the sends that start after the next look, every
    /// [`STATUS_EVERY`] and at each renewal.
    fn go_on(
        &self,
        c: &mut DbConnection,
        renew: Option<chrono::NaiveDateTime>,
    ) -> QueryResult<Settled> {
        let look = renew.is_some() || self.status_due();
        Ok(
            match look && !db::digests::is_sending(c, self.chunk.digest_id)? {
                true => Settled::Stop,
                false => Settled::Go,
            },
        )
    }

    /// Whether it is time to look at the digest's status again.
    fn status_due(&self) -> bool {
        let Ok(mut last) = self.status_read.lock() else {
            return true;
        };
        if last.elapsed() < STATUS_EVERY {
            return false;
        }
        *last = Instant::now();
        true
    }
}

impl Work for Delivery {
    type Batch = Leased;
    type Item = DeliveryJob;
    type Outcome = Outcome;

    fn shape(&self) -> Shape {
        self.shape
    }

    async fn claim(&self, state: &SharedState) -> anyhow::Result<Claimed<Self>> {
        let now = db::now();
        let until = now + chrono::Duration::from_std(self.shape.lease)?;
        let lease_id = uuid::Uuid::new_v4().simple().to_string();
        let take_over = state.db_reach.may_take_over();
        let claimed = db::run(&state.pool, move |c| {
            let claimed = db::in_transaction(c, |c| {
                db::deliveries::claim_chunk(c, now, until, &lease_id, take_over)
            })?;
            let Some(chunk) = claimed else {
                for id in db::deliveries::finish_done_digests(c, now)? {
                    tracing::info!(digest_id = id, "digest sent");
                }
                return Ok(None);
            };
            let jobs = db::deliveries::due_in(c, &chunk, now)?;
            Ok(Some((chunk, jobs)))
        })
        .await?;
        let Some((chunk, jobs)) = claimed else {
            return Ok(None);
        };
        let mut editions = HashMap::new();
        for job in &jobs {
            if let std::collections::hash_map::Entry::Vacant(slot) = editions.entry(job.choice_id) {
                slot.insert(self.content(state, chunk.digest_id, job.choice_id).await?);
            }
        }
        let status_read = Mutex::new(Instant::now());
        let fresh: Vec<String> = jobs
            .iter()
            .filter(|j| !j.retry)
            .map(|j| j.subscriber_id.clone())
            .collect();
        let fresh_left = AtomicUsize::new(fresh.len());
        let place = fresh
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i))
            .collect();
        Ok(Some((
            Leased {
                chunk,
                editions,
                fresh,
                place,
                fresh_left,
                status_read,
                halt: Mutex::new(None),
            },
            jobs,
        )))
    }

    async fn send(&self, state: &AppState, batch: &Leased, job: &DeliveryJob) -> Outcome {
        // A reader whose sections match nothing in the digest (they
        // changed them since it was queued) is skipped.
        let outcome = match batch.editions.get(&job.choice_id).cloned().flatten() {
            Some(content) => send_one(state, job, &content).await,
            None => Outcome::Skipped,
        };
        let counter = match &outcome {
            Outcome::Sent => Some(&state.metrics.emails_sent),
            Outcome::Retry(_) => Some(&state.metrics.emails_retried),
            Outcome::Refused(_) => Some(&state.metrics.emails_refused),
            Outcome::Failed { .. } => Some(&state.metrics.emails_failed),
            Outcome::Skipped => None,
        };
        if let Some(counter) = counter {
            counter.with_label_values(&["digest"]).inc();
        }
        self.observe(batch.chunk.digest_id, &outcome);
        outcome
    }

    fn settle(
        &self,
        c: &mut DbConnection,
        batch: &Leased,
        done: &[(DeliveryJob, Outcome)],
        renew: Option<chrono::NaiveDateTime>,
        in_order: bool,
    ) -> QueryResult<Settled> {
        let tripped = batch.halted(self.tripped(batch.chunk.digest_id));
        let mut settled = self.settle_run(c, batch, done, renew, in_order, tripped.clone())?;
        if settled == Settled::OutOfTurn && in_order {
            // A failed commit whose answer was lost may have committed the
            // front of this run (it was tried again with more behind it):
            // what is up to the chunk's cursor is done, the rest goes now.
            if let Some(rest) = batch.after_cursor(c, done)? {
                settled = match rest.is_empty() {
                    true => Settled::Go,
                    false => self.settle_run(c, batch, rest, renew, in_order, tripped)?,
                };
            }
        }
        if settled != Settled::OutOfTurn {
            let fresh = done.iter().filter(|(job, _)| !job.retry).count();
            let _ = batch
                .fresh_left
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                    Some(left.saturating_sub(fresh))
                });
        }
        Ok(settled)
    }

    fn release(&self, c: &mut DbConnection, batch: &Leased) -> QueryResult<()> {
        let passed = batch.fresh_left.load(Ordering::Acquire) == 0;
        db::deliveries::release_chunk(c, &batch.chunk, passed, db::now())?;
        for id in db::deliveries::finish_done_digests(c, db::now())? {
            tracing::info!(digest_id = id, "digest sent");
        }
        Ok(())
    }

    async fn woken(&self, state: &SharedState) {
        state.wake_deliveries.notified().await
    }

    fn more(&self, state: &AppState) {
        state.wake_deliveries.notify_one();
    }
}

/// Writes each outcome that is an exception to its reader's delivery row
/// (and bounces readers whose address was refused). A fresh send that went
/// out is a row only when it is not in order (after a gap the cursor
/// cannot cross).
fn write_exceptions(
    c: &mut DbConnection,
    done: &[(DeliveryJob, Outcome)],
    in_order: bool,
) -> QueryResult<()> {
    let now = db::now();
    for (job, outcome) in done {
        // This attempt is the job's attempts + 1.
        let attempt = job.attempts + 1;
        let row = match outcome {
            Outcome::Sent => (job.retry || !in_order).then_some((DeliveryStatus::Sent, now, None)),
            Outcome::Skipped => Some((DeliveryStatus::Skipped, now, None)),
            Outcome::Retry(e) | Outcome::Refused(e) if attempt < MAX_ATTEMPTS => Some((
                DeliveryStatus::Queued,
                now + backoff(attempt),
                Some(e.as_str()),
            )),
            Outcome::Retry(e) | Outcome::Refused(e) => {
                Some((DeliveryStatus::Failed, now, Some(e.as_str())))
            }
            Outcome::Failed { reason, bounce } => {
                if *bounce {
                    crate::subscriptions::bounce(c, &job.subscriber_id, reason)?;
                }
                Some((DeliveryStatus::Failed, now, Some(reason.as_str())))
            }
        };
        if let Some((status, at, error)) = row {
            db::deliveries::record(c, job, status, at, error)?;
        }
    }
    Ok(())
}

async fn send_one(state: &AppState, job: &DeliveryJob, content: &Content) -> Outcome {
    let email = match (&job.email, job.status) {
        (Some(email), Some(SubscriberStatus::Confirmed)) => email,
        _ => return Outcome::Skipped,
    };
    let token = crate::domain::token::unsubscribe_token(&state.secret, &job.subscriber_id);
    let unsubscribe_url = state.link(&format!("/unsubscribe?token={token}"));
    let feedback =
        crate::domain::token::feedback_token(&state.secret, job.digest_id, &job.subscriber_id);
    let day = crate::domain::token::day_of(db::now());
    let preferences =
        crate::domain::token::preferences_token(&state.secret, &job.subscriber_id, day);
    let preferences_url = state.link(&format!("/preferences?token={preferences}"));
    let bodies = content
        .bodies
        .bodies(&[&unsubscribe_url, &feedback, &preferences_url]);
    let from = &state.settings.mail_from;
    let host = state.settings.base_url.host_str().unwrap_or("localhost");
    let list = ListHeaders {
        unsubscribe_https: unsubscribe_url,
        unsubscribe_mailto: state.mailto_unsubscribe(&job.subscriber_id),
        list_id: format!("Newsletter <digest.{host}>"),
    };
    let built = message::build_with(
        from,
        email,
        job.name.as_deref(),
        &content.subject,
        bodies,
        Some(&list),
    );
    let tag = crate::domain::verp::Tag {
        email: crate::domain::verp::Email::Digest(job.digest_id),
        subscriber_id: job.subscriber_id.clone(),
    };
    match super::hand_over_as(state, built, Some(tag)).await {
        Handed::Sent => Outcome::Sent,
        Handed::Unbuildable(reason) => Outcome::Failed {
            reason,
            bounce: false,
        },
        Handed::Failed(SendError::Transient(e)) => Outcome::Retry(e),
        Handed::Failed(SendError::Refused(e)) => Outcome::Refused(e),
        Handed::Failed(SendError::Recipient(reason)) => Outcome::Failed {
            reason,
            bounce: true,
        },
    }
}
