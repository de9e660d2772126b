//! Prometheus metrics. HTTP request counts and latencies by route come from
//! actix-web-prom (GET /metrics); this module adds the pool's state and the
//! mail counters to the same registry.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

use crate::db::Pool;

pub struct Metrics {
    pub registry: Registry,
    /// Emails handed to the transport, by kind (`confirm`, `digest`).
    pub emails_sent: IntCounterVec,
    /// Emails that failed for good, by kind.
    pub emails_failed: IntCounterVec,
    /// Transient failures that were scheduled for retry, by kind.
    pub emails_retried: IntCounterVec,
    /// Refusals of the sender, content or session (no reader touched;
    /// retried), by kind.
    pub emails_refused: IntCounterVec,
    /// Digests paused, by who paused them (`breaker`, `operator`).
    pub digests_paused: IntCounterVec,
    /// Bounces and complaints this process recorded (SMTP receiver and
    /// webhooks; `tidings inbound` runs in a process of its own).
    pub bounces: IntCounterVec,
    /// Signups each group transaction committed itself (the ones that went
    /// one by one are not counted): how much sharing a commit saves.
    pub signup_group_size: Histogram,
    /// Seconds one send took, by worker (`outbox`, `delivery`).
    pub send_seconds: HistogramVec,
    /// Seconds one settle commit took (from asking for a connection to the
    /// answer), by worker (`outbox`, `delivery`).
    pub settle_seconds: HistogramVec,
    /// Seconds from a send's end to its outcome's commit, by worker: how
    /// long a finished send keeps its place in the window.
    pub settle_wait_seconds: HistogramVec,
    /// Outcomes one settle commit recorded, by worker.
    pub settle_size: HistogramVec,
    /// Votes recorded on articles (new or changed), by `source` (`site`,
    /// `digest`) and `vote` (`yes`, `no`).
    pub feedback_votes: IntCounterVec,
}

impl Metrics {
    pub fn new(pool: Pool) -> anyhow::Result<Self> {
        let registry = Registry::new();
        let labelled = |name: &str, help: &str, label: &str| -> anyhow::Result<IntCounterVec> {
            let c = IntCounterVec::new(Opts::new(name, help).namespace("tidings"), &[label])?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let counter = |name: &str, help: &str| labelled(name, help, "kind");
        let emails_sent = counter("emails_sent_total", "Emails accepted by the transport")?;
        let emails_failed = counter("emails_failed_total", "Emails that failed permanently")?;
        let emails_retried = counter("emails_retried_total", "Transient send failures retried")?;
        let emails_refused = counter(
            "emails_refused_total",
            "Refusals of the sender, content or session (retried, no reader touched)",
        )?;
        let digests_paused = labelled("digests_paused_total", "Digests paused", "by")?;
        let bounces = counter(
            "bounces_total",
            "Bounces and complaints recorded by the receiver and the webhooks",
        )?;
        let signup_group_size = Histogram::with_opts(
            HistogramOpts::new(
                "signup_group_size",
                "Signups committed together by one group transaction",
            )
            .namespace("tidings")
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
        )?;
        registry.register(Box::new(signup_group_size.clone()))?;
        let histogram = |name: &str, help: &str, label: &str, buckets: Vec<f64>| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help)
                    .namespace("tidings")
                    .buckets(buckets),
                &[label],
            )?;
            registry.register(Box::new(h.clone()))?;
            anyhow::Ok(h)
        };
        let seconds = || prometheus::exponential_buckets(0.000_25, 2.0, 14);
        let send_seconds = histogram(
            "send_seconds",
            "Seconds one send took, from its start to the transport's answer",
            "worker",
            seconds()?,
        )?;
        let settle_seconds = histogram(
            "settle_seconds",
            "Seconds one settle commit took, connection included",
            "worker",
            seconds()?,
        )?;
        let settle_wait_seconds = histogram(
            "settle_wait_seconds",
            "Seconds from a send's end to its outcome's commit",
            "worker",
            seconds()?,
        )?;
        let settle_size = histogram(
            "settle_size",
            "Outcomes recorded by one settle commit",
            "worker",
            prometheus::exponential_buckets(1.0, 2.0, 11)?,
        )?;
        Ok(Self {
            feedback_votes: pool_and_votes(&registry, pool)?,
            registry,
            emails_sent,
            emails_failed,
            emails_retried,
            emails_refused,
            digests_paused,
            bounces,
            signup_group_size,
            send_seconds,
            settle_seconds,
            settle_wait_seconds,
            settle_size,
        })
    }
}

/// Registers the pool's gauges and `tidings_feedback_votes_total{source,
/// vote}`; returns the vote counter.
fn pool_and_votes(registry: &Registry, pool: Pool) -> anyhow::Result<IntCounterVec> {
    registry.register(Box::new(PoolCollector::new(pool)?))?;
    let votes = IntCounterVec::new(
        Opts::new(
            "feedback_votes_total",
            "Votes recorded on articles (new or changed)",
        )
        .namespace("tidings"),
        &["source", "vote"],
    )?;
    registry.register(Box::new(votes.clone()))?;
    Ok(votes)
}

/// Reads the pool's state at scrape time.
struct PoolCollector {
    pool: Pool,
    connections: IntGauge,
    idle: IntGauge,
    max: IntGauge,
}

impl PoolCollector {
    fn new(pool: Pool) -> anyhow::Result<Self> {
        let gauge = |name: &str, help: &str| {
            IntGauge::with_opts(Opts::new(name, help).namespace("tidings"))
        };
        Ok(Self {
            max: gauge("db_pool_max_connections", "Pool size limit")?,
            connections: gauge("db_pool_connections", "Open database connections")?,
            idle: gauge("db_pool_idle_connections", "Idle database connections")?,
            pool,
        })
    }
}

impl Collector for PoolCollector {
    fn desc(&self) -> Vec<&Desc> {
        [&self.connections, &self.idle, &self.max]
            .into_iter()
            .flat_map(|g| g.desc())
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let state = self.pool.state();
        self.connections.set(i64::from(state.connections));
        self.idle.set(i64::from(state.idle_connections));
        self.max.set(i64::from(self.pool.max_size()));
        [&self.connections, &self.idle, &self.max]
            .into_iter()
            .flat_map(|g| g.collect())
            .collect()
    }
}
