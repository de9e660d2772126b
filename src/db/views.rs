//! Reads that handlers need, assembled here in as few queries as they take,
//! so no handler stitches rows together (or loops a query per row).

use std::collections::HashMap;

use diesel::prelude::*;

use super::consent::ConsentRecord;
use super::digests::{Digest, Progress};
use super::schema::delivery_chunks;
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

/// The newest `limit` digests with their progress: two queries (the
/// digests, then one grouped sum over their chunks), not one per digest.
pub fn recent_digests(conn: &mut DbConnection, limit: i64) -> QueryResult<Vec<(Digest, Progress)>> {
    use diesel::dsl::sum;
    let digests = super::digests::recent(conn, limit)?;
    let ids: Vec<i64> = digests.iter().map(|d| d.id).collect();
    type Sums = (i64, Option<i64>, Option<i64>, Option<i64>, Option<i64>);
    let sums: Vec<Sums> = delivery_chunks::table
        .filter(delivery_chunks::digest_id.eq_any(&ids))
        .group_by(delivery_chunks::digest_id)
        .select((
            delivery_chunks::digest_id,
            sum(delivery_chunks::size),
            sum(delivery_chunks::sent),
            sum(delivery_chunks::failed),
            sum(delivery_chunks::skipped),
        ))
        .load(conn)?;
    let mut by_digest: HashMap<i64, Progress> = sums
        .into_iter()
        .map(|(id, size, sent, failed, skipped)| {
            (id, Progress::from_sums(size, sent, failed, skipped))
        })
        .collect();
    Ok(digests
        .into_iter()
        .map(|d| {
            let p = by_digest.remove(&d.id).unwrap_or_default();
            (d, p)
        })
        .collect())
}
