//! GDPR requests: access ([`export`]) and erasure ([`erase`]).
//!
//! Both take a connection and open no transaction of their own, so a caller
//! (API handler, admin console) composes them inside one with
//! [`db::transaction`](crate::db::transaction). Erasure keeps an anonymised
//! skeleton: the subscriber id, its status (`erased`) and timestamps, and
//! each consent event's event, time, source, consent text version and method
//! — proof that consent was given and withdrawn without saying by whom. The
//! address survives only as a keyed hash on the suppression list.
//!
//! On SQLite, `PRAGMA secure_delete` zeroes what erasure overwrites in the
//! database file, but the write-ahead log still holds the old pages until a
//! checkpoint: call [`purge_freed`] after the erasure's transaction commits.

use diesel::prelude::*;
use serde_json::{json, Value};

use crate::db::schema::{confirmation_tokens, consent_events, outbox, subscribers};
use crate::db::{self, consent, suppressions, DbConnection};
use crate::domain::{ConsentEvent, SubscriberEmail, SubscriberStatus, SuppressionReason};

/// What a consent event's source becomes when it contained the address
/// (a bounce's SMTP reply, a referer with `?email=` stored before signups
/// dropped the referer's query string).
pub const REMOVED_SOURCE: &str = "[removed at erasure]";

/// Erases a subscriber's personal data; false when the id is unknown or
/// already erased. See the module doc for what is kept.
///
/// The `erased` event takes `source` and `method` from `ctx` but never an IP
/// or user agent: the skeleton holds none at all.
pub fn erase(
    conn: &mut DbConnection,
    secret: &str,
    subscriber_id: &str,
    ctx: &consent::Context,
) -> diesel::QueryResult<bool> {
    let Some(subscriber) = lock_erasable(conn, subscriber_id)? else {
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
    scrub_consent_events(conn, subscriber_id, key.as_deref())?;
    forget_mail(conn, subscriber_id, &subscriber, key.as_deref())?;
    blank_subscriber(conn, subscriber_id, now)?;
    let skeleton = consent::Context {
        ip: None,
        user_agent: None,
        source: ctx.source.clone(),
        method: ctx.method.clone(),
    };
    consent::record(conn, subscriber_id, ConsentEvent::Erased, now, &skeleton)?;
    Ok(true)
}

/// Puts the address on the suppression list.
fn suppress(conn: &mut DbConnection, secret: &str, key: &str) -> diesel::QueryResult<()> {
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

/// The consent skeleton: no IP, no user agent, no source naming the address.
fn scrub_consent_events(
    conn: &mut DbConnection,
    subscriber_id: &str,
    key: Option<&str>,
) -> diesel::QueryResult<()> {
    let mine = consent_events::table.filter(consent_events::subscriber_id.eq(subscriber_id));
    diesel::update(mine)
        .set((
            consent_events::ip.eq(None::<String>),
            consent_events::user_agent.eq(None::<String>),
        ))
        .execute(conn)?;
    let Some(key) = key else {
        return Ok(());
    };
    let sources: Vec<(i64, Option<String>)> = mine
        .select((consent_events::id, consent_events::source))
        .load(conn)?;
    let tainted: Vec<i64> = sources
        .into_iter()
        .filter(|(_, source)| source.as_deref().is_some_and(|s| mentions(s, key)))
        .map(|(id, _)| id)
        .collect();
    if !tainted.is_empty() {
        diesel::update(consent_events::table.filter(consent_events::id.eq_any(&tainted)))
            .set(consent_events::source.eq(Some(REMOVED_SOURCE)))
            .execute(conn)?;
    }
    Ok(())
}

/// Deletes their confirmation links and outbox rows, and blanks their
/// deliveries' error texts (which may quote the address).
fn forget_mail(
    conn: &mut DbConnection,
    subscriber_id: &str,
    subscriber: &Erasable,
    key: Option<&str>,
) -> diesel::QueryResult<()> {
    diesel::delete(
        confirmation_tokens::table.filter(confirmation_tokens::subscriber_id.eq(subscriber_id)),
    )
    .execute(conn)?;
    // Every outbox row of theirs, sent ones too: each carries the address as
    // its recipient and the name in its payload.
    diesel::delete(outbox::table.filter(outbox::subscriber_id.eq(subscriber_id))).execute(conn)?;
    if let Some(key) = key {
        diesel::delete(outbox::table.filter(outbox::recipient.eq(key))).execute(conn)?;
        if subscriber.email.as_deref() != Some(key) {
            if let Some(email) = &subscriber.email {
                diesel::delete(outbox::table.filter(outbox::recipient.eq(email))).execute(conn)?;
            }
        }
    }
    // Settled deliveries stay (digest, status, time).
    db::deliveries::forget_subscriber(conn, subscriber_id)
}

/// The subscriber row keeps its id, status (`erased`) and timestamps.
fn blank_subscriber(
    conn: &mut DbConnection,
    subscriber_id: &str,
    now: chrono::NaiveDateTime,
) -> diesel::QueryResult<()> {
    diesel::update(subscribers::table.find(subscriber_id))
        .set((
            subscribers::email.eq(None::<String>),
            subscribers::email_key.eq(None::<String>),
            subscribers::name.eq(None::<String>),
            subscribers::status.eq(SubscriberStatus::Erased),
            subscribers::updated_at.eq(now),
            subscribers::last_confirmation_at.eq(None::<chrono::NaiveDateTime>),
        ))
        .execute(conn)?;
    Ok(())
}

#[derive(QueryableByName)]
struct Erasable {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    email: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    email_key: Option<String>,
}

/// The subscriber's address unless unknown or erased, row-locked on
/// PostgreSQL: a second erasure of the same reader racing this one waits,
/// then finds it erased (instead of failing on the suppression hash's
/// unique key). SQLite's `BEGIN IMMEDIATE` already serialises writers.
fn lock_erasable(conn: &mut DbConnection, id: &str) -> diesel::QueryResult<Option<Erasable>> {
    use diesel::sql_types::Text;
    crate::with_backend!(conn, |c, pg| {
        let text = format!(
            "SELECT email, email_key FROM subscribers WHERE id = ? AND status <> ? {}",
            if pg { "FOR UPDATE" } else { "" }
        );
        diesel::sql_query(db::sql(pg, &text))
            .bind::<Text, _>(id)
            .bind::<Text, _>(SubscriberStatus::Erased.as_str())
            .get_result(c)
            .optional()
    })
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

/// Everything held about a person (GDPR access): the subscriber row, every
/// consent event, their deliveries and whether a confirmation link is
/// pending. `None` when the id is unknown or erased (an erased skeleton
/// holds nothing about anyone).
pub fn export(
    conn: &mut DbConnection,
    subscriber_id: &str,
) -> diesel::QueryResult<Option<serde_json::Value>> {
    let Some(s) = db::subscribers::find(conn, subscriber_id)? else {
        return Ok(None);
    };
    if s.status == SubscriberStatus::Erased {
        return Ok(None);
    }
    let now = db::now();
    let consent = db::consent::for_subscriber(conn, subscriber_id)?;
    let sent = db::deliveries::for_subscriber(conn, subscriber_id)?;
    let pending_links: i64 = confirmation_tokens::table
        .filter(confirmation_tokens::subscriber_id.eq(subscriber_id))
        .filter(confirmation_tokens::used_at.is_null())
        .filter(confirmation_tokens::expires_at.gt(now))
        .count()
        .get_result(conn)?;
    let deliveries: Vec<Value> = sent
        .into_iter()
        .map(|(digest_id, status, sent_at)| {
            json!({"digest_id": digest_id, "status": status, "sent_at": sent_at})
        })
        .collect();
    Ok(Some(json!({
        "subscriber": {
            "id": s.id,
            "email": s.email,
            "name": s.name,
            "status": s.status,
            "created_at": s.created_at,
            "updated_at": s.updated_at,
            "confirmed_at": s.confirmed_at,
            "last_confirmation_sent_at": s.last_confirmation_at,
        },
        "consent": serde_json::to_value(&consent).map_err(serialization_error)?,
        "deliveries": deliveries,
        "confirmation_pending": pending_links > 0,
        "exported_at": now,
    })))
}

fn serialization_error(e: serde_json::Error) -> diesel::result::Error {
    diesel::result::Error::SerializationError(Box::new(e))
}

/// Moves what erasure overwrote out of SQLite's write-ahead log into the
/// (secure-deleted) database file and truncates the log, so the old pages
/// are gone from disk too. Runs outside any transaction, after the erasure
/// committed. True when the log was emptied; false when a reader kept it
/// busy (the next checkpoint completes the job). PostgreSQL: nothing to do
/// at this level.
pub fn purge_freed(conn: &mut DbConnection) -> diesel::QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Checkpoint {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        busy: i32,
    }
    match conn {
        DbConnection::Pg(_) => Ok(true),
        DbConnection::Sqlite(c) => {
            let rows: Vec<Checkpoint> =
                diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)").load(c)?;
            Ok(rows.first().is_some_and(|r| r.busy == 0))
        }
    }
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
