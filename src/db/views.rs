//! Reads that handlers need, assembled here in as few queries as they take,
//! so no handler stitches rows together (or loops a query per row).

use diesel::prelude::*;

use super::consent::ConsentRecord;
use super::digests::{Digest, Progress};
use super::subscribers::Subscriber;
use super::DbConnection;

/// A reader and their consent history, oldest event first.
pub fn subscriber_with_consent(
    conn: &mut DbConnection,
    id: &str,
) -> QueryResult<Option<(Subscriber, Vec<ConsentRecord>)>> {
    let Some(subscriber) = super::subscribers::find(conn, id)? else {
        return Ok(None);
    };
    let consent = super::consent::for_subscriber(conn, id)?;
    Ok(Some((subscriber, consent)))
}

/// A reader, their consent history and the full wording of each consent
/// text version in it (by version).
pub type ConsentWithTexts = (
    Subscriber,
    Vec<ConsentRecord>,
    std::collections::HashMap<String, String>,
);

/// [`subscriber_with_consent`] and the consent texts its events name.
pub fn subscriber_with_consent_texts(
    conn: &mut DbConnection,
    id: &str,
) -> QueryResult<Option<ConsentWithTexts>> {
    let Some((subscriber, consent)) = subscriber_with_consent(conn, id)? else {
        return Ok(None);
    };
    let mut versions: Vec<String> = consent
        .iter()
        .filter_map(|e| e.consent_text_version.clone())
        .collect();
    versions.dedup();
    let texts = super::consent::texts(conn, &versions)?;
    Ok(Some((subscriber, consent, texts)))
}

/// The newest `limit` digests with their progress: two queries (the
/// digests, then one grouped sum over their chunks), not one per digest.
pub fn recent_digests(conn: &mut DbConnection, limit: i64) -> QueryResult<Vec<(Digest, Progress)>> {
    let digests = super::digests::recent(conn, limit)?;
    let progress = super::digests::progress_of(conn, &digests)?;
    Ok(digests.into_iter().zip(progress).collect())
}
