//! Tidings: a self-hosted newsletter service. Readers sign up with double
//! opt-in, their consent is logged, and confirmed readers get a digest of new
//! articles on a schedule, through SMTP.
//!
//! # Layout
//! Layers, each importing only the ones below it (`tests/api/layers.rs`
//! keeps it so):
//!
//! - Entry: [`cli`] (the `tidings` commands), [`startup`] (the bound
//!   server, workers and scheduler), [`scheduler`] (cron wiring only; it
//!   calls the same service functions the tests call).
//! - Surfaces: [`routes`] (the one route table; HTTP handlers for the public pages,
//!   ops API and console; one error type per surface)
//!   and [`workers`] (the claim/send/settle skeleton, with the outbox and
//!   digest delivery on it), and [`receiver`] (the SMTP/LMTP receiver of
//!   inbound mail).
//! - Shared context: [`state`] (settings, pool, templates, mailer, the
//!   workers' wake-ups), [`limits`] (login throttles, bounded hashing),
//!   [`metrics`], [`telemetry`].
//! - Use cases, each a service function owning its transaction and error:
//!   [`subscriptions`] (signup, confirm, unsubscribe, the signup group
//!   commit), [`digest`] (intake, compose and fan-out, pause/resume/cancel),
//!   [`privacy`] (export, erasure), [`preferences`] (the reader's own page),
//!   [`console`] (console sessions),
//!   [`stats`], [`subscriber_csv`], [`bounces`] (inbound bounces,
//!   complaints and mailto unsubscribes), [`feedback`] (readers' votes on
//!   articles, from the site and from the digest).
//! - Bottom, importing nothing above them: [`mail`] (messages, templates,
//!   transports), [`db`] (pool, backends, schema, one file per table group,
//!   views), [`config`] (settings parsed and validated once), [`domain`]
//!   (newtypes, statuses, cron, tokens: no I/O).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod bounces;
pub mod cli;
pub mod config;
pub mod console;
pub mod db;
pub mod digest;
pub mod doctor;
pub mod domain;
pub mod feedback;
pub mod limits;
pub mod mail;
pub mod metrics;
pub mod preferences;
pub mod privacy;
pub mod receiver;
pub mod routes;
pub mod scheduler;
pub mod startup;
pub mod state;
pub mod stats;
pub mod subscriber_csv;
pub mod subscriptions;
pub mod telemetry;
pub mod workers;
