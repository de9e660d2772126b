//! Email: templates rendered with minijinja (`templates/emails/<name>/`),
//! messages built with lettre, transports (SMTP with our own connections, or
//! the `.eml` file outbox), and the transactional-outbox worker.

pub mod message;
pub mod outbox;
pub mod templates;
pub mod transport;

pub use transport::{Mailer, SendError};
