//! Rules with no I/O: parsed newtypes for what readers type, token and hash
//! helpers, statuses and the consent vocabulary.

pub mod bounce_rates;
pub mod cron;
pub mod email;
pub mod feed_text;
pub mod feedback;
pub mod name;
pub mod password;
pub mod preferences;
pub mod time;
pub mod token;
pub mod verp;
pub mod vocabulary;

pub use email::SubscriberEmail;
pub use name::SubscriberName;
pub use vocabulary::{
    BounceKind, BounceSource, ConsentEvent, DeliveryStatus, DigestStatus, Frequency, MailKind,
    SubscriberStatus, SuppressionReason, Vote, VoteSource, WorkStatus,
};

/// The consent text shown on the signup form. Its version goes into every
/// `requested` consent event, so the exact wording can be produced later.
pub const CONSENT_TEXT: &str = "Join our newsletter to receive updates on new articles and exclusive content. We respect your privacy and will never share your information.";
pub const CONSENT_TEXT_VERSION: &str = "2026-11-29.1";

/// The version id of a consent text: derived from the text itself (the
/// first 16 hex digits of its SHA-256), so the same wording always has the
/// same id and a changed word a new one. The built-in wording keeps the id
/// it was recorded under before the text could be set.
pub fn consent_text_version(text: &str) -> String {
    use sha2::Digest;
    if text == CONSENT_TEXT {
        return CONSENT_TEXT_VERSION.to_string();
    }
    let digest = sha2::Sha256::digest(text.as_bytes());
    format!("sha256-{}", &hex::encode(digest)[..16])
}

/// A new subscriber id: a UUIDv7, ordered by creation time, so new readers
/// land at the end of every index keyed by reader (the subscribers' primary
/// key, a digest's deliveries) instead of on random pages. The random part
/// comes from rand's user-space generator (no getrandom call per id).
pub fn new_subscriber_id() -> String {
    let millis = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or_default();
    uuid::Builder::from_unix_timestamp_millis(millis, &rand::random())
        .into_uuid()
        .to_string()
}

/// Whether `id` could be a reader's id (a UUID): anything else is not
/// looked up at all, so a client's odd path (a NUL byte, say, which
/// PostgreSQL cannot even compare) is a plain 404.
pub fn plausible_subscriber_id(id: &str) -> bool {
    uuid::Uuid::try_parse(id).is_ok()
}

/// Consent log helpers (the events themselves are [`ConsentEvent`]).
pub mod consent {
    /// The longest source kept, in characters.
    const SOURCE_MAX: usize = 512;

    /// What a signup's Referer becomes as its consent source: the page the
    /// form was on, without query string, fragment or user info. Data
    /// minimisation: the page proves where consent was given; a query
    /// (`?email=…`, a campaign id) or fragment says more about the reader
    /// than that. A Referer that is not an absolute URL keeps what comes
    /// before its first `?` or `#`; `None` when nothing is left.
    pub fn source_from_referer(referer: &str) -> Option<String> {
        let referer = referer.trim();
        let page = match url::Url::parse(referer) {
            Ok(mut url) if !url.cannot_be_a_base() => {
                url.set_query(None);
                url.set_fragment(None);
                // Never fails on a URL that can be a base.
                let _ = url.set_username("");
                let _ = url.set_password(None);
                url.to_string()
            }
            _ => referer
                .split(['?', '#'])
                .next()
                .unwrap_or_default()
                .to_string(),
        };
        let page: String = page.chars().take(SOURCE_MAX).collect();
        (!page.is_empty()).then_some(page)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_referer_loses_its_query_fragment_and_user_info() {
        let source = super::consent::source_from_referer;
        assert_eq!(
            source("https://news.example/join?email=gina%2Bnews%40example.com#x").as_deref(),
            Some("https://news.example/join")
        );
        assert_eq!(
            source(" https://ann:pw@News.Example:8443/a/b/?utm=1 ").as_deref(),
            Some("https://news.example:8443/a/b/")
        );
        assert_eq!(
            source("/relative?email=a@b.c#f").as_deref(),
            Some("/relative")
        );
        assert_eq!(source("?email=a@b.c"), None);
        assert_eq!(source(&"x".repeat(600)).map(|s| s.len()), Some(512));
    }

    #[test]
    fn subscriber_ids_are_time_ordered_uuids() {
        let first = super::new_subscriber_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = super::new_subscriber_id();
        assert!(first < second, "{first} then {second}");
        let parsed = uuid::Uuid::parse_str(&second).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
    }
}
