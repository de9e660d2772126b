//! The hand-over of confirmation emails from the signup group commit to
//! this instance's outbox worker (`workers::outbox`), which sends
//! them without a claim query between insert and send.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};

use crate::db::{self, outbox::OutboxJob};

/// How long rows handed over at signup stay leased before the worker's
/// batch renews them (they may wait in the hand-over queue first).
const HANDOFF_LEASE: Duration = Duration::from_secs(120);
/// Handed-over jobs waiting for the worker; more go to the queue instead.
const HANDOFF_ROOM: usize = 4096;

/// How the signup group commit gives its confirmation emails straight to
/// this instance's worker. The rows go in already leased to the worker
/// (`sending`), so no claim query and no update comes between the insert
/// and the send; they are still rows, so a crash loses none (the lease runs
/// out and any instance claims them again). Jobs the worker cannot take
/// (no worker running, queue full, stopping) go back to the queue.
pub struct Handoff {
    tx: mpsc::Sender<OutboxJob>,
    rx: std::sync::Mutex<Option<mpsc::Receiver<OutboxJob>>>,
    open: AtomicBool,
    /// Poked after a commit that queued rows for claiming.
    wake: Notify,
    /// Leases of groups whose commit may have happened unseen (the
    /// connection was lost at commit): their rows, if any, are leased to
    /// this worker but were never handed to it.
    orphans: std::sync::Mutex<Vec<chrono::NaiveDateTime>>,
}

impl Default for Handoff {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(HANDOFF_ROOM);
        Self {
            tx,
            rx: std::sync::Mutex::new(Some(rx)),
            open: AtomicBool::new(false),
            wake: Notify::new(),
            orphans: std::sync::Mutex::default(),
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
        open.then(|| now + chrono::Duration::seconds(HANDOFF_LEASE.as_secs() as i64))
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

    /// A group written under `lease` may have committed although its
    /// commit failed to answer: the worker gives whatever rows carry that
    /// lease back to the queue as soon as the database answers again,
    /// instead of their lease running out first.
    pub fn orphaned(&self, lease: chrono::NaiveDateTime) {
        if let Ok(mut orphans) = self.orphans.lock() {
            orphans.push(lease);
        }
        self.wake();
    }

    /// Gives back leases taken by [`Handoff::take_orphans`] that could not
    /// be dealt with now (no wake-up: the next claim tries again).
    pub fn keep_orphans(&self, leases: Vec<chrono::NaiveDateTime>) {
        if let Ok(mut orphans) = self.orphans.lock() {
            orphans.extend(leases);
        }
    }

    /// The leases noted by [`Handoff::orphaned`], taken out (the caller
    /// gives back with [`Handoff::keep_orphans`] what it cannot deal with).
    pub fn take_orphans(&self) -> Vec<chrono::NaiveDateTime> {
        self.orphans
            .lock()
            .map(|mut o| std::mem::take(&mut *o))
            .unwrap_or_default()
    }

    /// Waits until a commit queued rows for claiming.
    pub async fn woken(&self) {
        self.wake.notified().await
    }

    /// The worker stops taking handed-over jobs: rows written from now on
    /// are queued for claiming.
    pub fn close(&self) {
        self.open.store(false, Ordering::Release);
    }

    /// The receiving end, for this instance's outbox worker (once).
    pub fn attach(&self) -> Option<mpsc::Receiver<OutboxJob>> {
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
