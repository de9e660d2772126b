//! Prometheus metrics. HTTP request counts and latencies by route come from
//! actix-web-prom (GET /metrics); this module adds the pool's state and the
//! mail counters to the same registry.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use crate::db::Pool;
use crate::domain::bounce_rates::DigestBounces;

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
    /// The newest digests' bounces and complaints, read from the database
    /// (so the pipe's, recorded by another process, count too).
    pub digests: DigestGauges,
}

/// `tidings_digest_bounces{digest, kind}`, `tidings_digest_bounce_rate
/// {digest}` and `tidings_digest_complaint_rate{digest}` for the
/// [`DigestGauges::SHOWN`] newest digests: a bounded set of series, set
/// afresh from the database every few seconds ([`DigestGauges::set`]).
pub struct DigestGauges {
    bounces: IntGaugeVec,
    bounce_rate: GaugeVec,
    complaint_rate: GaugeVec,
}

impl DigestGauges {
    /// How many of the newest digests have series.
    pub const SHOWN: i64 = 10;

    fn new(registry: &Registry) -> anyhow::Result<Self> {
        let opts = |name: &str, help: &str| Opts::new(name, help).namespace("tidings");
        let bounces = IntGaugeVec::new(
            opts(
                "digest_bounces",
                "Bounces and complaints about a digest's emails",
            ),
            &["digest", "kind"],
        )?;
        let bounce_rate = GaugeVec::new(
            opts(
                "digest_bounce_rate",
                "A digest's hard and soft bounces per email sent",
            ),
            &["digest"],
        )?;
        let complaint_rate = GaugeVec::new(
            opts(
                "digest_complaint_rate",
                "A digest's complaints per email sent (Gmail and Yahoo: keep under 0.003)",
            ),
            &["digest"],
        )?;
        registry.register(Box::new(bounces.clone()))?;
        registry.register(Box::new(bounce_rate.clone()))?;
        registry.register(Box::new(complaint_rate.clone()))?;
        Ok(Self {
            bounces,
            bounce_rate,
            complaint_rate,
        })
    }

    /// Replaces every series with `figures`, by digest id (a digest no
    /// longer among them loses its series).
    pub fn set(&self, figures: &[(i64, DigestBounces)]) {
        self.bounces.reset();
        self.bounce_rate.reset();
        self.complaint_rate.reset();
        for (id, f) in figures {
            let id = id.to_string();
            for (kind, n) in [
                ("hard", f.hard),
                ("soft", f.soft),
                ("complaint", f.complaints),
            ] {
                self.bounces.with_label_values(&[id.as_str(), kind]).set(n);
            }
            self.bounce_rate
                .with_label_values(&[&id])
                .set(f.bounce_rate);
            self.complaint_rate
                .with_label_values(&[&id])
                .set(f.complaint_rate);
        }
    }
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
            digests: DigestGauges::new(&registry)?,
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
