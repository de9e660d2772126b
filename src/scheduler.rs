//! Cron wiring only. tokio-cron-scheduler ticks `digest_cron` and `feed_cron`
//! in memory on every instance; each tick calls a plain function the tests
//! call too. Before acting, an instance claims the tick in `job_runs`: on a
//! shared PostgreSQL exactly one instance wins each tick. A failed run is
//! logged and the schedule goes on.

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::db;
use crate::domain::cron::tick_key;
use crate::state::SharedState;

/// Claims the tick for this instance; false when another instance has it.
pub async fn claim_tick(
    state: &SharedState,
    job: &'static str,
    expr: &str,
) -> anyhow::Result<bool> {
    let Some(tick) = tick_key(expr) else {
        return Ok(false);
    };
    Ok(db::run(&state.pool, move |c| {
        db::jobs::claim_tick(c, job, &tick, db::now())
    })
    .await?)
}

/// One digest tick: claim it, compose, let the delivery worker send.
pub async fn digest_tick(state: &SharedState) -> anyhow::Result<()> {
    if !claim_tick(state, "digest", &state.settings.digest_cron).await? {
        tracing::debug!("digest tick taken by another instance");
        return Ok(());
    }
    let mode = match state.settings.digest_mode {
        crate::config::DigestMode::Send => crate::digest::Mode::Send,
        crate::config::DigestMode::Draft => crate::digest::Mode::Draft,
    };
    let outcome = crate::digest::compose_as(state, None, mode).await?;
    tracing::info!(outcome = ?outcome, "scheduled digest");
    Ok(())
}

/// Sends the scheduled digests that are due (every few seconds; each is
/// claimed by a conditional update, so any instance may run this).
pub async fn scheduled_tick(state: &SharedState) -> anyhow::Result<()> {
    crate::digest::editorial::send_due(state).await?;
    Ok(())
}

/// One feed tick: claim it and poll.
pub async fn feed_tick(state: &SharedState) -> anyhow::Result<()> {
    if state.settings.feed_url.is_none() {
        return Ok(());
    }
    if !claim_tick(state, "feed", &state.settings.feed_cron).await? {
        return Ok(());
    }
    crate::digest::feed::poll(state).await?;
    Ok(())
}

/// Starts the ticker; the returned task ends it when `shutdown` turns true.
pub async fn start(
    state: SharedState,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<()>> {
    let mut scheduler = JobScheduler::new().await?;
    let st = state.clone();
    scheduler
        .add(Job::new_async(state.settings.digest_cron.as_str(), move |_, _| {
            let st = st.clone();
            Box::pin(async move {
                if let Err(e) = digest_tick(&st).await {
                    tracing::error!(error = %format!("{e:#}"), "digest tick failed; next tick will try again");
                }
            })
        })?)
        .await?;
    let st = state.clone();
    scheduler
        .add(Job::new_async("*/5 * * * * *", move |_, _| {
            let st = st.clone();
            Box::pin(async move {
                if let Err(e) = scheduled_tick(&st).await {
                    tracing::warn!(error = %format!("{e:#}"), "sending scheduled digests failed; will try again");
                }
            })
        })?)
        .await?;
    if state.settings.feed_url.is_some() {
        let st = state.clone();
        scheduler
            .add(Job::new_async(state.settings.feed_cron.as_str(), move |_, _| {
                let st = st.clone();
                Box::pin(async move {
                    if let Err(e) = feed_tick(&st).await {
                        tracing::warn!(error = %format!("{e:#}"), "feed poll failed; next tick will try again");
                    }
                })
            })?)
            .await?;
    }
    scheduler.start().await?;
    Ok(tokio::spawn(async move {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
        let _ = scheduler.shutdown().await;
    }))
}
