//! Digests: composed once (subject and bodies rendered once), queued for
//! their audience without a row per reader (see [`super::deliveries`]).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::schema::{delivery_chunks, digests};
use super::DbConnection;
use crate::domain::DigestStatus;

#[derive(Clone, Debug, Queryable, Selectable, Serialize)]
#[diesel(table_name = digests)]
pub struct Digest {
    pub id: i64,
    pub status: DigestStatus,
    pub subject: String,
    #[serde(skip)]
    pub body_text: String,
    #[serde(skip)]
    pub body_html: String,
    #[serde(rename = "articles")]
    pub article_count: i32,
    pub total: i32,
    #[serde(skip)]
    pub idempotency_key: Option<String>,
    #[serde(serialize_with = "crate::domain::time::utc")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "crate::domain::time::utc_opt")]
    pub finished_at: Option<NaiveDateTime>,
    /// Why it is paused (the relay's reply, or "paused by an operator").
    #[serde(rename = "reason", skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// An editor's words above the articles (drafts).
    pub intro: Option<String>,
    /// The subject an editor wrote; `None`: the template's.
    #[serde(skip)]
    pub custom_subject: Option<String>,
    /// When a scheduled digest goes out.
    pub scheduled_at: Option<NaiveDateTime>,
}

/// Delivery counts of a digest.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Progress {
    pub total: i64,
    pub sent: i64,
    pub failed: i64,
    pub queued: i64,
    pub skipped: i64,
}

pub fn insert(
    conn: &mut DbConnection,
    (subject, status): (&str, DigestStatus),
    idempotency_key: Option<&str>,
    at: NaiveDateTime,
) -> QueryResult<i64> {
    let values = (
        digests::status.eq(status),
        digests::subject.eq(subject),
        digests::body_text.eq(""),
        digests::body_html.eq(""),
        digests::article_count.eq(0),
        digests::total.eq(0),
        digests::idempotency_key.eq(idempotency_key),
        digests::created_at.eq(at),
    );
    crate::with_backend!(conn, |c, _pg| diesel::insert_into(digests::table)
        .values(values)
        .returning(digests::id)
        .get_result(c))
}

pub fn set_content(
    conn: &mut DbConnection,
    id: i64,
    subject: &str,
    text: &str,
    html: &str,
    article_count: i32,
) -> QueryResult<usize> {
    diesel::update(digests::table.find(id))
        .set((
            digests::subject.eq(subject),
            digests::body_text.eq(text),
            digests::body_html.eq(html),
            digests::article_count.eq(article_count),
        ))
        .execute(conn)
}

/// Queues the digest for the readers confirmed now (see
/// [`super::deliveries`]); the digest's total is their number.
pub fn fan_out(conn: &mut DbConnection, id: i64, at: NaiveDateTime) -> QueryResult<usize> {
    let n = super::deliveries::fan_out(conn, id, at)?;
    diesel::update(digests::table.find(id))
        .set(digests::total.eq(n as i32))
        .execute(conn)?;
    Ok(n)
}

/// Deliveries of a digest waiting for another try after a transient
/// failure (queued, attempted before).
pub fn retrying(conn: &mut DbConnection, id: i64) -> QueryResult<i64> {
    use super::schema::deliveries;
    deliveries::table
        .filter(deliveries::digest_id.eq(id))
        .filter(deliveries::status.eq(crate::domain::DeliveryStatus::Queued))
        .filter(deliveries::attempts.gt(0))
        .count()
        .get_result(conn)
}

pub fn find(conn: &mut DbConnection, id: i64) -> QueryResult<Option<Digest>> {
    digests::table
        .find(id)
        .select(Digest::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_key(conn: &mut DbConnection, key: &str) -> QueryResult<Option<Digest>> {
    digests::table
        .filter(digests::idempotency_key.eq(key))
        .select(Digest::as_select())
        .first(conn)
        .optional()
}

pub fn first_created_at(conn: &mut DbConnection) -> QueryResult<Option<NaiveDateTime>> {
    digests::table
        .select(diesel::dsl::min(digests::created_at))
        .first(conn)
}

pub fn recent(conn: &mut DbConnection, limit: i64) -> QueryResult<Vec<Digest>> {
    digests::table
        .order(digests::id.desc())
        .limit(limit)
        .select(Digest::as_select())
        .load(conn)
}

/// Digests in one of `statuses`, newest first, a page at a time.
pub fn archived(
    conn: &mut DbConnection,
    statuses: &[DigestStatus],
    offset: i64,
    limit: i64,
) -> QueryResult<Vec<Digest>> {
    digests::table
        .filter(digests::status.eq_any(statuses))
        .order(digests::id.desc())
        .offset(offset)
        .limit(limit)
        .select(Digest::as_select())
        .load(conn)
}

pub fn archived_count(conn: &mut DbConnection, statuses: &[DigestStatus]) -> QueryResult<i64> {
    digests::table
        .filter(digests::status.eq_any(statuses))
        .count()
        .get_result(conn)
}

/// Counts from the digest's chunks (as of their last settle).
pub fn progress(conn: &mut DbConnection, id: i64) -> QueryResult<Progress> {
    let Some(digest) = find(conn, id)? else {
        return Ok(Progress::default());
    };
    Ok(progress_of(conn, std::slice::from_ref(&digest))?
        .pop()
        .unwrap_or_default())
}

/// The progress of each of `digests`, in their order: one grouped sum over
/// their chunks' counters (a row per chunk, none per reader).
pub fn progress_of(conn: &mut DbConnection, digests: &[Digest]) -> QueryResult<Vec<Progress>> {
    use diesel::dsl::sum;
    let ids: Vec<i64> = digests.iter().map(|d| d.id).collect();
    let mut sums: std::collections::HashMap<i64, (i64, i64, i64)> = Default::default();
    for ids in ids.chunks(500) {
        type Sums = (i64, Option<i64>, Option<i64>, Option<i64>);
        let rows: Vec<Sums> = delivery_chunks::table
            .filter(delivery_chunks::digest_id.eq_any(ids))
            .group_by(delivery_chunks::digest_id)
            .select((
                delivery_chunks::digest_id,
                sum(delivery_chunks::sent),
                sum(delivery_chunks::failed),
                sum(delivery_chunks::skipped),
            ))
            .load(conn)?;
        for (id, sent, failed, skipped) in rows {
            sums.insert(
                id,
                (sent.unwrap_or(0), failed.unwrap_or(0), skipped.unwrap_or(0)),
            );
        }
    }
    Ok(digests
        .iter()
        .map(|d| {
            let (sent, failed, skipped) = sums.get(&d.id).copied().unwrap_or_default();
            Progress::new(d.status, i64::from(d.total), sent, failed, skipped)
        })
        .collect())
}

impl Progress {
    /// From a digest's audience (`total`, counted when it was queued) and
    /// its chunks' counters. Readers of the audience who left before their
    /// send are not read at all, so a sent digest counts whatever of its
    /// audience was not sent or failed as skipped; until then they are
    /// still queued. (Never less than what the counters say.)
    pub fn new(status: DigestStatus, total: i64, sent: i64, failed: i64, skipped: i64) -> Self {
        let settled = sent + failed + skipped;
        let total = total.max(settled);
        let (skipped, queued) = if status == DigestStatus::Sent {
            (total - sent - failed, 0)
        } else {
            (skipped, total - settled)
        };
        Self {
            total,
            sent,
            failed,
            skipped,
            queued,
        }
    }
}

/// Every digest's deliveries added up, and how many digests there are.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Totals {
    pub digests: i64,
    #[serde(flatten)]
    pub deliveries: Progress,
}

/// [`progress`] over all digests: sums over chunk counters, no scan of the
/// deliveries.
pub fn totals(conn: &mut DbConnection) -> QueryResult<Totals> {
    let all: Vec<Digest> = digests::table.select(Digest::as_select()).load(conn)?;
    let mut deliveries = Progress::default();
    for p in progress_of(conn, &all)? {
        deliveries.total += p.total;
        deliveries.sent += p.sent;
        deliveries.failed += p.failed;
        deliveries.skipped += p.skipped;
        deliveries.queued += p.queued;
    }
    Ok(Totals {
        digests: all.len() as i64,
        deliveries,
    })
}

/// Digests still sending (progress bars, the CLI).
pub fn sending(conn: &mut DbConnection) -> QueryResult<Vec<i64>> {
    digests::table
        .filter(digests::status.eq(DigestStatus::Sending))
        .select(digests::id)
        .load(conn)
}

/// Pauses a sending digest, keeping `reason`; false when it was not sending.
pub fn pause(conn: &mut DbConnection, id: i64, reason: &str) -> QueryResult<bool> {
    let n = diesel::update(
        digests::table
            .find(id)
            .filter(digests::status.eq(DigestStatus::Sending)),
    )
    .set((
        digests::status.eq(DigestStatus::Paused),
        digests::status_reason.eq(Some(reason)),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Goes on with a paused digest: sending again, and its open chunks due
/// now (one row per chunk, not per reader). False when it was not paused.
pub fn resume(conn: &mut DbConnection, id: i64, at: NaiveDateTime) -> QueryResult<bool> {
    let n = diesel::update(
        digests::table
            .find(id)
            .filter(digests::status.eq(DigestStatus::Paused)),
    )
    .set((
        digests::status.eq(DigestStatus::Sending),
        digests::status_reason.eq(None::<String>),
    ))
    .execute(conn)?;
    if n == 1 {
        diesel::update(
            delivery_chunks::table
                .filter(delivery_chunks::digest_id.eq(id))
                .filter(delivery_chunks::done.eq(false)),
        )
        .set(delivery_chunks::due_at.eq(at))
        .execute(conn)?;
    }
    Ok(n == 1)
}

/// Stops a digest for good (from draft, scheduled, sending or paused);
/// false when it had already finished or been cancelled.
pub fn cancel(conn: &mut DbConnection, id: i64, at: NaiveDateTime) -> QueryResult<bool> {
    let open = [
        DigestStatus::Draft,
        DigestStatus::Scheduled,
        DigestStatus::Sending,
        DigestStatus::Paused,
    ];
    let n = diesel::update(digests::table.find(id).filter(digests::status.eq_any(open)))
        .set((
            digests::status.eq(DigestStatus::Cancelled),
            digests::finished_at.eq(Some(at)),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// Whether the digest is sending (not paused, cancelled or finished).
pub fn is_sending(conn: &mut DbConnection, id: i64) -> QueryResult<bool> {
    let status: Option<DigestStatus> = digests::table
        .find(id)
        .select(digests::status)
        .first(conn)
        .optional()?;
    Ok(status == Some(DigestStatus::Sending))
}

/// A draft's editable words: `None` leaves a field as it is; `Some(None)`
/// clears it.
pub fn set_words(
    conn: &mut DbConnection,
    id: i64,
    custom_subject: Option<Option<&str>>,
    intro: Option<Option<&str>>,
) -> QueryResult<()> {
    if let Some(subject) = custom_subject {
        diesel::update(digests::table.find(id))
            .set(digests::custom_subject.eq(subject))
            .execute(conn)?;
    }
    if let Some(intro) = intro {
        diesel::update(digests::table.find(id))
            .set(digests::intro.eq(intro))
            .execute(conn)?;
    }
    Ok(())
}

/// Moves a digest from `from` to `to` (e.g. draft to sending); false when
/// it was not in `from` (another editor, or instance, got there first).
pub fn advance(
    conn: &mut DbConnection,
    id: i64,
    from: &[DigestStatus],
    to: DigestStatus,
    scheduled_at: Option<NaiveDateTime>,
) -> QueryResult<bool> {
    let n = diesel::update(digests::table.find(id).filter(digests::status.eq_any(from)))
        .set((
            digests::status.eq(to),
            digests::scheduled_at.eq(scheduled_at),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// Scheduled digests whose time has come.
pub fn due(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<Vec<i64>> {
    digests::table
        .filter(digests::status.eq(DigestStatus::Scheduled))
        .filter(digests::scheduled_at.le(now))
        .select(digests::id)
        .load(conn)
}
