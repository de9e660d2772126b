//! Delivery rows: one per (digest, reader), keyed by that pair alone.
//!
//! Workers do not claim rows one by one. The fan-out cuts each digest's
//! readers into chunks (ranges of reader ids, [`CHUNK`] readers each) and a
//! worker leases a whole chunk: one small row locked and updated instead of a
//! thousand delivery rows marked `sending`. A chunk's `due_at` is when it may
//! be claimed next: at once when cut, the end of the lease while a worker has
//! it (a crashed worker's chunk comes back when its lease runs out), and the
//! earliest retry while some of its sends wait for one. Delivery rows are
//! written twice: queued at fan-out, settled after the send.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamp};

use super::schema::{deliveries, delivery_chunks, digests};
use super::{sql, DbConnection};
use crate::domain::{DeliveryStatus, DigestStatus, SubscriberStatus};

/// Readers per chunk: what one worker claims, sends and settles at a time.
pub const CHUNK: i64 = 1000;

/// One delivery row per reader confirmed now, in one INSERT … SELECT in
/// reader order (the key's order: the index grows at its right edge), then
/// the chunks. Returns how many readers it queued.
pub fn fan_out(conn: &mut DbConnection, digest_id: i64, at: NaiveDateTime) -> QueryResult<usize> {
    // Statuses in raw SQL here are literals written from the enums, so the
    // text the planner sees is what it always was.
    let n = crate::with_backend!(conn, |c, pg| {
        diesel::sql_query(sql(
            pg,
            &format!(
                "INSERT INTO deliveries (digest_id, subscriber_id, status, attempts, next_attempt_at) \
                 SELECT ?, id, '{}', 0, ? FROM subscribers WHERE status = '{}' ORDER BY id",
                DeliveryStatus::Queued,
                SubscriberStatus::Confirmed,
            ),
        ))
        .bind::<BigInt, _>(digest_id)
        .bind::<Timestamp, _>(at)
        .execute(c)
    })?;
    if n > 0 {
        cut_chunks(conn, digest_id, n, at)?;
    }
    Ok(n)
}

/// Every CHUNK-th reader of the digest starts a chunk that runs to the next;
/// `total` is how many readers the digest has.
fn cut_chunks(
    conn: &mut DbConnection,
    digest_id: i64,
    total: usize,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    crate::with_backend!(conn, |c, pg| {
        diesel::sql_query(sql(
            pg,
            "INSERT INTO delivery_chunks (digest_id, first_subscriber, next_subscriber, size, done, due_at) \
             SELECT ?, first, LEAD(first) OVER (ORDER BY first), \
                    COALESCE(LEAD(n) OVER (ORDER BY first), ?) - n, FALSE, ? FROM ( \
               SELECT subscriber_id AS first, n FROM ( \
                 SELECT subscriber_id, ROW_NUMBER() OVER (ORDER BY subscriber_id) AS n \
                 FROM deliveries WHERE digest_id = ?) AS numbered \
               WHERE (n - 1) % ? = 0) AS firsts",
        ))
        .bind::<BigInt, _>(digest_id)
        .bind::<BigInt, _>(total as i64 + 1)
        .bind::<Timestamp, _>(at)
        .bind::<BigInt, _>(digest_id)
        .bind::<BigInt, _>(CHUNK)
        .execute(c)
    })
}

/// A leased chunk of a digest's readers, with the id of the claim that
/// holds it.
#[derive(Debug, Clone, QueryableByName)]
pub struct Chunk {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub digest_id: i64,
    #[diesel(sql_type = Text)]
    pub first_subscriber: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub next_subscriber: Option<String>,
    #[diesel(sql_type = Text)]
    pub lease_id: String,
}

/// Leases the chunk that has been due longest, of a digest that is
/// sending (not paused or cancelled), until `lease_until`, under the claim
/// id `lease_id`. Workers on PostgreSQL skip chunks another worker is
/// leasing right now; SQLite has one writer.
pub fn claim_chunk(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    lease_id: &str,
) -> QueryResult<Option<Chunk>> {
    let claimed: Vec<Chunk> = crate::with_backend!(conn, |c, pg| {
        diesel::sql_query(sql(
            pg,
            &format!(
                "UPDATE delivery_chunks SET due_at = ?, lease_id = ? WHERE id IN ( \
                   SELECT id FROM delivery_chunks WHERE NOT done AND due_at <= ? \
                   AND digest_id IN (SELECT id FROM digests WHERE status = '{}') \
                   ORDER BY due_at, id LIMIT 1 {}) \
                 RETURNING id, digest_id, first_subscriber, next_subscriber, lease_id",
                DigestStatus::Sending,
                if pg { "FOR UPDATE SKIP LOCKED" } else { "" }
            ),
        ))
        .bind::<Timestamp, _>(lease_until)
        .bind::<Text, _>(lease_id)
        .bind::<Timestamp, _>(now)
        .load(c)
    })?;
    Ok(claimed.into_iter().next())
}

/// Readers whose deliveries went out (or were skipped), for
/// [`settle_in_one`].
#[derive(Debug, Default)]
pub struct Settled {
    pub sent: Vec<String>,
    pub skipped: Vec<String>,
}

/// On PostgreSQL, the common settle as one statement (so one round trip and
/// its own transaction): marks the deliveries sent or skipped, adds them to
/// the chunk's counters (renewing its lease with `renew`) if the chunk is
/// still held under this claim, and reads the digest's status. Returns
/// whether sending may go on; `None` on SQLite, whose caller settles in a
/// transaction instead.
pub fn settle_in_one(
    conn: &mut DbConnection,
    chunk: &Chunk,
    settled: &Settled,
    renew: Option<NaiveDateTime>,
) -> QueryResult<Option<bool>> {
    use diesel::sql_types::Array;
    #[derive(QueryableByName)]
    struct Going {
        #[diesel(sql_type = BigInt)]
        held: i64,
        #[diesel(sql_type = Nullable<Text>)]
        status: Option<String>,
    }
    let DbConnection::Pg(c) = conn else {
        return Ok(None);
    };
    let going: Going = diesel::sql_query(
        "WITH done AS ( \
           UPDATE deliveries SET \
             status = CASE WHEN subscriber_id = ANY($3) THEN 'skipped' ELSE 'sent' END, \
             sent_at = $4, attempts = attempts + 1 \
           WHERE digest_id = $1 AND status = 'queued' \
             AND (subscriber_id = ANY($2) OR subscriber_id = ANY($3)) \
           RETURNING status), \
         chunk AS ( \
           UPDATE delivery_chunks SET \
             sent = sent + (SELECT COUNT(*) FROM done WHERE status = 'sent'), \
             skipped = skipped + (SELECT COUNT(*) FROM done WHERE status = 'skipped'), \
             due_at = COALESCE($5, due_at) \
           WHERE id = $6 AND lease_id = $7 RETURNING id) \
         SELECT (SELECT COUNT(*) FROM chunk) AS held, \
                (SELECT status FROM digests WHERE id = $1) AS status",
    )
    .bind::<BigInt, _>(chunk.digest_id)
    .bind::<Array<Text>, _>(&settled.sent)
    .bind::<Array<Text>, _>(&settled.skipped)
    .bind::<Timestamp, _>(super::now())
    .bind::<Nullable<Timestamp>, _>(renew)
    .bind::<BigInt, _>(chunk.id)
    .bind::<Text, _>(&chunk.lease_id)
    .get_result(c)?;
    let sending = going.status.as_deref() == Some(crate::domain::DigestStatus::Sending.as_str());
    Ok(Some(going.held == 1 && sending))
}

/// Deliveries settled in one commit, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub sent: i32,
    pub failed: i32,
    pub skipped: i32,
}

/// Adds a settle's counts to the chunk's (so progress is exact as it
/// happens) and, with `renew`, extends its lease. Returns whether the chunk
/// is still held under this claim (false: it was taken over after the
/// lease ran out).
pub fn progress(
    conn: &mut DbConnection,
    chunk: &Chunk,
    counts: Counts,
    renew: Option<NaiveDateTime>,
) -> QueryResult<bool> {
    if counts == Counts::default() && renew.is_none() {
        return Ok(true);
    }
    let held = delivery_chunks::table
        .find(chunk.id)
        .filter(delivery_chunks::lease_id.eq(&chunk.lease_id));
    let add = (
        delivery_chunks::sent.eq(delivery_chunks::sent + counts.sent),
        delivery_chunks::failed.eq(delivery_chunks::failed + counts.failed),
        delivery_chunks::skipped.eq(delivery_chunks::skipped + counts.skipped),
    );
    let n = match renew {
        Some(until) => diesel::update(held)
            .set((add, delivery_chunks::due_at.eq(until)))
            .execute(conn)?,
        None => diesel::update(held).set(add).execute(conn)?,
    };
    Ok(n == 1)
}

/// A delivery that is due, with what sending needs to know about the reader
/// now (their address, name and status: someone who left after the fan-out
/// is skipped).
#[derive(Debug, Clone, QueryableByName)]
pub struct DeliveryJob {
    #[diesel(sql_type = BigInt)]
    pub digest_id: i64,
    #[diesel(sql_type = Text)]
    pub subscriber_id: String,
    /// Attempts before this one.
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    pub email: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub status: Option<SubscriberStatus>,
}

/// The chunk's deliveries that are queued and due.
pub fn due_in(
    conn: &mut DbConnection,
    chunk: &Chunk,
    now: NaiveDateTime,
) -> QueryResult<Vec<DeliveryJob>> {
    in_chunk(
        conn,
        chunk,
        "SELECT d.digest_id, d.subscriber_id, d.attempts, s.email, s.name, s.status \
         FROM deliveries d LEFT JOIN subscribers s ON s.id = d.subscriber_id",
        &format!(
            "AND d.status = '{}' AND d.next_attempt_at <= ? ORDER BY d.subscriber_id",
            DeliveryStatus::Queued
        ),
        Some(now),
    )
}

/// Runs `select` (over `deliveries d`) on the chunk's rows, then `rest`,
/// whose one `?` if any is bound to `at`.
fn in_chunk<T>(
    conn: &mut DbConnection,
    chunk: &Chunk,
    select: &str,
    rest: &str,
    at: Option<NaiveDateTime>,
) -> QueryResult<Vec<T>>
where
    T: QueryableByName<diesel::pg::Pg> + QueryableByName<diesel::sqlite::Sqlite> + 'static,
{
    let until = if chunk.next_subscriber.is_some() {
        "AND d.subscriber_id < ?"
    } else {
        ""
    };
    crate::with_backend!(conn, |c, pg| {
        let q = diesel::sql_query(sql(
            pg,
            &format!("{select} WHERE d.digest_id = ? AND d.subscriber_id >= ? {until} {rest}"),
        ))
        .into_boxed()
        .bind::<BigInt, _>(chunk.digest_id)
        .bind::<Text, _>(chunk.first_subscriber.as_str());
        let q = match &chunk.next_subscriber {
            Some(next) => q.bind::<Text, _>(next.as_str()),
            None => q,
        };
        let q = match at {
            Some(at) => q.bind::<Timestamp, _>(at),
            None => q,
        };
        q.load(c)
    })
}

/// Settles many deliveries of a digest with one status (sent, skipped).
pub fn settle_many(
    conn: &mut DbConnection,
    digest_id: i64,
    subscriber_ids: &[&str],
    status: DeliveryStatus,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    let mut n = 0;
    for ids in subscriber_ids.chunks(500) {
        // The bounds keep the scan within the batch's key range whatever
        // the planner believes about a table that just grew by a million.
        let (Some(low), Some(high)) = (ids.iter().min(), ids.iter().max()) else {
            continue;
        };
        n += diesel::update(
            deliveries::table
                .filter(deliveries::digest_id.eq(digest_id))
                .filter(deliveries::subscriber_id.between(*low, *high))
                .filter(deliveries::subscriber_id.eq_any(ids)),
        )
        .set((
            deliveries::status.eq(status),
            deliveries::sent_at.eq(Some(at)),
            deliveries::attempts.eq(deliveries::attempts + 1),
        ))
        .execute(conn)?;
    }
    Ok(n)
}

/// A transient failure: tries again at `next`.
pub fn retry_at(
    conn: &mut DbConnection,
    job: &DeliveryJob,
    next: NaiveDateTime,
    error: &str,
) -> QueryResult<usize> {
    diesel::update(deliveries::table.find((job.digest_id, &job.subscriber_id)))
        .set((
            deliveries::next_attempt_at.eq(next),
            deliveries::attempts.eq(job.attempts + 1),
            deliveries::last_error.eq(Some(error)),
        ))
        .execute(conn)
}

pub fn mark_failed(conn: &mut DbConnection, job: &DeliveryJob, error: &str) -> QueryResult<usize> {
    diesel::update(deliveries::table.find((job.digest_id, &job.subscriber_id)))
        .set((
            deliveries::status.eq(DeliveryStatus::Failed),
            deliveries::attempts.eq(job.attempts + 1),
            deliveries::last_error.eq(Some(error)),
        ))
        .execute(conn)
}

/// Ends the lease and counts the chunk's deliveries by status: it is done
/// when none is queued any more, and otherwise due again at its earliest
/// retry. A chunk taken over by another claim is left to that one.
pub fn release_chunk(conn: &mut DbConnection, chunk: &Chunk) -> QueryResult<()> {
    let held = delivery_chunks::table
        .find(chunk.id)
        .filter(delivery_chunks::lease_id.eq(&chunk.lease_id));
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = Text)]
        status: DeliveryStatus,
        #[diesel(sql_type = BigInt)]
        n: i64,
        #[diesel(sql_type = Nullable<Timestamp>)]
        next_due: Option<NaiveDateTime>,
    }
    let counts: Vec<(DeliveryStatus, i64, Option<NaiveDateTime>)> = in_chunk::<Count>(
        conn,
        chunk,
        "SELECT d.status, COUNT(*) AS n, MIN(d.next_attempt_at) AS next_due FROM deliveries d",
        "GROUP BY d.status",
        None,
    )?
    .into_iter()
    .map(|c| (c.status, c.n, c.next_due))
    .collect();
    let count = |status: DeliveryStatus| {
        counts
            .iter()
            .find(|(s, _, _)| *s == status)
            .map_or(0, |(_, n, _)| *n as i32)
    };
    let next_due = counts
        .iter()
        .find(|(s, _, _)| *s == DeliveryStatus::Queued)
        .and_then(|(_, _, at)| *at);
    let n = diesel::update(held)
        .set((
            delivery_chunks::sent.eq(count(DeliveryStatus::Sent)),
            delivery_chunks::failed.eq(count(DeliveryStatus::Failed)),
            delivery_chunks::skipped.eq(count(DeliveryStatus::Skipped)),
            delivery_chunks::done.eq(next_due.is_none()),
            delivery_chunks::lease_id.eq(None::<String>),
        ))
        .execute(conn)?;
    if let (1, Some(at)) = (n, next_due) {
        diesel::update(delivery_chunks::table.find(chunk.id))
            .set(delivery_chunks::due_at.eq(at))
            .execute(conn)?;
    }
    Ok(())
}

/// Marks sent every digest still sending whose chunks are all done: after
/// each settle, after a fan-out to nobody, and whenever a worker finds no
/// work. That last one matters: two workers settling a digest's last two
/// chunks at once each see the other's chunk still open.
pub fn finish_done_digests(conn: &mut DbConnection, at: NaiveDateTime) -> QueryResult<Vec<i64>> {
    let open = delivery_chunks::table
        .filter(delivery_chunks::digest_id.eq(digests::id))
        .filter(delivery_chunks::done.eq(false));
    let done = digests::table
        .filter(digests::status.eq(DigestStatus::Sending))
        .filter(diesel::dsl::not(diesel::dsl::exists(open)));
    crate::with_backend!(conn, |c, _pg| diesel::update(done)
        .set((
            digests::status.eq(DigestStatus::Sent),
            digests::finished_at.eq(Some(at)),
        ))
        .returning(digests::id)
        .get_results(c))
}

/// The digests a reader's deliveries belong to, with status and time, by
/// probing the (digest, reader) key once per digest.
pub fn for_subscriber(
    conn: &mut DbConnection,
    subscriber_id: &str,
) -> QueryResult<Vec<(i64, DeliveryStatus, Option<NaiveDateTime>)>> {
    let digest_ids: Vec<i64> = digests::table
        .select(digests::id)
        .order(digests::id)
        .load(conn)?;
    let mut rows = Vec::new();
    for ids in digest_ids.chunks(500) {
        rows.extend(
            deliveries::table
                .filter(deliveries::digest_id.eq_any(ids))
                .filter(deliveries::subscriber_id.eq(subscriber_id))
                .order(deliveries::digest_id)
                .select((
                    deliveries::digest_id,
                    deliveries::status,
                    deliveries::sent_at,
                ))
                .load::<(i64, DeliveryStatus, Option<NaiveDateTime>)>(conn)?,
        );
    }
    Ok(rows)
}

/// Erasure: blanks the error texts of the reader's deliveries, which may
/// quote the address. Queued ones stay (their reader is no longer confirmed,
/// so they are skipped) and keep the digest's counts whole.
pub fn forget_subscriber(conn: &mut DbConnection, subscriber_id: &str) -> QueryResult<()> {
    let digest_ids: Vec<i64> = digests::table.select(digests::id).load(conn)?;
    for ids in digest_ids.chunks(500) {
        diesel::update(
            deliveries::table
                .filter(deliveries::digest_id.eq_any(ids))
                .filter(deliveries::subscriber_id.eq(subscriber_id)),
        )
        .set(deliveries::last_error.eq(None::<String>))
        .execute(conn)?;
    }
    Ok(())
}
