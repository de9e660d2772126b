//! Deliveries without a row per reader.
//!
//! Queuing a digest writes nothing per reader: it counts its audience (the
//! readers confirmed at that moment, `audience_at`) and leaves the digest
//! to be cut into chunks, ranges of reader ids, as workers get to it: a
//! claim that finds no chunk due cuts the next [`CHUNK`] reader ids from
//! the digest's `cut_from` (an index range scan of the subscribers' key).
//! So a digest to ten million readers costs a couple of rows to queue and a
//! row per chunk to send.
//!
//! A chunk reads its readers from `subscribers` when it is claimed (the
//! audience still confirmed then), sends them in id order and keeps a
//! cursor: the last reader whose send is committed, every reader before
//! it committed too. A chunk claimed again (its worker died, or stopped)
//! starts after the cursor, so at most the sends in flight are repeated.
//! Delivery rows exist only for exceptions: a send that waits for a retry,
//! failed, or was skipped (and what became of a retry). A chunk is done
//! once its range is passed and none of its exceptions waits for a retry;
//! its `due_at` is when it may be claimed next (the lease's end while it
//! is held, the earliest retry after).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text, Timestamp};

use super::schema::{deliveries, delivery_chunks, digests, subscribers};
use super::{sql, DbConnection};
use crate::domain::{DeliveryStatus, DigestStatus, SubscriberStatus};

/// Reader ids per chunk: what one worker claims, sends and settles at a time.
pub const CHUNK: i64 = 1000;

/// Queues a digest for its audience (the rule of
/// [`super::audience::eligible`], at `at`). Returns their number; the
/// digest is cut into chunks as it is sent.
pub fn fan_out(conn: &mut DbConnection, digest_id: i64, at: NaiveDateTime) -> QueryResult<usize> {
    // The rule reads the digest's audience time: set it before the count.
    diesel::update(digests::table.find(digest_id))
        .set(digests::audience_at.eq(Some(at)))
        .execute(conn)?;
    let n = super::audience::count(conn, digest_id)?;
    diesel::update(digests::table.find(digest_id))
        // Nothing to cut for nobody.
        .set(digests::cut_from.eq((n > 0).then_some("")))
        .execute(conn)?;
    Ok(usize::try_from(n).unwrap_or_default())
}

/// A leased chunk of a digest's readers: `[first, next)` in id order, with
/// its cursor and the id of the claim that holds it.
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
    #[diesel(sql_type = Nullable<Text>)]
    pub cursor: Option<String>,
    #[diesel(sql_type = Bool)]
    pub passed: bool,
}

/// Leases a chunk until `lease_until` under the claim id `lease_id`: the
/// one due longest of a digest that is sending (not paused or cancelled),
/// or else a new one cut from a sending digest. Run it in a transaction.
/// Workers on PostgreSQL skip rows another worker holds locked; SQLite has
/// one writer.
pub fn claim_chunk(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    lease_id: &str,
    take_over: bool,
) -> QueryResult<Option<Chunk>> {
    let columns = "id, digest_id, first_subscriber, next_subscriber, lease_id, cursor, passed";
    // A chunk still under a claim whose lease ran out is taken over only
    // when the caller may (see `faults::Reach`); a released one always.
    let held = if take_over {
        ""
    } else {
        "AND lease_id IS NULL"
    };
    let claimed: Vec<Chunk> = crate::with_backend!(conn, |c, pg| {
        diesel::sql_query(sql(
            pg,
            &format!(
                "UPDATE delivery_chunks SET due_at = ?, lease_id = ? WHERE id IN ( \
                   SELECT id FROM delivery_chunks WHERE NOT done AND due_at <= ? {held} \
                   AND digest_id IN (SELECT id FROM digests WHERE status = '{}') \
                   ORDER BY due_at, id LIMIT 1 {}) \
                 RETURNING {columns}",
                DigestStatus::Sending,
                if pg { "FOR UPDATE SKIP LOCKED" } else { "" }
            ),
        ))
        .bind::<Timestamp, _>(lease_until)
        .bind::<Text, _>(lease_id)
        .bind::<Timestamp, _>(now)
        .load(c)
    })?;
    match claimed.into_iter().next() {
        Some(chunk) => Ok(Some(chunk)),
        None => cut_chunk(conn, lease_until, lease_id),
    }
}

/// Cuts the next chunk of the first sending digest not yet cut to the end,
/// leased at once: from its `cut_from` to the [`CHUNK`]-th reader id after
/// it (every status counts: the range is of ids, not of the audience).
fn cut_chunk(
    conn: &mut DbConnection,
    lease_until: NaiveDateTime,
    lease_id: &str,
) -> QueryResult<Option<Chunk>> {
    #[derive(QueryableByName)]
    struct Uncut {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = Text)]
        cut_from: String,
    }
    if let DbConnection::Pg(c) = conn {
        // Waiting for another claim's cut is short; waiting behind a
        // session that died holding the digest is not: give up and claim
        // again later (the server ends such a session, see db::open).
        diesel::connection::SimpleConnection::batch_execute(c, "SET LOCAL lock_timeout = '2s'")?;
    }
    let uncut: Vec<Uncut> = crate::with_backend!(conn, |c, pg| {
        diesel::sql_query(format!(
            "SELECT id, cut_from FROM digests WHERE status = '{}' AND cut_from IS NOT NULL \
             ORDER BY id LIMIT 1 {}",
            DigestStatus::Sending,
            // Wait for another claim's cut (it is short) rather than skip:
            // skipping would look like no work and idle the lane for a poll.
            if pg { "FOR UPDATE" } else { "" }
        ))
        .load(c)
    })?;
    let Some(digest) = uncut.into_iter().next() else {
        return Ok(None);
    };
    let next: Option<String> = subscribers::table
        .filter(subscribers::id.ge(&digest.cut_from))
        .order(subscribers::id)
        .offset(CHUNK)
        .select(subscribers::id)
        .first(conn)
        .optional()?;
    diesel::update(digests::table.find(digest.id))
        .set(digests::cut_from.eq(&next))
        .execute(conn)?;
    let id: i64 = crate::with_backend!(conn, |c, _pg| {
        diesel::insert_into(delivery_chunks::table)
            .values((
                delivery_chunks::digest_id.eq(digest.id),
                delivery_chunks::first_subscriber.eq(&digest.cut_from),
                delivery_chunks::next_subscriber.eq(&next),
                delivery_chunks::size.eq(0),
                delivery_chunks::done.eq(false),
                delivery_chunks::due_at.eq(lease_until),
                delivery_chunks::lease_id.eq(lease_id),
            ))
            .returning(delivery_chunks::id)
            .get_result(c)
    })?;
    Ok(Some(Chunk {
        id,
        digest_id: digest.id,
        first_subscriber: digest.cut_from,
        next_subscriber: next,
        lease_id: lease_id.to_string(),
        cursor: None,
        passed: false,
    }))
}

/// A send to make, with what sending needs to know about the reader now
/// (their address, name and status: a reader who left before a retry is
/// skipped). `retry` sends have an exception row already; fresh ones do
/// not.
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
    /// The reader's section choice: which edition of the digest they get.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub choice_id: Option<i64>,
    #[diesel(sql_type = Bool)]
    pub retry: bool,
}

/// The chunk's sends: its exceptions due for a retry, then (unless the
/// range is passed) the readers after the cursor who are in the digest's
/// audience now ([`super::audience::eligible`]) and have no delivery row
/// yet, in id order. (A reader who confirmed since
/// the digest was queued gets it too: it goes to whoever is confirmed when
/// it is sent, and its total grows by them.)
pub fn due_in(
    conn: &mut DbConnection,
    chunk: &Chunk,
    now: NaiveDateTime,
) -> QueryResult<Vec<DeliveryJob>> {
    let mut jobs: Vec<DeliveryJob> = in_range(
        conn,
        chunk,
        "SELECT d.digest_id, d.subscriber_id, d.attempts, s.email, s.name, s.status, s.choice_id, \
         TRUE AS retry \
         FROM deliveries d LEFT JOIN subscribers s ON s.id = d.subscriber_id \
         WHERE d.digest_id = ? AND",
        "d.subscriber_id",
        &format!(
            "AND d.status = '{}' AND d.next_attempt_at <= ? ORDER BY d.subscriber_id",
            DeliveryStatus::Queued
        ),
        Some(now),
    )?;
    if !chunk.passed {
        let fresh: Vec<DeliveryJob> = in_range(
            conn,
            chunk,
            &format!(
                "SELECT CAST({} AS BIGINT) AS digest_id, s.id AS subscriber_id, 0 AS attempts, s.email, s.name, \
                 s.status, s.choice_id, FALSE AS retry FROM subscribers s WHERE NOT EXISTS ( \
                   SELECT 1 FROM deliveries d WHERE d.digest_id = ? AND d.subscriber_id = s.id) \
                 AND",
                chunk.digest_id
            ),
            "s.id",
            &format!(
                "AND {} {} ORDER BY s.id",
                super::audience::eligible(chunk.digest_id),
                if chunk.cursor.is_some() { "AND s.id > ?" } else { "" },
            ),
            None,
        )?;
        jobs.extend(fresh);
    }
    Ok(jobs)
}

/// Runs `select` (whose one `?` is the digest id, and which ends in
/// `WHERE … AND`) over the chunk's range of `key`, then `rest`, whose one
/// `?` if any is bound to `at` or else to the chunk's cursor.
fn in_range<T>(
    conn: &mut DbConnection,
    chunk: &Chunk,
    select: &str,
    key: &str,
    rest: &str,
    at: Option<NaiveDateTime>,
) -> QueryResult<Vec<T>>
where
    T: QueryableByName<diesel::pg::Pg> + QueryableByName<diesel::sqlite::Sqlite> + 'static,
{
    let until = if chunk.next_subscriber.is_some() {
        format!("AND {key} < ?")
    } else {
        String::new()
    };
    crate::with_backend!(conn, |c, pg| {
        let q = diesel::sql_query(sql(pg, &format!("{select} {key} >= ? {until} {rest}")))
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
        let q = match (at, rest.contains('?'), &chunk.cursor) {
            (None, true, Some(cursor)) => q.bind::<Text, _>(cursor.as_str()),
            _ => q,
        };
        q.load(c)
    })
}

/// Sends settled in one commit, by outcome, and how far the chunk's
/// cursor moves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub sent: i32,
    pub failed: i32,
    pub skipped: i32,
    /// Where the cursor moves: the last fresh reader settled, and where it
    /// must be now (the commit before this one must have moved it there).
    pub cursor: Option<Move>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub from: Option<String>,
    pub to: String,
}

/// What a settle's update of its chunk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// Done: the chunk is still held under this claim.
    Held,
    /// Nothing done: another claim took the chunk over.
    Lost,
    /// Nothing done: the commit ahead of this one has not moved the cursor
    /// yet.
    OutOfTurn,
}

/// Adds a settle's counts to its chunk, moves the cursor and renews the
/// lease, if the chunk is still held under this claim and (when the cursor
/// moves) the cursor is where this run starts. One statement by primary
/// key, built by diesel so both backends keep it prepared: it runs for
/// every few sends. Returns the rows changed (0 or 1).
fn update_chunk(
    conn: &mut DbConnection,
    chunk: &Chunk,
    counts: &Counts,
    renew: Option<NaiveDateTime>,
) -> QueryResult<usize> {
    use delivery_chunks as dc;
    let now = super::now();
    crate::with_backend!(conn, |c, _pg| {
        let q = diesel::update(dc::table)
            .set((
                dc::sent.eq(dc::sent + counts.sent),
                dc::failed.eq(dc::failed + counts.failed),
                dc::skipped.eq(dc::skipped + counts.skipped),
                counts.cursor.as_ref().map(|m| dc::cursor.eq(m.to.as_str())),
                dc::settled_at.eq(now),
                renew.map(|until| dc::due_at.eq(until)),
            ))
            .into_boxed()
            .filter(dc::id.eq(chunk.id))
            .filter(dc::lease_id.eq(chunk.lease_id.as_str()));
        let q = match counts.cursor.as_ref().map(|m| m.from.as_deref()) {
            None => q,
            Some(Some(from)) => q.filter(dc::cursor.eq(from)),
            Some(None) => q.filter(dc::cursor.is_null()),
        };
        q.execute(c)
    })
}

/// Whether a cursor at `now` is already at or past `to`: the run was
/// committed before (its commit's answer was lost, and this is its retry).
/// Reader ids are UUIDs, whose text order is the same in Rust and in the
/// databases' collations.
fn already_past(now: Option<&str>, to: &str) -> bool {
    now.is_some_and(|now| now >= to)
}

/// Adds a settle's counts to the chunk's (so progress is exact as it
/// happens), moves its cursor and, with `renew`, extends its lease: when
/// the chunk is still held under this claim and its cursor is where this
/// run starts. A run found already committed (its commit's answer was
/// lost) counts as done.
pub fn progress(
    conn: &mut DbConnection,
    chunk: &Chunk,
    counts: &Counts,
    renew: Option<NaiveDateTime>,
) -> QueryResult<Update> {
    if update_chunk(conn, chunk, counts, renew)? == 1 {
        return Ok(Update::Held);
    }
    Ok(match (held_cursor(conn, chunk)?, &counts.cursor) {
        (None, _) => Update::Lost,
        (Some(now), Some(run)) if already_past(now.as_deref(), &run.to) => Update::Held,
        (Some(_), _) => Update::OutOfTurn,
    })
}

/// The chunk's cursor, if the chunk is still held under this claim.
pub fn cursor_of(conn: &mut DbConnection, chunk: &Chunk) -> QueryResult<Option<String>> {
    Ok(held_cursor(conn, chunk)?.flatten())
}

/// `Some(cursor)` while the chunk is held under this claim, `None` once
/// another claim took it over.
fn held_cursor(conn: &mut DbConnection, chunk: &Chunk) -> QueryResult<Option<Option<String>>> {
    delivery_chunks::table
        .find(chunk.id)
        .filter(delivery_chunks::lease_id.eq(&chunk.lease_id))
        .select(delivery_chunks::cursor)
        .first(conn)
        .optional()
}

/// Records what became of one send as the reader's exception row: a new
/// row for a fresh send, the existing one for a retry.
pub fn record(
    conn: &mut DbConnection,
    job: &DeliveryJob,
    status: DeliveryStatus,
    next_attempt_at: NaiveDateTime,
    error: Option<&str>,
) -> QueryResult<usize> {
    let sent_at = (status == DeliveryStatus::Sent).then_some(next_attempt_at);
    if job.retry {
        return diesel::update(deliveries::table.find((job.digest_id, &job.subscriber_id)))
            .set((
                deliveries::status.eq(status),
                deliveries::attempts.eq(job.attempts + 1),
                deliveries::next_attempt_at.eq(next_attempt_at),
                deliveries::last_error.eq(error),
                deliveries::sent_at.eq(sent_at),
            ))
            .execute(conn);
    }
    crate::with_backend!(conn, |c, _pg| diesel::insert_into(deliveries::table)
        .values((
            deliveries::digest_id.eq(job.digest_id),
            deliveries::subscriber_id.eq(&job.subscriber_id),
            deliveries::status.eq(status),
            deliveries::attempts.eq(job.attempts + 1),
            deliveries::next_attempt_at.eq(next_attempt_at),
            deliveries::last_error.eq(error),
            deliveries::sent_at.eq(sent_at),
        ))
        .on_conflict_do_nothing()
        .execute(c))
}

/// Ends the lease. With `passed` (every reader the claim read is settled)
/// the range is passed; a passed chunk is done when none of its exceptions
/// waits for a retry, and otherwise due again at the earliest one. A chunk
/// not passed (its worker stopped) is due again at once. A chunk taken
/// over by another claim is left to that one.
pub fn release_chunk(
    conn: &mut DbConnection,
    chunk: &Chunk,
    passed: bool,
    now: NaiveDateTime,
) -> QueryResult<()> {
    #[derive(QueryableByName)]
    struct Waiting {
        #[diesel(sql_type = Nullable<Timestamp>)]
        next_due: Option<NaiveDateTime>,
    }
    let waiting: Vec<Waiting> = in_range(
        conn,
        chunk,
        "SELECT MIN(d.next_attempt_at) AS next_due FROM deliveries d WHERE d.digest_id = ? AND",
        "d.subscriber_id",
        &format!("AND d.status = '{}'", DeliveryStatus::Queued),
        None,
    )?;
    let next_retry = waiting.into_iter().next().and_then(|w| w.next_due);
    let passed = passed || chunk.passed;
    let due = match (passed, next_retry) {
        (false, _) => now,
        (true, Some(at)) => at,
        (true, None) => now,
    };
    diesel::update(
        delivery_chunks::table
            .find(chunk.id)
            .filter(delivery_chunks::lease_id.eq(&chunk.lease_id)),
    )
    .set((
        delivery_chunks::passed.eq(passed),
        delivery_chunks::done.eq(passed && next_retry.is_none()),
        delivery_chunks::due_at.eq(due),
        delivery_chunks::lease_id.eq(None::<String>),
    ))
    .execute(conn)
    .map(drop)
}

/// Marks sent every digest still sending that is cut to the end and whose
/// chunks are all done: after each release, after a fan-out to nobody, and
/// whenever a worker finds no work. That last one matters: two workers
/// settling a digest's last two chunks at once each see the other's chunk
/// still open.
pub fn finish_done_digests(conn: &mut DbConnection, at: NaiveDateTime) -> QueryResult<Vec<i64>> {
    let open = delivery_chunks::table
        .filter(delivery_chunks::digest_id.eq(digests::id))
        .filter(delivery_chunks::done.eq(false));
    let done = digests::table
        .filter(digests::status.eq(DigestStatus::Sending))
        .filter(digests::cut_from.is_null())
        .filter(diesel::dsl::not(diesel::dsl::exists(open)));
    crate::with_backend!(conn, |c, _pg| diesel::update(done)
        .set((
            digests::status.eq(DigestStatus::Sent),
            digests::finished_at.eq(Some(at)),
        ))
        .returning(digests::id)
        .get_results(c))
}

/// A reader's exception rows: (digest, status, sent at).
pub fn exceptions_of(
    conn: &mut DbConnection,
    subscriber_id: &str,
) -> QueryResult<Vec<(i64, DeliveryStatus, Option<NaiveDateTime>)>> {
    let digest_ids: Vec<i64> = digests::table
        .select(digests::id)
        .order(digests::id)
        .load(conn)?;
    let mut rows = Vec::new();
    // One probe of the (digest, reader) key per digest.
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

/// A chunk whose range holds a reader and has got past them: the reader
/// was sent that digest unless they have an exception row there, or were
/// not in its audience or no longer confirmed by then.
#[derive(Debug, Clone)]
pub struct PassedBy {
    pub digest_id: i64,
    pub audience_at: Option<NaiveDateTime>,
    pub settled_at: Option<NaiveDateTime>,
}

/// The chunks (of any digest) that got past `subscriber_id` in their range.
pub fn passed_by(conn: &mut DbConnection, subscriber_id: &str) -> QueryResult<Vec<PassedBy>> {
    let rows: Vec<(i64, Option<NaiveDateTime>, Option<NaiveDateTime>)> = delivery_chunks::table
        .inner_join(digests::table)
        .filter(delivery_chunks::first_subscriber.le(subscriber_id))
        .filter(
            delivery_chunks::next_subscriber
                .gt(subscriber_id)
                .or(delivery_chunks::next_subscriber.is_null()),
        )
        .filter(
            delivery_chunks::passed
                .eq(true)
                .or(delivery_chunks::cursor.ge(subscriber_id)),
        )
        .order(delivery_chunks::digest_id)
        .select((
            delivery_chunks::digest_id,
            digests::audience_at,
            delivery_chunks::settled_at,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(digest_id, audience_at, settled_at)| PassedBy {
            digest_id,
            audience_at,
            settled_at,
        })
        .collect())
}

/// Erasure: blanks the error texts of the reader's exception rows, which
/// may quote the address.
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
