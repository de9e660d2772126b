//! Rules with no I/O: parsed newtypes for what readers type, token and hash
//! helpers, statuses and the consent vocabulary.

pub mod email;
pub mod name;
pub mod password;
pub mod token;

pub use email::SubscriberEmail;
pub use name::SubscriberName;

/// The consent text shown on the signup form. Its version goes into every
/// `requested` consent event, so the exact wording can be produced later.
pub const CONSENT_TEXT: &str = "Join our newsletter to receive updates on new articles and exclusive content. We respect your privacy and will never share your information.";
pub const CONSENT_TEXT_VERSION: &str = "2026-11-29.1";

/// Subscriber statuses (DESIGN.md). `erased` marks a GDPR-erased skeleton.
pub mod status {
    pub const PENDING: &str = "pending";
    pub const CONFIRMED: &str = "confirmed";
    pub const UNSUBSCRIBED: &str = "unsubscribed";
    pub const BOUNCED: &str = "bounced";
    pub const ERASED: &str = "erased";
    pub const ALL: &[&str] = &[PENDING, CONFIRMED, UNSUBSCRIBED, BOUNCED, ERASED];
}

/// Consent log events (DESIGN.md invariant 1).
pub mod consent {
    pub const REQUESTED: &str = "requested";
    pub const CONFIRMED: &str = "confirmed";
    pub const UNSUBSCRIBED: &str = "unsubscribed";
    pub const BOUNCED: &str = "bounced";
    pub const IMPORTED: &str = "imported";
    pub const ERASED: &str = "erased";
}
