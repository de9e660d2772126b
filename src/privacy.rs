//! GDPR requests: access ([`export`]) and erasure ([`erase`]).
//!
//! Each is a service function that owns its transaction; the rows it
//! reads and rewrites are in [`crate::db::erasure`]. Erasure keeps an anonymised
//! skeleton: the subscriber id, its status (`erased`) and timestamps, and
//! each consent event's event, time, source, consent text version and method
//! — proof that consent was given and withdrawn without saying by whom. The
//! address survives only as a keyed hash on the suppression list.
//!
//! On SQLite, `PRAGMA secure_delete` zeroes what erasure overwrites in the
//! database file, but the write-ahead log still holds the old pages until a
//! checkpoint: [`erase`] runs one after its transaction commits.

use chrono::NaiveDateTime;
use serde::Serialize;

use crate::db::erasure;
use crate::db::{self, consent, suppressions, DbConnection, DbError};
use crate::domain::{ConsentEvent, SubscriberEmail, SubscriberStatus, SuppressionReason};

/// What a consent event's source becomes when it contained the address
/// (a bounce's SMTP reply, a referer with `?email=` stored before signups
/// dropped the referer's query string).
pub const REMOVED_SOURCE: &str = "[removed at erasure]";

/// Erases a subscriber's personal data in one transaction, then takes the
/// old pages out of SQLite's write-ahead log; false when the id is unknown
/// or already erased. See the module doc for what is kept.
///
/// The `erased` event takes `source` and `method` from `ctx` but never an IP
/// or user agent: the skeleton holds none at all.
pub async fn erase(
    pool: &db::Pool,
    secret: &str,
    subscriber_id: &str,
    ctx: consent::Context,
) -> Result<bool, DbError> {
    let (secret, id) = (secret.to_string(), subscriber_id.to_string());
    let erased = db::transaction(pool, move |c| erase_in(c, &secret, &id, &ctx)).await?;
    if erased {
        // Erasure stands even if the checkpoint cannot run now.
        match db::run(pool, erasure::purge_freed).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                "erasure committed; WAL checkpoint busy, old pages remain until the next one"
            ),
            Err(e) => tracing::warn!(error = %e, "erasure committed; WAL checkpoint failed"),
        }
    }
    Ok(erased)
}

fn erase_in(
    conn: &mut DbConnection,
    secret: &str,
    subscriber_id: &str,
    ctx: &consent::Context,
) -> db::QueryResult<bool> {
    let Some(subscriber) = erasure::lock_erasable(conn, subscriber_id)? else {
        return Ok(false);
    };
    let now = db::now();
    let key = subscriber
        .email_key
        .clone()
        .or_else(|| subscriber.email.as_deref().map(str::to_lowercase));
    if let Some(key) = &key {
        suppress(conn, secret, key)?;
    }
    let tainted = key
        .as_deref()
        .map(|key| move |source: &str| mentions(source, key));
    let tainted = tainted.as_ref().map(|f| f as &dyn Fn(&str) -> bool);
    erasure::scrub_consent_events(conn, subscriber_id, tainted, REMOVED_SOURCE)?;
    erasure::forget_mail(conn, subscriber_id, &subscriber, key.as_deref())?;
    // A remote server's reply often quotes the address.
    db::bounces::blank_for(conn, subscriber_id)?;
    // Their digest votes stay counted, no longer naming them.
    db::feedback::forget_reader(conn, subscriber_id)?;
    erasure::blank_subscriber(conn, subscriber_id, now)?;
    let skeleton = consent::Context {
        ip: None,
        user_agent: None,
        source: ctx.source.clone(),
        method: ctx.method.clone(),
        consent_version: ctx.consent_version.clone(),
    };
    consent::record(conn, subscriber_id, ConsentEvent::Erased, now, &skeleton)?;
    Ok(true)
}

/// Puts the address on the suppression list.
fn suppress(conn: &mut DbConnection, secret: &str, key: &str) -> db::QueryResult<()> {
    suppressions::add(conn, secret, key, SuppressionReason::Erased)?;
    // Stored before domains were kept in ASCII: suppress the spelling
    // new signups of this address have, too.
    if let Ok(canonical) = SubscriberEmail::parse(key).map(|e| e.key()) {
        if canonical != key {
            suppressions::add(conn, secret, &canonical, SuppressionReason::Erased)?;
        }
    }
    Ok(())
}

/// Whether `text` contains the address in any case or in any encoding a
/// URL or form gives it: raw, percent-encoded (either hex case, every
/// character or some, encoded up to twice), form-decoded (`+` read as a
/// space), or with its domain in Unicode.
fn mentions(text: &str, key: &str) -> bool {
    let needles = spellings(key);
    let mut hay = text.to_lowercase();
    for _ in 0..3 {
        if needles.iter().any(|n| hay.contains(n.as_str())) {
            return true;
        }
        let decoded = percent_decode(&hay).to_lowercase();
        if decoded == hay {
            break;
        }
        hay = decoded;
    }
    false
}

/// The address as text may hold it once percent-decoded: itself, with `+`
/// turned into a space (form decoding), and with its domain in the other
/// IDNA form (Unicode for punycode; ASCII for an address stored in Unicode
/// before domains were kept in ASCII).
fn spellings(key: &str) -> Vec<String> {
    let mut out = vec![key.to_string()];
    if let Some((local, domain)) = key.rsplit_once('@') {
        let (unicode, ok) = idna::domain_to_unicode(domain);
        let other = match (ok, idna::domain_to_ascii(domain)) {
            (Ok(()), _) if unicode != domain => Some(unicode),
            (_, Ok(ascii)) if ascii != domain => Some(ascii),
            _ => None,
        };
        out.extend(other.map(|d| format!("{local}@{}", d.to_lowercase())));
    }
    let spaced: Vec<String> = out
        .iter()
        .filter(|s| s.contains('+'))
        .map(|s| s.replace('+', " "))
        .collect();
    out.extend(spaced);
    out
}

/// `%XX` sequences decoded (either hex case); anything else kept as is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                // Two hex digits make one byte: hi * 16 + lo < 256.
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'%'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Everything held about a person (GDPR access).
#[derive(Debug, Serialize)]
pub struct Export {
    pub subscriber: ExportedSubscriber,
    pub consent: Vec<consent::ConsentRecord>,
    pub deliveries: Vec<ExportedDelivery>,
    /// Bounces and complaints received about their emails.
    pub bounces: Vec<db::bounces::BounceRecord>,
    pub confirmation_pending: bool,
    /// What they chose on their preferences page.
    pub preferences: ExportedPreferences,
    /// Their "Useful? Yes · No" votes on their digests' stories.
    pub votes: Vec<db::feedback::VoteRecord>,
    #[serde(serialize_with = "crate::domain::time::utc")]
    pub exported_at: NaiveDateTime,
}

#[derive(Debug, Serialize)]
pub struct ExportedPreferences {
    #[serde(serialize_with = "crate::domain::time::utc_opt")]
    pub paused_until: Option<NaiveDateTime>,
    pub frequency: crate::domain::Frequency,
    /// Empty: every section.
    pub sections: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ExportedSubscriber {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub status: SubscriberStatus,
    #[serde(serialize_with = "crate::domain::time::utc")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "crate::domain::time::utc")]
    pub updated_at: NaiveDateTime,
    #[serde(serialize_with = "crate::domain::time::utc_opt")]
    pub confirmed_at: Option<NaiveDateTime>,
    #[serde(serialize_with = "crate::domain::time::utc_opt")]
    pub last_confirmation_sent_at: Option<NaiveDateTime>,
}

#[derive(Debug, Serialize)]
pub struct ExportedDelivery {
    pub digest_id: i64,
    pub status: crate::domain::DeliveryStatus,
    #[serde(serialize_with = "crate::domain::time::utc_opt")]
    pub sent_at: Option<NaiveDateTime>,
}

/// The digests a reader was sent (or that failed or skipped them). Only
/// exceptions have a row; a plain send is read off the chunk whose range
/// got past the reader, when the consent log says they were confirmed by
/// that chunk's last commit and had not left since the digest was queued.
fn deliveries_of(
    conn: &mut DbConnection,
    subscriber_id: &str,
    consent: &[consent::ConsentRecord],
) -> db::QueryResult<Vec<ExportedDelivery>> {
    let mut out: Vec<ExportedDelivery> = db::deliveries::exceptions_of(conn, subscriber_id)?
        .into_iter()
        .map(|(digest_id, status, sent_at)| ExportedDelivery {
            digest_id,
            status,
            sent_at,
        })
        .collect();
    for passed in db::deliveries::passed_by(conn, subscriber_id)? {
        if out.iter().any(|d| d.digest_id == passed.digest_id) {
            continue;
        }
        let (Some(from), Some(until)) = (passed.audience_at, passed.settled_at) else {
            continue;
        };
        if confirmed_throughout(consent, from, until) {
            out.push(ExportedDelivery {
                digest_id: passed.digest_id,
                status: crate::domain::DeliveryStatus::Sent,
                sent_at: Some(until),
            });
        }
    }
    out.sort_by_key(|d| d.digest_id);
    Ok(out)
}

/// Whether the consent log (oldest first) has the reader confirmed at
/// `until` with nothing ending that since `from`.
fn confirmed_throughout(
    consent: &[consent::ConsentRecord],
    from: NaiveDateTime,
    until: NaiveDateTime,
) -> bool {
    use crate::domain::ConsentEvent as E;
    let mut confirmed = false;
    for event in consent.iter().filter(|e| e.occurred_at <= until) {
        match event.event {
            E::Confirmed | E::Imported => confirmed = true,
            E::Unsubscribed | E::Bounced | E::Complained | E::Erased => {
                if event.occurred_at > from {
                    return false;
                }
                confirmed = false;
            }
            _ => {}
        }
    }
    confirmed
}

/// The subscriber row, every consent event, their deliveries and whether a
/// confirmation link is pending. `None` when the id is unknown or erased
/// (an erased skeleton holds nothing about anyone).
pub async fn export(pool: &db::Pool, subscriber_id: &str) -> Result<Option<Export>, DbError> {
    let id = subscriber_id.to_string();
    db::run(pool, move |c| export_in(c, &id)).await
}

fn export_in(conn: &mut DbConnection, subscriber_id: &str) -> db::QueryResult<Option<Export>> {
    let Some(s) = db::subscribers::find(conn, subscriber_id)? else {
        return Ok(None);
    };
    if s.status == SubscriberStatus::Erased {
        return Ok(None);
    }
    let now = db::now();
    let consent = db::consent::for_subscriber(conn, subscriber_id)?;
    let deliveries = deliveries_of(conn, subscriber_id, &consent)?;
    let pending = erasure::pending_links(conn, subscriber_id, now)?;
    let bounces = db::bounces::for_subscriber(conn, subscriber_id)?;
    let preferences = preferences_of(conn, subscriber_id)?;
    let votes = db::feedback::votes_of(conn, subscriber_id)?;
    Ok(Some(Export {
        subscriber: ExportedSubscriber {
            id: s.id,
            email: s.email,
            name: s.name,
            status: s.status,
            created_at: s.created_at,
            updated_at: s.updated_at,
            confirmed_at: s.confirmed_at,
            last_confirmation_sent_at: s.last_confirmation_at,
        },
        consent,
        deliveries,
        bounces,
        confirmation_pending: pending > 0,
        preferences,
        votes,
        exported_at: now,
    }))
}

fn preferences_of(conn: &mut DbConnection, id: &str) -> db::QueryResult<ExportedPreferences> {
    let settings = db::audience::settings_of(conn, id)?;
    let choice = match settings.as_ref().and_then(|s| s.choice_id) {
        Some(choice) => db::audience::choice_key(conn, choice)?,
        None => None,
    };
    let sections = choice
        .map(|key| {
            crate::domain::preferences::SectionChoice::from_key(&key)
                .names()
                .to_vec()
        })
        .unwrap_or_default();
    Ok(ExportedPreferences {
        paused_until: settings.as_ref().and_then(|s| s.paused_until),
        frequency: settings.map_or(crate::domain::Frequency::Every, |s| s.frequency),
        sections,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn mentions_finds_the_address_in_any_case_or_percent_encoded() {
        let key = "ann@example.com";
        assert!(super::mentions("smtp: 550 <Ann@Example.com> unknown", key));
        assert!(super::mentions(
            "https://news.example/?email=ann%40example.com",
            key
        ));
        assert!(!super::mentions("https://news.example/articles/7", key));
    }

    #[test]
    fn mentions_finds_plus_addresses_in_every_url_and_form_encoding() {
        let key = "gina+news@example.com";
        for text in [
            "https://n.example/?email=gina+news@example.com",
            "https://n.example/?email=gina%2Bnews%40example.com#x",
            "https://n.example/?email=gina%2bnews%40example.com",
            "https://n.example/?email=gina+news%40example.com",
            "https://n.example/?email=gina%2BNEWS%40EXAMPLE.COM",
            "https://n.example/?email=gina news@example.com",
            "https://n.example/?email=gina%20news%40example.com",
            "https://n.example/?u=%2Fjoin%3Femail%3Dgina%252Bnews%2540example.com",
            "https://n.example/?email=%67%69%6e%61%2b%6e%65%77%73%40%65%78%61%6d%70%6c%65%2e%63%6f%6d",
        ] {
            assert!(super::mentions(text, key), "{text}");
        }
        assert!(!super::mentions(
            "https://n.example/?email=gina%2Bother%40example.com",
            key
        ));
        assert!(!super::mentions("100% sure, %zz and a trailing %", key));
    }

    #[test]
    fn mentions_finds_an_ascii_domain_written_in_unicode() {
        let key = "leser@xn--bcher-kva.example";
        assert!(super::mentions("?email=leser%40b%C3%BCcher.example", key));
        assert!(super::mentions("smtp: 550 <Leser@Bücher.example>", key));
    }
}
