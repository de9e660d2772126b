//! Tidings: a self-hosted newsletter service. Readers sign up with double
//! opt-in, their consent is logged, and confirmed readers get a digest of new
//! articles on a schedule, through SMTP.
//!
//! # Layout
//! - [`config`]: settings from a TOML file and `TIDINGS_*`, validated once.
//! - [`cli`]: the `tidings` commands.
//! - [`startup`]: builds the HTTP server, workers and scheduler.
//! - [`telemetry`]: tracing set-up.
//! - [`domain`]: parsed newtypes and rules with no I/O.
//! - [`db`]: pool, backends, migrations and the queries, one file per table group.
//! - [`subscriptions`]: signup, confirmation and unsubscribe, each one transaction.
//! - [`routes`]: the route table, the HTTP handlers (public pages, ops API, console) and their errors.
//! - [`mail`]: templates, message building, transports.
//! - [`digest`]: article intake, digest composition and fan-out.
//! - [`workers`]: the claim/send/settle skeleton, the outbox and digest delivery on it.
//! - [`scheduler`]: cron wiring; calls plain functions the tests call too.
//! - [`limits`]: login throttles and the bound on concurrent password hashing.
//! - [`metrics`]: Prometheus registry and collectors.
//! - [`privacy`]: GDPR access (export) and erasure.
//! - [`stats`]: readers by status, emails sent, growth (dashboard and API).
//! - [`subscriber_csv`]: CSV export and bulk import of subscribers.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod cli;
pub mod config;
pub mod db;
pub mod digest;
pub mod domain;
pub mod limits;
pub mod mail;
pub mod metrics;
pub mod privacy;
pub mod routes;
pub mod scheduler;
pub mod startup;
pub mod state;
pub mod stats;
pub mod subscriber_csv;
pub mod subscriptions;
pub mod telemetry;
pub mod workers;
