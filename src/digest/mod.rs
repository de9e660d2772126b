//! Digests of new articles: intake (API and feed), composition and fan-out
//! (delivery is the `workers::delivery` worker).

pub mod archive;
pub mod audience;
pub mod compose;
pub mod control;
pub mod feed;

pub mod editorial;

pub use compose::{compose, compose_as, ComposeError, ComposeOutcome, Mode};
