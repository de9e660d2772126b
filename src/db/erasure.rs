//! The rows GDPR erasure rewrites, and the SQLite checkpoint that takes
//! the old pages off the disk. The privacy use case composes these into one
//! transaction.

use diesel::prelude::*;

use super::schema::{confirmation_tokens, consent_events, outbox, subscribers};
use super::{DbConnection, QueryResult};

#[derive(QueryableByName)]
pub struct Erasable {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub email: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub email_key: Option<String>,
}

/// The subscriber's address unless unknown or erased, row-locked on
/// PostgreSQL: a second erasure of the same reader racing this one waits,
/// then finds it erased (instead of failing on the suppression hash's
/// unique key). SQLite's `BEGIN IMMEDIATE` already serialises writers.
pub fn lock_erasable(conn: &mut DbConnection, id: &str) -> QueryResult<Option<Erasable>> {
    use diesel::sql_types::Text;
    crate::with_backend!(conn, |c, pg| {
        let text = format!(
            "SELECT email, email_key FROM subscribers WHERE id = ? AND status <> ? {}",
            if pg { "FOR UPDATE" } else { "" }
        );
        diesel::sql_query(super::sql(pg, &text))
            .bind::<Text, _>(id)
            .bind::<Text, _>(crate::domain::SubscriberStatus::Erased.as_str())
            .get_result(c)
            .optional()
    })
}

/// The consent skeleton: no IP, no user agent, and `removed` for every
/// source `tainted` says names the address.
pub fn scrub_consent_events(
    conn: &mut DbConnection,
    subscriber_id: &str,
    tainted: Option<&dyn Fn(&str) -> bool>,
    removed: &str,
) -> QueryResult<()> {
    let mine = consent_events::table.filter(consent_events::subscriber_id.eq(subscriber_id));
    diesel::update(mine)
        .set((
            consent_events::ip.eq(None::<String>),
            consent_events::user_agent.eq(None::<String>),
        ))
        .execute(conn)?;
    let Some(tainted_source) = tainted else {
        return Ok(());
    };
    let sources: Vec<(i64, Option<String>)> = mine
        .select((consent_events::id, consent_events::source))
        .load(conn)?;
    let tainted: Vec<i64> = sources
        .into_iter()
        .filter(|(_, source)| source.as_deref().is_some_and(tainted_source))
        .map(|(id, _)| id)
        .collect();
    if !tainted.is_empty() {
        diesel::update(consent_events::table.filter(consent_events::id.eq_any(&tainted)))
            .set(consent_events::source.eq(Some(removed)))
            .execute(conn)?;
    }
    Ok(())
}

/// Deletes their confirmation links and outbox rows, and blanks their
/// deliveries' error texts (which may quote the address).
pub fn forget_mail(
    conn: &mut DbConnection,
    subscriber_id: &str,
    subscriber: &Erasable,
    key: Option<&str>,
) -> QueryResult<()> {
    diesel::delete(
        confirmation_tokens::table.filter(confirmation_tokens::subscriber_id.eq(subscriber_id)),
    )
    .execute(conn)?;
    // Every outbox row of theirs, sent ones too: each carries the address as
    // its recipient and the name in its payload.
    diesel::delete(outbox::table.filter(outbox::subscriber_id.eq(subscriber_id))).execute(conn)?;
    if let Some(key) = key {
        diesel::delete(outbox::table.filter(outbox::recipient.eq(key))).execute(conn)?;
        if subscriber.email.as_deref() != Some(key) {
            if let Some(email) = &subscriber.email {
                diesel::delete(outbox::table.filter(outbox::recipient.eq(email))).execute(conn)?;
            }
        }
    }
    // Settled deliveries stay (digest, status, time).
    super::deliveries::forget_subscriber(conn, subscriber_id)
}

/// The subscriber row keeps its id, status (`erased`) and timestamps.
pub fn blank_subscriber(
    conn: &mut DbConnection,
    subscriber_id: &str,
    now: chrono::NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(subscribers::table.find(subscriber_id))
        .set((
            subscribers::email.eq(None::<String>),
            subscribers::email_key.eq(None::<String>),
            subscribers::name.eq(None::<String>),
            subscribers::status.eq(crate::domain::SubscriberStatus::Erased),
            subscribers::updated_at.eq(now),
            subscribers::last_confirmation_at.eq(None::<chrono::NaiveDateTime>),
            // What they chose on their preferences page is theirs too.
            subscribers::paused_until.eq(None::<chrono::NaiveDateTime>),
            subscribers::frequency.eq(crate::domain::Frequency::Every),
            subscribers::frequency_at.eq(None::<chrono::NaiveDateTime>),
            subscribers::choice_id.eq(None::<i64>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Confirmation links of the reader that could still be used.
pub fn pending_links(
    conn: &mut DbConnection,
    subscriber_id: &str,
    now: chrono::NaiveDateTime,
) -> QueryResult<i64> {
    confirmation_tokens::table
        .filter(confirmation_tokens::subscriber_id.eq(subscriber_id))
        .filter(confirmation_tokens::used_at.is_null())
        .filter(confirmation_tokens::expires_at.gt(now))
        .count()
        .get_result(conn)
}

/// Moves what erasure overwrote out of SQLite's write-ahead log into the
/// (secure-deleted) database file and truncates the log, so the old pages
/// are gone from disk too. Runs outside any transaction, after the erasure
/// committed. True when the log was emptied; false when a reader kept it
/// busy (the next checkpoint completes the job). PostgreSQL: nothing to do
/// at this level.
pub fn purge_freed(conn: &mut DbConnection) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Checkpoint {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        busy: i32,
    }
    match conn {
        DbConnection::Pg(_) => Ok(true),
        DbConnection::Sqlite(c) => {
            let rows: Vec<Checkpoint> =
                diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)").load(c)?;
            Ok(rows.first().is_some_and(|r| r.busy == 0))
        }
    }
}
