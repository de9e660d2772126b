//! Bounces and complaints as they came in: one row each, naming the reader
//! and (for a digest) the digest, never a delivery row.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::schema::{bounces, digests, outbox};
use super::DbConnection;
use crate::domain::{BounceKind, BounceSource, DigestStatus, WorkStatus};

#[derive(Clone, Debug, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = bounces)]
pub struct BounceRecord {
    pub id: i64,
    pub subscriber_id: String,
    pub digest_id: Option<i64>,
    #[schema(value_type = String, example = "hard")]
    pub kind: BounceKind,
    pub status_code: Option<String>,
    pub diagnostic: Option<String>,
    #[schema(value_type = String)]
    pub source: BounceSource,
    #[serde(serialize_with = "crate::domain::time::utc")]
    pub received_at: NaiveDateTime,
}

#[derive(Insertable, Debug)]
#[diesel(table_name = bounces)]
pub struct NewBounce<'a> {
    pub subscriber_id: &'a str,
    pub digest_id: Option<i64>,
    pub kind: BounceKind,
    pub status_code: Option<&'a str>,
    pub diagnostic: Option<&'a str>,
    pub source: BounceSource,
    pub received_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, new: &NewBounce) -> QueryResult<()> {
    diesel::insert_into(bounces::table)
        .values(new)
        .execute(conn)
        .map(drop)
}

/// What GET /api/bounces filters on.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub digest_id: Option<i64>,
    pub subscriber_id: Option<String>,
    pub kind: Option<BounceKind>,
}

/// One page (newest first) and the total that match.
pub fn list(
    conn: &mut DbConnection,
    filter: &Filter,
    page: i64,
    per_page: i64,
) -> QueryResult<(Vec<BounceRecord>, i64)> {
    let query = || {
        let mut q = bounces::table.into_boxed();
        if let Some(d) = filter.digest_id {
            q = q.filter(bounces::digest_id.eq(d));
        }
        if let Some(s) = &filter.subscriber_id {
            q = q.filter(bounces::subscriber_id.eq(s.clone()));
        }
        if let Some(k) = filter.kind {
            q = q.filter(bounces::kind.eq(k));
        }
        q
    };
    let total = query().count().get_result(conn)?;
    let items = query()
        .select(BounceRecord::as_select())
        .order(bounces::id.desc())
        .limit(per_page)
        .offset((page - 1).max(0) * per_page)
        .load(conn)?;
    Ok((items, total))
}

/// A reader's bounces, oldest first (their export, their page).
pub fn for_subscriber(conn: &mut DbConnection, id: &str) -> QueryResult<Vec<BounceRecord>> {
    bounces::table
        .filter(bounces::subscriber_id.eq(id))
        .order(bounces::id.asc())
        .select(BounceRecord::as_select())
        .load(conn)
}

/// The emails a reader's soft bounces since `since` were about: the
/// digest (or `None`, a confirmation) of each.
pub fn soft_since(
    conn: &mut DbConnection,
    id: &str,
    since: NaiveDateTime,
) -> QueryResult<Vec<Option<i64>>> {
    bounces::table
        .filter(bounces::subscriber_id.eq(id))
        .filter(bounces::kind.eq(BounceKind::Soft))
        .filter(bounces::received_at.ge(since))
        .select(bounces::digest_id)
        .load(conn)
}

/// When the earliest of these digests was created.
pub fn first_created(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<Option<NaiveDateTime>> {
    digests::table
        .filter(digests::id.eq_any(ids))
        .select(diesel::dsl::min(digests::created_at))
        .first(conn)
}

/// Digests that went out (sending or sent) since `since`.
pub fn digests_out_since(conn: &mut DbConnection, since: NaiveDateTime) -> QueryResult<Vec<i64>> {
    digests::table
        .filter(digests::created_at.ge(since))
        .filter(digests::status.eq_any([DigestStatus::Sending, DigestStatus::Sent]))
        .select(digests::id)
        .load(conn)
}

/// Whether the reader was sent anything since `since`: a confirmation
/// email, or a digest that went out while they were confirmed (the
/// digest's readers are the confirmed ones at its fan-out).
pub fn mailed_since(
    conn: &mut DbConnection,
    id: &str,
    confirmed_at: Option<NaiveDateTime>,
    since: NaiveDateTime,
) -> QueryResult<bool> {
    let confirmation: i64 = outbox::table
        .filter(outbox::subscriber_id.eq(id))
        .filter(outbox::status.eq(WorkStatus::Sent))
        .filter(outbox::sent_at.ge(since))
        .count()
        .get_result(conn)?;
    if confirmation > 0 {
        return Ok(true);
    }
    let Some(confirmed_at) = confirmed_at else {
        return Ok(false);
    };
    let digests: i64 = digests::table
        .filter(digests::created_at.ge(since.max(confirmed_at)))
        .filter(digests::status.ne(DigestStatus::Draft))
        .count()
        .get_result(conn)?;
    Ok(digests > 0)
}

/// Hard, soft and complaint counts of each digest in `ids`.
pub fn counts_by_digest(
    conn: &mut DbConnection,
    ids: &[i64],
) -> QueryResult<Vec<(i64, BounceKind, i64)>> {
    let rows: Vec<(Option<i64>, BounceKind, i64)> = bounces::table
        .filter(bounces::digest_id.eq_any(ids))
        .group_by((bounces::digest_id, bounces::kind))
        .select((bounces::digest_id, bounces::kind, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(d, k, n)| Some((d?, k, n)))
        .collect())
}

/// Erasure: the diagnostics (a remote server's reply often quotes the
/// address) go; the kind, time and digest stay for the counts.
pub fn blank_for(conn: &mut DbConnection, id: &str) -> QueryResult<usize> {
    diesel::update(bounces::table.filter(bounces::subscriber_id.eq(id)))
        .set(bounces::diagnostic.eq(None::<String>))
        .execute(conn)
}
