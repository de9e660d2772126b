//! Group commit for signups. Signups that arrive together share one
//! transaction and one commit (one WAL flush on PostgreSQL, one write lock on
//! SQLite) for the whole group, instead of five statements and a commit
//! each; [`db::signups`] writes the group's rows (one statement on
//! PostgreSQL, one insert per table on SQLite). Nobody is answered before the commit
//! that holds their rows, so an accepted signup is never lost.
//!
//! The group's confirmation emails go in already leased to this instance's
//! outbox worker and are handed to it after the commit
//! ([`crate::subscriptions::handoff::Handoff`]): no claim query comes between.
//!
//! Only the common case is grouped: an address not seen before. Anything
//! else (a known address, the same address twice in one group, a group
//! that failed) goes through [`super::signup`] in a transaction of its own,
//! which keeps every rule in one place.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::{SignupOutcome, SignupPolicy};
use crate::db::outbox::OutboxJob;
use crate::db::signups::{NewSignup, Times};
use crate::db::{self, consent, DbConnection, DbError, Pool};
use crate::domain::{MailKind, SubscriberEmail, SubscriberName};
use crate::subscriptions::handoff::{release, Handoff};

/// At most this many signups share a transaction.
const MAX_GROUP: usize = 64;
/// Signups waiting for a group before callers wait for room.
const QUEUE: usize = 4096;

/// One reader's signup, as parsed from the request.
#[derive(Clone, Debug)]
pub struct Signup {
    pub email: SubscriberEmail,
    pub name: Option<SubscriberName>,
    pub ctx: consent::Context,
    /// Whether an erased (suppressed) address is refused silently.
    pub respect_suppression: bool,
}

struct Waiting {
    signup: Signup,
    reply: oneshot::Sender<Result<SignupOutcome, DbError>>,
}

/// Hands signups to the group-commit task.
pub struct Batcher {
    queue: mpsc::Sender<Waiting>,
}

impl Batcher {
    /// Starts the task on the current runtime; it ends when the batcher is
    /// dropped and the last group has committed. `in_flight` groups commit
    /// at once (SQLite has one writer: more would only wait on its lock);
    /// while they do, new signups queue up and form the next group, so the
    /// busier the server, the larger the groups.
    pub fn start(
        pool: Pool,
        outbox: Arc<Handoff>,
        policy: SignupPolicy,
        sizes: prometheus::Histogram,
        in_flight: usize,
    ) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        let committer = Committer {
            pool,
            outbox,
            policy: Arc::new(policy),
            sizes,
        };
        tokio::spawn(collect(Arc::new(committer), in_flight, rx));
        Self { queue }
    }

    /// Records the signup; returns once it is committed.
    pub async fn signup(&self, signup: Signup) -> Result<SignupOutcome, DbError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Waiting { signup, reply })
            .await
            .map_err(|_| DbError::Join("signup queue closed".into()))?;
        answer
            .await
            .map_err(|_| DbError::Join("signup group dropped".into()))?
    }
}

/// What committing a group needs.
struct Committer {
    pool: Pool,
    outbox: Arc<Handoff>,
    policy: Arc<SignupPolicy>,
    sizes: prometheus::Histogram,
}

async fn collect(committer: Arc<Committer>, in_flight: usize, mut rx: mpsc::Receiver<Waiting>) {
    let slots = Arc::new(Semaphore::new(in_flight.max(1)));
    while let Some(first) = rx.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(w) => group.push(w),
                Err(_) => break,
            }
        }
        let ctx = committer.clone();
        tokio::spawn(async move {
            commit(&ctx, group).await;
            drop(slot);
        });
    }
}

async fn commit(ctx: &Committer, group: Vec<Waiting>) {
    let signups: Vec<Signup> = group.iter().map(|w| w.signup.clone()).collect();
    let lease = ctx.outbox.lease(db::now());
    let grouped = {
        let policy = ctx.policy.clone();
        db::transaction(&ctx.pool, move |c| insert_new(c, &signups, &policy, lease)).await
    };
    let outcomes = match grouped {
        Ok((outcomes, jobs)) => {
            let refused = ctx.outbox.give(jobs);
            release(&ctx.pool, &ctx.outbox, refused).await;
            outcomes
        }
        // No database: everyone in the group hears so now (503) instead of
        // each waiting out the pool's timeout again, one after the other.
        Err(e @ (DbError::Unavailable(_) | DbError::Lost(_))) => {
            crate::telemetry::database_unavailable(&e);
            // A lost connection may have lost only the commit's answer: the
            // rows, if written, are leased to our worker, who never got them.
            if let (DbError::Lost(_), Some(lease)) = (&e, lease) {
                ctx.outbox.orphaned(lease);
            }
            for waiting in group {
                let _ = waiting.reply.send(Err(DbError::Down(e.to_string())));
            }
            return;
        }
        // Anything else (a race, one odd row) is not the others' fault: each
        // of them gets a transaction of their own.
        Err(e) => {
            tracing::warn!(error = %e, size = group.len(), "signup group failed; retrying one by one");
            vec![None; group.len()]
        }
    };
    let together = outcomes.iter().filter(|o| o.is_some()).count();
    if together > 0 {
        ctx.sizes.observe(together as f64);
    }
    for (waiting, outcome) in group.into_iter().zip(outcomes) {
        let result = match outcome {
            Some(outcome) => Ok(outcome),
            None => {
                let result = alone(&ctx.pool, waiting.signup, &ctx.policy).await;
                if matches!(result, Ok(SignupOutcome::Queued)) {
                    ctx.outbox.wake();
                }
                result
            }
        };
        // The caller may have gone (client hung up); the rows stay.
        let _ = waiting.reply.send(result);
    }
}

/// A signup in its own transaction, the way every case but the first is
/// handled. Two first signups of one address race on the unique key; the
/// loser runs again and finds the winner's row.
pub async fn alone(
    pool: &Pool,
    signup: Signup,
    policy: &Arc<SignupPolicy>,
) -> Result<SignupOutcome, DbError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (s, policy) = (signup.clone(), policy.clone());
        let result = db::transaction(pool, move |c| {
            super::signup(
                c,
                &s.email,
                s.name.as_ref(),
                &s.ctx,
                &policy,
                s.respect_suppression,
            )
        })
        .await;
        match result {
            Ok(None) if attempt < 3 => continue,
            Err(e) if e.is_unique_violation() && attempt < 3 => continue,
            // Erased under us three times running: answer as for any
            // address (the answer never tells), with nothing sent.
            Ok(outcome) => return Ok(outcome.unwrap_or(SignupOutcome::Throttled)),
            Err(e) => return Err(e),
        }
    }
}

/// An outcome per signup (`None` where it must go alone) and the outbox
/// jobs leased to this instance's worker.
type Inserted = (Vec<Option<SignupOutcome>>, Vec<OutboxJob>);

/// Inserts the readers whose address is new, with their consent event,
/// token and confirmation email ([`db::signups::insert`]). With `lease`,
/// the emails go in leased to this instance's outbox worker until then.
fn insert_new(
    conn: &mut DbConnection,
    signups: &[Signup],
    policy: &SignupPolicy,
    lease: Option<chrono::NaiveDateTime>,
) -> db::QueryResult<Inserted> {
    let now = db::now();
    let mut outcomes = vec![None; signups.len()];
    let mut seen = HashSet::new();
    let mut fresh = Vec::new();
    for (i, s) in signups.iter().enumerate() {
        let key = s.email.key();
        if !seen.insert(key.clone()) {
            continue; // the same address twice: the second goes alone
        }
        if s.respect_suppression && db::suppressions::covers(conn, &policy.secret, &s.email)? {
            outcomes[i] = Some(SignupOutcome::Suppressed);
            continue;
        }
        let name = s.name.as_ref().map(SubscriberName::as_str);
        let (token_hash, payload) = super::new_confirmation(policy, name);
        let id = crate::domain::new_subscriber_id();
        fresh.push((i, id, key, token_hash, payload));
    }
    let rows: Vec<NewSignup> = fresh
        .iter()
        .map(|(i, id, key, token_hash, payload)| NewSignup {
            id,
            email: signups[*i].email.as_str(),
            email_key: key,
            name: signups[*i].name.as_ref().map(SubscriberName::as_str),
            ctx: &signups[*i].ctx,
            token_hash,
            payload,
        })
        .collect();
    let times = Times {
        now,
        expires_at: now + policy.confirm_ttl,
        lease_until: lease,
    };
    let outbox_ids = db::signups::insert(conn, &rows, times)?;
    let mut jobs = Vec::new();
    for (i, id, _, _, payload) in &fresh {
        // Not inserted: a known address, which goes alone.
        let Some(&outbox_id) = outbox_ids.get(id) else {
            continue;
        };
        outcomes[*i] = Some(SignupOutcome::Queued);
        if lease.is_some() {
            jobs.push(OutboxJob {
                id: outbox_id,
                kind: MailKind::Confirm.to_string(),
                subscriber_id: Some(id.clone()),
                recipient: signups[*i].email.as_str().to_string(),
                payload: payload.clone(),
                attempts: times.outbox_row().1,
            });
        }
    }
    Ok((outcomes, jobs))
}
