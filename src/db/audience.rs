//! Who a digest goes to: the one rule ([`eligible`]) that both the count
//! at fan-out and the reading of a chunk's readers at claim time use, so a
//! digest's total is who gets it. A reader is in a digest's audience when
//! they are confirmed, not paused at the digest's time, not a weekly reader
//! of a digest that is not their week's, and (with sections picked) their
//! choice has an edition of the digest, i.e. matches some of its articles.
//!
//! The rule reads the digest's row (`audience_at`, `weekly_before`) and its
//! editions once per statement: uncorrelated subqueries, so the count is
//! one scan and a claim one range scan of the subscribers' key.
//!
//! Also here: the readers' own settings (pause, frequency, section choice)
//! and the editions a fan-out writes.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{digest_editions, digests, section_choices, subscribers};
use super::DbConnection;
use crate::domain::{Frequency, SubscriberStatus};

/// A week, less an hour: a digest on the same weekday and hour as last
/// week's is still a week later, whatever seconds its composing took.
pub fn week() -> chrono::Duration {
    chrono::Duration::days(7) - chrono::Duration::hours(1)
}

/// The audience rule as SQL over subscribers aliased `s`, for digest `id`.
pub fn eligible(digest_id: i64) -> String {
    format!(
        "s.status = '{confirmed}' \
         AND (s.paused_until IS NULL \
              OR s.paused_until <= (SELECT audience_at FROM digests WHERE id = {digest_id})) \
         AND (s.frequency = '{every}' \
              OR s.frequency_at <= (SELECT weekly_before FROM digests WHERE id = {digest_id})) \
         AND (s.choice_id IS NULL \
              OR s.choice_id IN (SELECT choice_id FROM digest_editions WHERE digest_id = {digest_id}))",
        confirmed = SubscriberStatus::Confirmed,
        every = Frequency::Every,
    )
}

/// The number of readers in digest `id`'s audience: one COUNT.
pub fn count(conn: &mut DbConnection, digest_id: i64) -> QueryResult<i64> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let text = format!(
        "SELECT COUNT(*) AS n FROM subscribers s WHERE {}",
        eligible(digest_id)
    );
    let n: N = crate::with_backend!(conn, |c, _pg| diesel::sql_query(&text).get_result(c))?;
    Ok(n.n)
}

/// Marks digest `id` weekly (weekly readers get it) when no other weekly
/// digest went out in the [`week`] before `at`; returns whether it is.
pub fn mark_weekly(
    conn: &mut DbConnection,
    digest_id: i64,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let since = at - week();
    let recent: i64 = digests::table
        .filter(digests::id.ne(digest_id))
        .filter(digests::weekly_before.is_not_null())
        .filter(digests::audience_at.gt(since))
        .count()
        .get_result(conn)?;
    let weekly = recent == 0;
    diesel::update(digests::table.find(digest_id))
        .set(digests::weekly_before.eq(weekly.then_some(since)))
        .execute(conn)?;
    Ok(weekly)
}

/// Every section choice any reader ever made: `(id, key)`. Few: one per
/// distinct set of sections, not per reader.
pub fn choices(conn: &mut DbConnection) -> QueryResult<Vec<(i64, String)>> {
    section_choices::table
        .order(section_choices::id)
        .select((section_choices::id, section_choices::sections))
        .load(conn)
}

/// The id of the choice with `key`, made now if it is new.
pub fn choice_id(conn: &mut DbConnection, key: &str, at: NaiveDateTime) -> QueryResult<i64> {
    crate::with_backend!(conn, |c, _pg| diesel::insert_into(section_choices::table)
        .values((
            section_choices::sections.eq(key),
            section_choices::created_at.eq(at),
        ))
        .on_conflict(section_choices::sections)
        .do_nothing()
        .execute(c))?;
    section_choices::table
        .filter(section_choices::sections.eq(key))
        .select(section_choices::id)
        .first(conn)
}

/// The key of choice `id`.
pub fn choice_key(conn: &mut DbConnection, id: i64) -> QueryResult<Option<String>> {
    section_choices::table
        .find(id)
        .select(section_choices::sections)
        .first(conn)
        .optional()
}

/// One choice's edition of a digest: its own subject and bodies, or `None`
/// bodies when it is the digest's (every article matched).
#[derive(Debug, Clone, Default)]
pub struct Edition {
    pub subject: Option<String>,
    pub body_text: Option<String>,
    pub body_html: Option<String>,
}

pub fn add_edition(
    conn: &mut DbConnection,
    digest_id: i64,
    choice_id: i64,
    edition: &Edition,
) -> QueryResult<()> {
    crate::with_backend!(conn, |c, _pg| diesel::insert_into(digest_editions::table)
        .values((
            digest_editions::digest_id.eq(digest_id),
            digest_editions::choice_id.eq(choice_id),
            digest_editions::subject.eq(&edition.subject),
            digest_editions::body_text.eq(&edition.body_text),
            digest_editions::body_html.eq(&edition.body_html),
        ))
        .on_conflict_do_nothing()
        .execute(c))
    .map(drop)
}

/// Choice `choice_id`'s edition of digest `digest_id`; `None`: it matches
/// nothing in it.
pub fn edition(
    conn: &mut DbConnection,
    digest_id: i64,
    choice_id: i64,
) -> QueryResult<Option<Edition>> {
    let row: Option<(Option<String>, Option<String>, Option<String>)> = digest_editions::table
        .find((digest_id, choice_id))
        .select((
            digest_editions::subject,
            digest_editions::body_text,
            digest_editions::body_html,
        ))
        .first(conn)
        .optional()?;
    Ok(row.map(|(subject, body_text, body_html)| Edition {
        subject,
        body_text,
        body_html,
    }))
}

/// A reader's own digest settings.
#[derive(Debug, Clone, Queryable)]
pub struct Settings {
    pub paused_until: Option<NaiveDateTime>,
    pub frequency: Frequency,
    pub frequency_at: Option<NaiveDateTime>,
    pub choice_id: Option<i64>,
}

pub fn settings_of(conn: &mut DbConnection, subscriber_id: &str) -> QueryResult<Option<Settings>> {
    subscribers::table
        .find(subscriber_id)
        .select((
            subscribers::paused_until,
            subscribers::frequency,
            subscribers::frequency_at,
            subscribers::choice_id,
        ))
        .first(conn)
        .optional()
}

/// Writes a reader's settings (and `updated_at`).
pub fn set_settings(
    conn: &mut DbConnection,
    subscriber_id: &str,
    settings: &Settings,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(subscribers::table.find(subscriber_id))
        .set((
            subscribers::paused_until.eq(settings.paused_until),
            subscribers::frequency.eq(settings.frequency),
            subscribers::frequency_at.eq(settings.frequency_at),
            subscribers::choice_id.eq(settings.choice_id),
            subscribers::updated_at.eq(at),
        ))
        .execute(conn)
}
