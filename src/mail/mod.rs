//! Email: templates rendered with minijinja (`templates/emails/<name>/`),
//! messages built with lettre, transports (SMTP with our own connections, or
//! the `.eml` file outbox).

pub mod inbound;
pub mod message;
pub mod templates;
pub mod transport;

pub use transport::{Mailer, SendError};
