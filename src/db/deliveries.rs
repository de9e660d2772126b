//! Delivery rows: one per (digest, reader), claimed in batches by workers.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};

use super::schema::{deliveries, subscribers};
use super::DbConnection;

#[derive(Debug, Clone, QueryableByName)]
pub struct Claimed {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub digest_id: i64,
    #[diesel(sql_type = Text)]
    pub subscriber_id: String,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
}

/// A claimed delivery with what sending needs to know about the reader.
#[derive(Debug, Clone)]
pub struct DeliveryJob {
    pub id: i64,
    pub digest_id: i64,
    pub subscriber_id: String,
    pub attempts: i32,
    pub email: Option<String>,
    pub name: Option<String>,
    pub status: String,
}

/// Claims due deliveries (and ones whose lease ran out) and joins in the
/// readers' current address and status.
pub fn claim(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<DeliveryJob>> {
    // Leases that ran out first (a crashed worker's rows; few), then the
    // lowest queued ids through deliveries_queued_idx, which stops after one
    // batch instead of reading every queued row of the digest.
    let mut claimed = claim_where(
        conn,
        "status = 'sending' AND locked_until < ?",
        now,
        lease_until,
        limit,
    )?;
    let left = limit - claimed.len() as i64;
    if left > 0 {
        claimed.extend(claim_where(
            conn,
            "status = 'queued' AND next_attempt_at <= ?",
            now,
            lease_until,
            left,
        )?);
    }
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = claimed.iter().map(|c| c.subscriber_id.as_str()).collect();
    let readers: Vec<(String, Option<String>, Option<String>, String)> = subscribers::table
        .filter(subscribers::id.eq_any(&ids))
        .select((
            subscribers::id,
            subscribers::email,
            subscribers::name,
            subscribers::status,
        ))
        .load(conn)?;
    let by_id: std::collections::HashMap<_, _> = readers
        .into_iter()
        .map(|(id, email, name, status)| (id, (email, name, status)))
        .collect();
    Ok(claimed
        .into_iter()
        .map(|c| {
            let (email, name, status) =
                by_id
                    .get(&c.subscriber_id)
                    .cloned()
                    .unwrap_or((None, None, "erased".to_string()));
            DeliveryJob {
                id: c.id,
                digest_id: c.digest_id,
                subscriber_id: c.subscriber_id,
                attempts: c.attempts,
                email,
                name,
                status,
            }
        })
        .collect())
}

fn claim_where(
    conn: &mut DbConnection,
    condition: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<Claimed>> {
    const DELIVERIES: super::WorkTable = super::WorkTable {
        name: "deliveries",
        order: "id",
        returning: "id, digest_id, subscriber_id, attempts",
    };
    super::claim_batch(conn, &DELIVERIES, condition, now, lease_until, limit)
}

/// Settles many rows with one status (sent, skipped).
pub fn settle_many(
    conn: &mut DbConnection,
    ids: &[i64],
    status: &str,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    let mut n = 0;
    for chunk in ids.chunks(500) {
        n += diesel::update(deliveries::table.filter(deliveries::id.eq_any(chunk)))
            .set((
                deliveries::status.eq(status),
                deliveries::sent_at.eq(Some(at)),
                deliveries::locked_until.eq(None::<NaiveDateTime>),
            ))
            .execute(conn)?;
    }
    Ok(n)
}

pub fn retry_at(
    conn: &mut DbConnection,
    id: i64,
    next: NaiveDateTime,
    error: &str,
) -> QueryResult<usize> {
    diesel::update(deliveries::table.find(id))
        .set((
            deliveries::status.eq("queued"),
            deliveries::next_attempt_at.eq(next),
            deliveries::locked_until.eq(None::<NaiveDateTime>),
            deliveries::last_error.eq(Some(error)),
        ))
        .execute(conn)
}

pub fn mark_failed(conn: &mut DbConnection, id: i64, error: &str) -> QueryResult<usize> {
    diesel::update(deliveries::table.find(id))
        .set((
            deliveries::status.eq("failed"),
            deliveries::locked_until.eq(None::<NaiveDateTime>),
            deliveries::last_error.eq(Some(error)),
        ))
        .execute(conn)
}
