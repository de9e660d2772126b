//! The transactional outbox: one row per email a request caused, written in
//! that request's transaction; the worker claims, sends and settles rows.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};

use std::collections::HashMap;

use super::schema::outbox;
use super::unnest::{Bind, Sql, Unnest};
use super::DbConnection;

#[derive(Debug, Clone, QueryableByName)]
pub struct OutboxJob {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
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
    kind: &str,
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
            outbox::status.eq("queued"),
            outbox::attempts.eq(0),
            outbox::next_attempt_at.eq(at),
            outbox::created_at.eq(at),
        ))
        .execute(conn)
        .map(drop)
}

/// Confirmation emails for many readers: `(subscriber id, address,
/// payload)` triples. With `lease_until`, the rows go in already claimed by
/// the caller (`sending`, first attempt, leased until then) and come back as
/// jobs to hand to this instance's worker; without, they are queued for any
/// worker to claim and nothing comes back.
pub fn enqueue_confirmations(
    conn: &mut DbConnection,
    mails: &[(&str, &str, String)],
    at: NaiveDateTime,
    lease_until: Option<NaiveDateTime>,
) -> QueryResult<Vec<OutboxJob>> {
    if mails.is_empty() {
        return Ok(Vec::new());
    }
    let (status, attempts) = match lease_until {
        Some(_) => ("sending", 1),
        None => ("queued", 0),
    };
    // RETURNING's order is not promised: rows are matched up by reader.
    let ids: HashMap<String, i64> = match conn {
        DbConnection::Pg(c) => Unnest::<EnqueueConfirmations>::new(vec![
            Bind::Text(status),
            Bind::Int(attempts),
            Bind::At(at),
            Bind::MaybeAt(lease_until),
            Bind::At(at),
            Bind::Texts(mails.iter().map(|(id, _, _)| *id).collect()),
            Bind::Texts(mails.iter().map(|(_, to, _)| *to).collect()),
            Bind::Texts(mails.iter().map(|(_, _, p)| p.as_str()).collect()),
        ])
        .load::<(String, i64)>(c)?,
        DbConnection::Sqlite(c) => {
            let rows: Vec<_> = mails
                .iter()
                .map(|(subscriber_id, recipient, payload)| {
                    (
                        outbox::kind.eq("confirm"),
                        outbox::subscriber_id.eq(Some(*subscriber_id)),
                        outbox::recipient.eq(*recipient),
                        outbox::payload.eq(payload.as_str()),
                        outbox::status.eq(status),
                        outbox::attempts.eq(attempts),
                        outbox::next_attempt_at.eq(at),
                        outbox::locked_until.eq(lease_until),
                        outbox::created_at.eq(at),
                    )
                })
                .collect();
            diesel::insert_into(outbox::table)
                .values(&rows)
                .returning((outbox::subscriber_id.assume_not_null(), outbox::id))
                .get_results::<(String, i64)>(c)?
        }
    }
    .into_iter()
    .collect();
    if lease_until.is_none() {
        return Ok(Vec::new());
    }
    Ok(mails
        .iter()
        .filter_map(|(subscriber_id, recipient, payload)| {
            Some(OutboxJob {
                id: *ids.get(*subscriber_id)?,
                kind: "confirm".into(),
                subscriber_id: Some(subscriber_id.to_string()),
                recipient: recipient.to_string(),
                payload: payload.clone(),
                attempts,
            })
        })
        .collect())
}

/// [`enqueue_confirmations`] on PostgreSQL.
struct EnqueueConfirmations;
impl Sql for EnqueueConfirmations {
    const SQL: &'static str = "INSERT INTO outbox (kind, status, attempts, next_attempt_at, \
        locked_until, created_at, subscriber_id, recipient, payload) \
        SELECT 'confirm', ?, ?, ?, ?, ?, s, r, p \
        FROM unnest(?::text[], ?::text[], ?::text[]) AS t(s, r, p) \
        RETURNING subscriber_id, id";
    type Returning = (Text, BigInt);
}

/// Gives claimed rows back to the queue, due now (a worker that could not
/// take them, or stopped before sending them).
pub fn release(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<usize> {
    let mut n = 0;
    for chunk in ids.chunks(500) {
        n += diesel::update(
            outbox::table
                .filter(outbox::id.eq_any(chunk))
                .filter(outbox::status.eq("sending")),
        )
        .set((
            outbox::status.eq("queued"),
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

/// Claims up to `limit` rows: leases that ran out after a crash first, then
/// due queued rows. Concurrent workers on PostgreSQL skip each other's rows.
pub fn claim(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<OutboxJob>> {
    let claim = |conn: &mut DbConnection, condition: &str, limit: i64| {
        super::claim_batch(conn, &OUTBOX, condition, now, lease_until, limit)
    };
    let mut jobs = claim(conn, "status = 'sending' AND locked_until < ?", limit)?;
    let left = limit - jobs.len() as i64;
    if left > 0 {
        jobs.extend(claim(
            conn,
            "status = 'queued' AND next_attempt_at <= ?",
            left,
        )?);
    }
    Ok(jobs)
}

pub fn mark_sent(conn: &mut DbConnection, ids: &[i64], at: NaiveDateTime) -> QueryResult<usize> {
    let mut n = 0;
    for chunk in ids.chunks(500) {
        n += diesel::update(outbox::table.filter(outbox::id.eq_any(chunk)))
            .set((
                outbox::status.eq("sent"),
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
            outbox::status.eq("queued"),
            outbox::next_attempt_at.eq(next),
            outbox::locked_until.eq(None::<NaiveDateTime>),
            outbox::last_error.eq(Some(error)),
        ))
        .execute(conn)
}

pub fn mark_failed(conn: &mut DbConnection, id: i64, error: &str) -> QueryResult<usize> {
    diesel::update(outbox::table.find(id))
        .set((
            outbox::status.eq("failed"),
            outbox::locked_until.eq(None::<NaiveDateTime>),
            outbox::last_error.eq(Some(error)),
        ))
        .execute(conn)
}

/// Rows not yet settled (queued or in flight).
pub fn pending_count(conn: &mut DbConnection) -> QueryResult<i64> {
    outbox::table
        .filter(outbox::status.eq_any(["queued", "sending"]))
        .count()
        .get_result(conn)
}
