//! Digests of new articles: intake (API and feed), composition, fan-out and
//! delivery.

pub mod compose;
pub mod delivery;
pub mod feed;

pub use compose::{compose, ComposeOutcome};
