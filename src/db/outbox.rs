//! The transactional outbox: one row per email a request caused, written in
//! that request's transaction; the worker claims, sends and settles rows.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};

use super::schema::outbox;
use super::DbConnection;
use crate::domain::{MailKind, WorkStatus};

#[derive(Debug, Clone, QueryableByName)]
pub struct OutboxJob {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    /// A [`MailKind`]'s text, parsed when the mail is built.
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub subscriber_id: Option<String>,
    #[diesel(sql_type = Text)]
    pub recipient: String,
    #[diesel(sql_type = Text)]
    pub payload: String,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
}

pub fn enqueue(
    conn: &mut DbConnection,
    kind: MailKind,
    subscriber_id: Option<&str>,
    recipient: &str,
    payload: &str,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(outbox::table)
        .values((
            outbox::kind.eq(kind),
            outbox::subscriber_id.eq(subscriber_id),
            outbox::recipient.eq(recipient),
            outbox::payload.eq(payload),
            outbox::status.eq(WorkStatus::Queued),
            outbox::attempts.eq(0),
            outbox::next_attempt_at.eq(at),
            outbox::created_at.eq(at),
        ))
        .execute(conn)
        .map(drop)
}

/// Gives rows leased until exactly one of `leases` (written at signup for a
/// hand-over that never happened) back to the queue, due now.
pub fn release_leased_until(
    conn: &mut DbConnection,
    leases: &[NaiveDateTime],
) -> QueryResult<usize> {
    diesel::update(
        outbox::table
            .filter(outbox::status.eq(WorkStatus::Sending))
            .filter(outbox::locked_until.eq_any(leases)),
    )
    .set((
        outbox::status.eq(WorkStatus::Queued),
        outbox::locked_until.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)
}

/// Gives claimed rows back to the queue, due now (a worker that could not
/// take them, or stopped before sending them).
pub fn release(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<usize> {
    let mut n = 0;
    for chunk in ids.chunks(500) {
        n += diesel::update(
            outbox::table
                .filter(outbox::id.eq_any(chunk))
                .filter(outbox::status.eq(WorkStatus::Sending)),
        )
        .set((
            outbox::status.eq(WorkStatus::Queued),
            outbox::attempts.eq(outbox::attempts - 1),
            outbox::locked_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
    }
    Ok(n)
}

const OUTBOX: super::WorkTable = super::WorkTable {
    name: "outbox",
    order: "next_attempt_at, id",
    returning: "id, kind, subscriber_id, recipient, payload, attempts",
};

/// Claims up to `limit` rows: with `expired`, leases that ran out after a
/// crash first; then due queued rows. Concurrent workers on PostgreSQL
/// skip each other's rows.
pub fn claim(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
    expired: bool,
) -> QueryResult<Vec<OutboxJob>> {
    let claim = |conn: &mut DbConnection, condition: &str, limit: i64| {
        super::claim_batch(conn, &OUTBOX, condition, now, lease_until, limit)
    };
    // The statuses go into the text as literals written from the enum, not
    // as binds: the statement stays what it was, and a literal status is
    // what the partial index outbox_due_idx (status IN ('queued',
    // 'sending')) is sure to match, whatever plan PostgreSQL picks.
    let mut jobs = if expired {
        let leased = format!("status = '{}' AND locked_until < ?", WorkStatus::Sending);
        claim(conn, &leased, limit)?
    } else {
        Vec::new()
    };
    let left = limit - jobs.len() as i64;
    if left > 0 {
        let due = format!("status = '{}' AND next_attempt_at <= ?", WorkStatus::Queued);
        jobs.extend(claim(conn, &due, left)?);
    }
    Ok(jobs)
}

/// Extends the lease of a worker's rows still being sent.
pub fn renew(conn: &mut DbConnection, ids: &[i64], until: NaiveDateTime) -> QueryResult<usize> {
    let mut n = 0;
    for chunk in ids.chunks(500) {
        n += diesel::update(
            outbox::table
                .filter(outbox::id.eq_any(chunk))
                .filter(outbox::status.eq(WorkStatus::Sending)),
        )
        .set(outbox::locked_until.eq(Some(until)))
        .execute(conn)?;
    }
    Ok(n)
}

pub fn mark_sent(conn: &mut DbConnection, ids: &[i64], at: NaiveDateTime) -> QueryResult<usize> {
    let mut n = 0;
    for chunk in ids.chunks(500) {
        n += diesel::update(outbox::table.filter(outbox::id.eq_any(chunk)))
            .set((
                outbox::status.eq(WorkStatus::Sent),
                outbox::sent_at.eq(Some(at)),
                outbox::locked_until.eq(None::<NaiveDateTime>),
                outbox::last_error.eq(None::<String>),
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
    diesel::update(outbox::table.find(id))
        .set((
            outbox::status.eq(WorkStatus::Queued),
            outbox::next_attempt_at.eq(next),
            outbox::locked_until.eq(None::<NaiveDateTime>),
            outbox::last_error.eq(Some(error)),
        ))
        .execute(conn)
}

pub fn mark_failed(conn: &mut DbConnection, id: i64, error: &str) -> QueryResult<usize> {
    diesel::update(outbox::table.find(id))
        .set((
            outbox::status.eq(WorkStatus::Failed),
            outbox::locked_until.eq(None::<NaiveDateTime>),
            outbox::last_error.eq(Some(error)),
        ))
        .execute(conn)
}

/// Rows not yet settled (queued or in flight).
pub fn pending_count(conn: &mut DbConnection) -> QueryResult<i64> {
    outbox::table
        .filter(outbox::status.eq_any([WorkStatus::Queued, WorkStatus::Sending]))
        .count()
        .get_result(conn)
}

/// Rows by status (statuses with none are left out).
pub fn count_by_status(conn: &mut DbConnection) -> QueryResult<Vec<(WorkStatus, i64)>> {
    outbox::table
        .group_by(outbox::status)
        .select((outbox::status, diesel::dsl::count_star()))
        .load(conn)
}
