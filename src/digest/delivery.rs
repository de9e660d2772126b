//! Delivery: workers claim batches of (digest, reader) rows, keep
//! `send_concurrency` SMTP sessions busy under `send_rate`, and settle each
//! row. The reader's status is read at claim time: someone who left after the
//! fan-out is skipped. Transient failures retry with backoff; a permanent
//! refusal of the address fails the row and bounces the reader.
//!
//! A row is `sending` only while leased; a crash leaves at most the claimed
//! batch to be re-sent after the lease runs out, and a restart resumes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use tokio::sync::watch;

use super::compose::UNSUBSCRIBE_MARKER;
use crate::db::{self, deliveries::DeliveryJob};
use crate::mail::message::{self, ListHeaders, PreEncoded};
use crate::mail::outbox::{backoff, MAX_ATTEMPTS};
use crate::mail::SendError;
use crate::state::{AppState, SharedState};

const POLL: Duration = Duration::from_secs(1);
const LEASE: Duration = Duration::from_secs(120);

/// Claim/send/settle loops run side by side, so one lane's claim and settle
/// (and the slow tail of its batch) overlap the other lane's sends and the
/// SMTP sessions never sit idle between batches.
const LANES: usize = 2;

pub async fn run(state: SharedState, shutdown: watch::Receiver<bool>) {
    futures_util::future::join_all((0..LANES).map(|_| lane(state.clone(), shutdown.clone()))).await;
}

async fn lane(state: SharedState, mut shutdown: watch::Receiver<bool>) {
    let mut cache = ContentCache::default();
    loop {
        if *shutdown.borrow() {
            break;
        }
        match step(&state, &mut cache, &shutdown).await {
            Ok(n) if n > 0 => {
                // There may be more: make sure the other lane is awake too.
                state.wake_deliveries.notify_one();
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "delivery step failed"),
        }
        tokio::select! {
            _ = state.wake_deliveries.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// A digest as every send uses it: the subject, and the bodies encoded
/// once with a gap for each reader's unsubscribe link.
pub struct Content {
    subject: String,
    bodies: PreEncoded,
}

/// Digest contents by id, so a chunk does not reload or re-encode them.
#[derive(Default)]
pub struct ContentCache {
    digests: HashMap<i64, Arc<Content>>,
}

impl ContentCache {
    async fn get(&mut self, state: &AppState, id: i64) -> anyhow::Result<Arc<Content>> {
        if let Some(c) = self.digests.get(&id) {
            return Ok(c.clone());
        }
        let digest = db::run(&state.pool, move |c| db::digests::find(c, id))
            .await?
            .ok_or_else(|| anyhow::anyhow!("digest {id} vanished"))?;
        let content = Arc::new(Content {
            bodies: PreEncoded::new(&digest.body_text, &digest.body_html, UNSUBSCRIBE_MARKER),
            subject: digest.subject,
        });
        if self.digests.len() > 16 {
            self.digests.clear();
        }
        self.digests.insert(id, content.clone());
        Ok(content)
    }
}

/// How long a worker holds a chunk: long enough to send all of it at
/// `send_rate` (with room to spare), so no other worker takes it over while
/// the first is still sending.
fn lease_for(send_rate: u32) -> Duration {
    match u64::try_from(db::deliveries::CHUNK) {
        Ok(chunk) if send_rate > 0 => {
            LEASE.max(Duration::from_secs(2 * chunk / u64::from(send_rate)))
        }
        _ => LEASE,
    }
}

enum Outcome {
    Sent,
    Skipped,
    Retry(String),
    Failed { reason: String, bounce: bool },
}

/// Leases one chunk, sends what is due in it and settles it. Returns how
/// many deliveries it handled; with no chunk to claim, finishes digests whose
/// chunks are all done. Once `stop` is raised no new send starts: the ones in
/// flight finish, and the chunk is settled and released with the rest still
/// queued and due, for the next start to pick up at once.
pub async fn step(
    state: &AppState,
    cache: &mut ContentCache,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<usize> {
    let now = db::now();
    let lease = now + chrono::Duration::from_std(lease_for(state.settings.send_rate))?;
    let claimed = db::run(&state.pool, move |c| {
        let Some(chunk) = db::deliveries::claim_chunk(c, now, lease)? else {
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
        return Ok(0);
    };
    let n = jobs.len();
    let content = cache.get(state, chunk.digest_id).await?;
    let content = &content;
    let results: Vec<(DeliveryJob, Outcome)> = stream::iter(jobs)
        .take_while(|_| std::future::ready(!*stop.borrow()))
        .map(|job| async move {
            let outcome = send_one(state, &job, content).await;
            (job, outcome)
        })
        .buffer_unordered(state.mailer.concurrency() * 2)
        .collect()
        .await;
    for (_, outcome) in &results {
        let counter = match outcome {
            Outcome::Sent => &state.metrics.emails_sent,
            Outcome::Retry(_) => &state.metrics.emails_retried,
            Outcome::Failed { .. } => &state.metrics.emails_failed,
            Outcome::Skipped => continue,
        };
        counter.with_label_values(&["digest"]).inc();
    }
    db::transaction(&state.pool, move |c| {
        let now = db::now();
        let digest_id = chunk.digest_id;
        let mut sent = Vec::new();
        let mut skipped = Vec::new();
        for (job, outcome) in &results {
            // This attempt is the job's attempts + 1.
            let attempt = job.attempts + 1;
            match outcome {
                Outcome::Sent => sent.push(job.subscriber_id.as_str()),
                Outcome::Skipped => skipped.push(job.subscriber_id.as_str()),
                Outcome::Retry(e) if attempt < MAX_ATTEMPTS => {
                    db::deliveries::retry_at(c, job, now + backoff(attempt), e)?;
                }
                Outcome::Retry(e) => {
                    db::deliveries::mark_failed(c, job, e)?;
                }
                Outcome::Failed { reason, bounce } => {
                    if *bounce {
                        crate::subscriptions::bounce(c, &job.subscriber_id, reason)?;
                    }
                    db::deliveries::mark_failed(c, job, reason)?;
                }
            }
        }
        db::deliveries::settle_many(c, digest_id, &sent, "sent", now)?;
        db::deliveries::settle_many(c, digest_id, &skipped, "skipped", now)?;
        db::deliveries::release_chunk(c, &chunk)?;
        for id in db::deliveries::finish_done_digests(c, now)? {
            tracing::info!(digest_id = id, "digest sent");
        }
        Ok(())
    })
    .await?;
    // An empty chunk (everything in it waits for a retry) still counts as
    // work done, so the lane looks for the next one at once.
    Ok(n.max(1))
}

async fn send_one(state: &AppState, job: &DeliveryJob, content: &Content) -> Outcome {
    let email = match (&job.email, job.status.as_deref()) {
        (Some(email), Some(crate::domain::status::CONFIRMED)) => email,
        _ => return Outcome::Skipped,
    };
    let token = crate::domain::token::unsubscribe_token(&state.secret, &job.subscriber_id);
    let unsubscribe_url = state.link(&format!("/unsubscribe?token={token}"));
    let bodies = content.bodies.bodies(&unsubscribe_url);
    let from = &state.settings.mail_from;
    let host = state.settings.base_url.host_str().unwrap_or("localhost");
    let list = ListHeaders {
        unsubscribe_https: unsubscribe_url,
        unsubscribe_mailto: format!("mailto:{}?subject=unsubscribe", from.email),
        list_id: format!("Newsletter <digest.{host}>"),
    };
    let msg = match message::build_with(
        from,
        email,
        job.name.as_deref(),
        &content.subject,
        bodies,
        Some(&list),
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_lease_outlasts_sending_a_chunk_at_the_send_rate() {
        assert_eq!(super::lease_for(0), super::LEASE);
        assert_eq!(super::lease_for(1000), super::LEASE);
        // 1,000 readers at 5 a second take 200 s.
        assert_eq!(super::lease_for(5).as_secs(), 400);
    }
}
