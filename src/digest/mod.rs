//! Digests of new articles: intake (API and feed), composition and fan-out
//! (delivery is [`crate::workers::delivery`]).

pub mod compose;
pub mod control;
pub mod feed;

pub use compose::{compose, ComposeOutcome};
