//! Workers: the one claim/send/settle skeleton every kind of mail work runs
//! on ([`outbox`]: confirmation emails; [`delivery`]: digests), with one
//! retry rule ([`retry`]). Each kind plugs in its claim, send, settle and
//! release ([`Work`]); the loop, the window, the lease renewal and the
//! settle retries are written once, here.
//!
//! A lane claims a batch (leased to it in the database), sends its items
//! `send_concurrency` at a time and settles outcomes as they come: a
//! settler writes whatever finished since its last commit in one
//! transaction. Three promises follow from the shape:
//! - **Bounded repeats after a crash.** A send takes a place in a window
//!   before it starts and gives it back only once its outcome is committed,
//!   so at most [`Shape::window`] sends of an instance (all its lanes
//!   together) are ever unrecorded: after kill -9 those are all a restart
//!   can repeat.
//! - **A live worker's work never looks abandoned.** The settler renews the
//!   batch's lease every quarter lease whether or not anything finished, so
//!   no SMTP speed, `send_rate` or batch size outlasts it; a dead worker's
//!   lease runs out within `lease_seconds`. A lease that ran out while the
//!   database was away is taken over only once this process has reached
//!   the database again for a grace ([`db::faults::Reach`]): its holder
//!   could not renew either, and settles first.
//! - **A sent mail is never sent again because its settle failed.** A failed
//!   settle keeps its outcomes and tries again until the database is back;
//!   meanwhile the window fills and sending waits.

pub mod delivery;
pub mod outbox;
pub mod retry;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use futures_util::stream::{self, StreamExt};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::db::{self, DbConnection, QueryResult};
use crate::state::{AppState, SharedState};

/// How many sends of a batch may be under way (sending, waiting for a
/// connection, or finished and waiting for their commit) per SMTP
/// connection. Ordered work commits one run at a time, so its rate is the
/// outcomes one commit carries over a commit's latency: with 2 per
/// connection a digest's commits carried 2.9 outcomes each and the window,
/// not the relay, set the pace (bench/README.md, session 8).
pub const SENDS_PER_CONNECTION: usize = 4;

/// How often an idle lane looks for work when nothing wakes it.
const POLL: Duration = Duration::from_secs(1);
/// How long a stopping worker keeps trying to settle against a database
/// that is away before it gives up (the lease then runs out, and at most
/// the window is sent again).
const STOP_PATIENCE: Duration = Duration::from_secs(10);

/// A claimed batch and its items, or nothing to do.
pub type Claimed<W> = Option<(<W as Work>::Batch, Vec<<W as Work>::Item>)>;

/// What a settle says of the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Recorded; sending may go on.
    Go,
    /// Recorded; stop sending this batch (the lease was lost, or the work
    /// was paused or cancelled).
    Stop,
    /// Nothing recorded: for ordered work, a commit that reached the
    /// database before the one ahead of it; it is tried again after that.
    OutOfTurn,
}

/// The fixed traits of a kind of work.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Short name for logs.
    pub name: &'static str,
    /// How long a claim lives unrenewed.
    pub lease: Duration,
    /// How many sends may be unrecorded (in flight or not yet committed).
    pub window: usize,
    /// Whether outcomes are committed in the batch's order: each commit
    /// then carries the next run of items after the last committed one (so
    /// a cursor can say how far the batch got), one commit at a time.
    pub ordered: bool,
}

/// What a kind of work plugs into the skeleton.
pub trait Work: Send + Sync + Sized + 'static {
    /// A claimed batch: leased to this worker until released.
    type Batch: Send + Sync + 'static;
    type Item: Send + Sync + 'static;
    type Outcome: Send + Sync + 'static;

    fn shape(&self) -> Shape;
    /// Leases the next batch and lists its items; `None` when there is no
    /// work.
    fn claim(
        &self,
        state: &SharedState,
    ) -> impl Future<Output = anyhow::Result<Claimed<Self>>> + Send;
    /// Sends one item. Never fails: a failure is an outcome to settle.
    fn send(
        &self,
        state: &AppState,
        batch: &Self::Batch,
        item: &Self::Item,
    ) -> impl Future<Output = Self::Outcome> + Send;
    /// Records `done` and, with `renew`, extends the batch's lease to it,
    /// atomically (in one transaction, or one statement). For
    /// [`Shape::ordered`] work, `in_order` says `done` is the run right
    /// after the one before it (which may still be committing: a settle
    /// that finds it not committed yet records nothing and says
    /// [`Settled::OutOfTurn`]); it is false only for what finished after a
    /// gap that will not be filled (a send that never started because the
    /// batch stopped).
    fn settle(
        &self,
        conn: &mut DbConnection,
        batch: &Self::Batch,
        done: &[(Self::Item, Self::Outcome)],
        renew: Option<NaiveDateTime>,
        in_order: bool,
    ) -> QueryResult<Settled>;
    /// Ends the batch after its last settle.
    fn release(&self, conn: &mut DbConnection, batch: &Self::Batch) -> QueryResult<()>;
    /// Returns when there may be work before the next poll.
    fn woken(&self, state: &SharedState) -> impl Future<Output = ()> + Send;
    /// Tells the other lanes there may be more work.
    fn more(&self, state: &AppState);
    /// Runs once when the workers stop.
    fn stopped(&self, _state: &SharedState) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// What became of one message: sent, refused or failed by the mailer, or
/// never built (a bad address or header: no point retrying).
pub enum Handed {
    Sent,
    Failed(crate::mail::SendError),
    Unbuildable(String),
}

/// Signs (DKIM, when configured) and sends a built message: the one way
/// every kind of work hands mail to the transport.
pub async fn hand_over(state: &AppState, built: Result<lettre::Message, String>) -> Handed {
    hand_over_as(state, built, None).await
}

/// [`hand_over`] with the email's VERP tag: with `bounce_address` set, the
/// envelope sender (the Return-Path a bounce goes to) is
/// `bounces+TAG@domain`, so the bounce names this email and its reader.
pub async fn hand_over_as(
    state: &AppState,
    built: Result<lettre::Message, String>,
    tag: Option<crate::domain::verp::Tag>,
) -> Handed {
    let msg = match built {
        Ok(m) => m,
        Err(reason) => return Handed::Unbuildable(reason),
    };
    let envelope = match tag.and_then(|t| state.verp_address(&t)) {
        Some(from) => crate::mail::message::with_envelope_from(&msg, from),
        None => msg.envelope().clone(),
    };
    let raw = state.sign_and_format(msg);
    match state.mailer.send(&envelope, &raw).await {
        Ok(()) => Handed::Sent,
        Err(e) => Handed::Failed(e),
    }
}

/// Runs `lanes` claim/send/settle loops side by side until `shutdown`, so
/// one lane's claim and settle overlap the other's sends.
pub async fn run<W: Work>(
    work: Arc<W>,
    state: SharedState,
    lanes: usize,
    shutdown: watch::Receiver<bool>,
) {
    // One window for the whole instance, shared by its lanes: the bound on
    // what a crash of this process can repeat.
    let window = Arc::new(Semaphore::new(work.shape().window.max(1)));
    let all = (0..lanes).map(|_| {
        lane(
            work.clone(),
            state.clone(),
            window.clone(),
            shutdown.clone(),
        )
    });
    futures_util::future::join_all(all).await;
    work.stopped(&state).await;
}

async fn lane<W: Work>(
    work: Arc<W>,
    state: SharedState,
    window: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut failing = false;
    loop {
        if *shutdown.borrow() {
            break;
        }
        match work.claim(&state).await {
            Ok(Some((batch, items))) => {
                failing = false;
                work.more(&state);
                drive(&work, &state, &window, batch, items, &shutdown).await;
                continue;
            }
            Ok(None) => failing = false,
            Err(e) if !failing => {
                state.db_reach.failed();
                failing = true;
                tracing::warn!(worker = work.shape().name, error = %format!("{e:#}"), "claiming work failed; retrying every second");
            }
            Err(_) => state.db_reach.failed(),
        }
        tokio::select! {
            _ = work.woken(&state) => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// An outcome on its way to the settler, with its place in the window and
/// in the batch.
struct Finished<W: Work> {
    seq: usize,
    item: W::Item,
    outcome: W::Outcome,
    /// When the send ended.
    ended: Instant,
    _place: OwnedSemaphorePermit,
}

/// Sends a claimed batch and settles it as it goes, then releases it. Once
/// `stop` is raised (or a settle says to stop) no new send starts; the ones
/// in flight finish and are settled.
pub async fn drive<W: Work>(
    work: &Arc<W>,
    state: &SharedState,
    window: &Arc<Semaphore>,
    batch: W::Batch,
    items: Vec<W::Item>,
    stop: &watch::Receiver<bool>,
) -> usize {
    let n = items.len();
    let batch = Arc::new(batch);
    let go_on = AtomicBool::new(true);
    let (tx, rx) = mpsc::unbounded_channel::<Finished<W>>();
    let send_seconds = state
        .metrics
        .send_seconds
        .with_label_values(&[work.shape().name]);
    let sends = {
        let (batch, go_on) = (&batch, &go_on);
        async move {
            let tx = tx;
            stream::iter(items.into_iter().enumerate())
                .map(|(seq, item)| {
                    let (window, tx, send_seconds) = (window.clone(), &tx, &send_seconds);
                    async move {
                        let Ok(place) = window.acquire_owned().await else {
                            return;
                        };
                        if *stop.borrow() || !go_on.load(Ordering::Acquire) {
                            return;
                        }
                        let started = Instant::now();
                        let outcome = work.send(state, batch, &item).await;
                        let ended = Instant::now();
                        send_seconds.observe((ended - started).as_secs_f64());
                        let _ = tx.send(Finished {
                            seq,
                            item,
                            outcome,
                            ended,
                            _place: place,
                        });
                    }
                })
                .buffer_unordered(SENDS_PER_CONNECTION * state.mailer.concurrency())
                .for_each(|()| std::future::ready(()))
                .await;
        }
    };
    let settles = settle_as_they_come(work, state, &batch, rx, &go_on, stop);
    futures_util::future::join(sends, settles).await;
    release(work, state, batch, stop).await;
    n
}

/// The settler: commits what finished since the last commit (and renews
/// the lease when a quarter of it has passed) until the senders are done
/// and everything is recorded. Up to [`COMMITS`] commits run at once on
/// PostgreSQL for unordered work, so a send's place in the window comes
/// back after about one commit's latency, not a queue of them. Ordered
/// work commits one run at a time: runs sent side by side overtook each
/// other on the way to the database and came back out of turn more often
/// than they saved (measured), so each waits for the one ahead. A failed
/// commit keeps its outcomes (and their places) and is tried again.
async fn settle_as_they_come<W: Work>(
    work: &Arc<W>,
    state: &SharedState,
    batch: &Arc<W::Batch>,
    mut rx: mpsc::UnboundedReceiver<Finished<W>>,
    go_on: &AtomicBool,
    stop: &watch::Receiver<bool>,
) {
    let shape = work.shape();
    let every = shape.lease / 4;
    let parallel = commits_at_once(state, &shape);
    let mut next_renewal = Instant::now() + every;
    let mut queue = Queue::<W>::new(shape.ordered);
    let mut running = futures_util::stream::FuturesUnordered::new();
    let mut open = true;
    let mut failing = Failing::default();
    // A commit came back out of turn: the next waits until the ones ahead
    // of it are done, or it might keep overtaking them.
    let mut held_back = false;
    loop {
        while let Ok(f) = rx.try_recv() {
            queue.arrive(f);
        }
        held_back &= !running.is_empty();
        if !open && running.is_empty() {
            // Every send has ended: a gap now is a send that never started.
            queue.loosen();
        }
        let renew = Instant::now() >= next_renewal;
        let may_start =
            running.len() < parallel && !held_back && Instant::now() >= failing.retry_at;
        if may_start && (queue.ready() || renew) {
            let lease = chrono::Duration::from_std(shape.lease).unwrap_or(chrono::Duration::MAX);
            let until = renew.then(|| db::now() + lease);
            if renew {
                next_renewal = Instant::now() + every;
            }
            let (items, in_order) = queue.take();
            running.push(commit(work, state, batch, items, until, in_order));
            continue;
        }
        if !open && queue.is_empty() && running.is_empty() {
            return;
        }
        tokio::select! {
            got = rx.recv(), if open => match got {
                Some(f) => queue.arrive(f),
                None => open = false,
            },
            Some((result, left, in_order)) = running.next(), if !running.is_empty() => match result {
                Ok(Settled::OutOfTurn) => {
                    queue.put_back(left, in_order);
                    held_back = true;
                }
                Ok(settled) => {
                    if settled == Settled::Stop {
                        go_on.store(false, Ordering::Release);
                    }
                    failing.recovered(shape.name);
                }
                Err(e) => {
                    state.db_reach.failed();
                    queue.put_back(left, in_order);
                    if failing.failed(shape.name, &e, *stop.borrow()) {
                        tracing::warn!(
                            worker = shape.name,
                            unrecorded = queue.len(),
                            "stopping with outcomes unrecorded; their lease will run out"
                        );
                        go_on.store(false, Ordering::Release);
                        return;
                    }
                }
            },
            // Nothing running: the next renewal, or the retry of what a
            // failed commit left.
            _ = tokio::time::sleep_until(if queue.is_empty() { next_renewal } else { failing.retry_at }),
                if running.is_empty() => {}
        }
    }
}

/// How many settle commits may run at once: [`COMMITS`] for unordered work
/// on PostgreSQL, else one.
fn commits_at_once(state: &SharedState, shape: &Shape) -> usize {
    if state.settings.database_url.is_postgres() && !shape.ordered {
        COMMITS
    } else {
        1
    }
}

/// Outcomes waiting for their commit. For ordered work, those that
/// finished after a gap wait apart until the gap fills (or, once every
/// send has ended, go as a loose run).
struct Queue<W: Work> {
    ordered: bool,
    /// The next run to commit (for ordered work: right after the last).
    ready: Vec<Finished<W>>,
    /// After a gap, by place in the batch.
    waiting: std::collections::BTreeMap<usize, Finished<W>>,
    /// What was after a gap that will not fill.
    loose: Vec<Finished<W>>,
    /// The place in the batch of the next outcome in order.
    next: usize,
}

impl<W: Work> Queue<W> {
    fn new(ordered: bool) -> Self {
        Self {
            ordered,
            ready: Vec::new(),
            waiting: Default::default(),
            loose: Vec::new(),
            next: 0,
        }
    }

    fn arrive(&mut self, f: Finished<W>) {
        if !self.ordered {
            self.ready.push(f);
            return;
        }
        self.waiting.insert(f.seq, f);
        while let Some(f) = self.waiting.remove(&self.next) {
            self.ready.push(f);
            self.next += 1;
        }
    }

    fn loosen(&mut self) {
        let waiting = std::mem::take(&mut self.waiting);
        self.loose.extend(waiting.into_values());
    }

    fn ready(&self) -> bool {
        !self.ready.is_empty() || !self.loose.is_empty()
    }

    /// The next commit's outcomes, and whether they are in order.
    fn take(&mut self) -> (Vec<Finished<W>>, bool) {
        if !self.ready.is_empty() || self.loose.is_empty() {
            (std::mem::take(&mut self.ready), true)
        } else {
            (std::mem::take(&mut self.loose), false)
        }
    }

    /// A failed commit's outcomes go back in front of what came since
    /// (in the batch's order, whichever of several commits comes back
    /// first).
    fn put_back(&mut self, mut left: Vec<Finished<W>>, in_order: bool) {
        let to = if in_order {
            &mut self.ready
        } else {
            &mut self.loose
        };
        left.append(to);
        left.sort_by_key(|f| f.seq);
        *to = left;
    }

    fn is_empty(&self) -> bool {
        self.ready.is_empty() && self.waiting.is_empty() && self.loose.is_empty()
    }

    fn len(&self) -> usize {
        self.ready.len() + self.waiting.len() + self.loose.len()
    }
}

/// Settle commits running at once on PostgreSQL.
const COMMITS: usize = 4;

/// A run of failed commits: when to try again, and whether to give up.
struct Failing {
    failures: u32,
    since: Option<Instant>,
    retry_at: Instant,
}

impl Default for Failing {
    fn default() -> Self {
        Self {
            failures: 0,
            since: None,
            retry_at: Instant::now(),
        }
    }
}

impl Failing {
    fn recovered(&mut self, name: &str) {
        if self.failures > 0 {
            tracing::info!(
                worker = name,
                failures = self.failures,
                "settling works again"
            );
        }
        *self = Self::default();
    }

    /// Notes a failed commit; true when a stopping worker should give up.
    fn failed(&mut self, name: &str, e: &db::DbError, stopping: bool) -> bool {
        let since = *self.since.get_or_insert_with(Instant::now);
        if self.failures == 0 {
            tracing::warn!(worker = name, error = %e, "settling failed; keeping the outcomes and trying again");
        }
        self.failures += 1;
        self.retry_at = Instant::now() + retry::settle_pause(self.failures);
        stopping && since.elapsed() > STOP_PATIENCE
    }
}

/// One settle transaction over `pending`. Returns its result and, when it
/// failed or came out of turn, the outcomes (with their places in the
/// window) to try again, with `in_order` as it was.
async fn commit<W: Work>(
    work: &Arc<W>,
    state: &SharedState,
    batch: &Arc<W::Batch>,
    pending: Vec<Finished<W>>,
    renew: Option<NaiveDateTime>,
    in_order: bool,
) -> (Result<Settled, db::DbError>, Vec<Finished<W>>, bool) {
    let (items, places): (Vec<_>, Vec<_>) = pending
        .into_iter()
        .map(|f| ((f.item, f.outcome), (f.seq, f.ended, f._place)))
        .unzip();
    let done = Arc::new(items);
    let started = Instant::now();
    let result = {
        let (work, batch, done) = (work.clone(), batch.clone(), done.clone());
        db::run(&state.settle_pool, move |c| {
            work.settle(c, &batch, &done, renew, in_order)
        })
        .await
    };
    if matches!(result, Ok(Settled::Go | Settled::Stop)) {
        observe_settle(state, work.shape().name, started, &places);
        return (result, Vec::new(), in_order);
    }
    // The closure is gone (run or dropped), so this is the last handle.
    let left = match Arc::try_unwrap(done) {
        Ok(items) => items
            .into_iter()
            .zip(places)
            .map(|((item, outcome), (seq, ended, place))| Finished {
                seq,
                item,
                outcome,
                ended,
                _place: place,
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    (result, left, in_order)
}

/// Records a settle commit's time, its size and how long its outcomes
/// waited since their sends ended.
fn observe_settle(
    state: &SharedState,
    name: &str,
    started: Instant,
    places: &[(usize, Instant, OwnedSemaphorePermit)],
) {
    let now = Instant::now();
    let m = &state.metrics;
    m.settle_seconds
        .with_label_values(&[name])
        .observe((now - started).as_secs_f64());
    m.settle_size
        .with_label_values(&[name])
        .observe(places.len() as f64);
    let wait = m.settle_wait_seconds.with_label_values(&[name]);
    for (_, ended, _) in places {
        wait.observe((now - *ended).as_secs_f64());
    }
}

/// Ends the batch, trying again while the database is away (for at most a
/// lease: after that the batch is someone else's to claim).
async fn release<W: Work>(
    work: &Arc<W>,
    state: &SharedState,
    batch: Arc<W::Batch>,
    stop: &watch::Receiver<bool>,
) {
    let deadline = Instant::now() + work.shape().lease;
    let mut failures = 0;
    loop {
        let (w, b) = (work.clone(), batch.clone());
        let Err(e) = db::transaction(&state.settle_pool, move |c| w.release(c, &b)).await else {
            return;
        };
        state.db_reach.failed();
        if Instant::now() >= deadline || (*stop.borrow() && failures > 20) {
            tracing::warn!(worker = work.shape().name, error = %e, "releasing a batch failed; its lease will run out");
            return;
        }
        if failures == 0 {
            tracing::warn!(worker = work.shape().name, error = %e, "releasing a batch failed; trying again");
        }
        failures += 1;
        tokio::time::sleep(retry::settle_pause(failures)).await;
    }
}
