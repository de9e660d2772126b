//! The append-only consent log.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::schema::consent_events;
use super::DbConnection;
use crate::domain::ConsentEvent;

#[derive(Clone, Debug, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = consent_events)]
pub struct ConsentRecord {
    #[serde(skip)]
    pub id: i64,
    #[serde(skip)]
    pub subscriber_id: String,
    #[schema(value_type = String, example = "confirmed")]
    pub event: ConsentEvent,
    #[serde(serialize_with = "crate::domain::time::utc")]
    pub occurred_at: NaiveDateTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub source: Option<String>,
    pub consent_text_version: Option<String>,
    pub method: Option<String>,
}

/// Who did it, from where: the part of an event that comes with the request.
#[derive(Clone, Debug, Default)]
pub struct Context {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub source: Option<String>,
    pub method: Option<String>,
    /// The version of the consent text in force (see
    /// [`crate::domain::consent_text_version`]).
    pub consent_version: Option<String>,
}

#[derive(Insertable)]
#[diesel(table_name = consent_events)]
// NULL rather than DEFAULT for None: with DEFAULT in a row, diesel writes a
// multi-row SQLite insert one row at a time inside a transaction of its own,
// which cannot nest in ours.
#[diesel(treat_none_as_default_value = false)]
struct NewEvent<'a> {
    subscriber_id: &'a str,
    event: ConsentEvent,
    occurred_at: NaiveDateTime,
    ip: Option<&'a str>,
    user_agent: Option<&'a str>,
    source: Option<&'a str>,
    consent_text_version: Option<&'a str>,
    method: Option<&'a str>,
}

fn new_event<'a>(
    subscriber_id: &'a str,
    event: ConsentEvent,
    at: NaiveDateTime,
    ctx: &'a Context,
) -> NewEvent<'a> {
    NewEvent {
        subscriber_id,
        event,
        occurred_at: at,
        ip: ctx.ip.as_deref(),
        user_agent: ctx.user_agent.as_deref(),
        source: ctx.source.as_deref(),
        consent_text_version: ctx.consent_version.as_deref(),
        method: ctx.method.as_deref(),
    }
}

pub fn record(
    conn: &mut DbConnection,
    subscriber_id: &str,
    event: ConsentEvent,
    at: NaiveDateTime,
    ctx: &Context,
) -> QueryResult<()> {
    diesel::insert_into(consent_events::table)
        .values(&new_event(subscriber_id, event, at, ctx))
        .execute(conn)
        .map(drop)
}

/// The same event for many readers, each with their own context, in one
/// statement: a signup group on SQLite (on PostgreSQL the group's one
/// statement in [`super::signups`] writes them).
pub(super) fn record_each_sqlite(
    c: &mut diesel::SqliteConnection,
    who: &[(&str, &Context)],
    event: ConsentEvent,
    at: NaiveDateTime,
) -> QueryResult<()> {
    let rows: Vec<NewEvent> = who
        .iter()
        .map(|(subscriber_id, ctx)| new_event(subscriber_id, event, at, ctx))
        .collect();
    diesel::insert_into(consent_events::table)
        .values(&rows)
        .execute(c)
        .map(drop)
}

pub fn for_subscriber(
    conn: &mut DbConnection,
    subscriber_id: &str,
) -> QueryResult<Vec<ConsentRecord>> {
    consent_events::table
        .filter(consent_events::subscriber_id.eq(subscriber_id))
        .order(consent_events::id.asc())
        .select(ConsentRecord::as_select())
        .load(conn)
}

/// Appends the same event for many subscribers in one statement (bulk
/// import). At most a few thousand ids per call (bind-parameter limits).
pub fn record_many(
    conn: &mut DbConnection,
    subscriber_ids: &[String],
    event: ConsentEvent,
    at: NaiveDateTime,
    ctx: &Context,
) -> QueryResult<usize> {
    use diesel::sql_types::{Nullable, Text, Timestamp};
    if subscriber_ids.is_empty() {
        return Ok(0);
    }
    crate::with_backend!(conn, |c, pg| {
        let p = |n| super::placeholder(pg, n);
        let shared = format!("{}, {}, {}, {}, {}, {}", p(1), p(2), p(3), p(4), p(5), p(6));
        let mut text = String::from(
            "INSERT INTO consent_events (event, occurred_at, ip, user_agent, source, method, \
             consent_text_version, subscriber_id) VALUES ",
        );
        for i in 0..subscriber_ids.len() {
            if i > 0 {
                text.push_str(", ");
            }
            text.push_str(&format!("({shared}, {}, {})", p(7), p(8 + i)));
        }
        let mut q = diesel::sql_query(text)
            .into_boxed()
            .bind::<Text, _>(event.as_str())
            .bind::<Timestamp, _>(at)
            .bind::<Nullable<Text>, _>(ctx.ip.as_deref())
            .bind::<Nullable<Text>, _>(ctx.user_agent.as_deref())
            .bind::<Nullable<Text>, _>(ctx.source.as_deref())
            .bind::<Nullable<Text>, _>(ctx.method.as_deref())
            .bind::<Nullable<Text>, _>(ctx.consent_version.as_deref());
        for id in subscriber_ids {
            q = q.bind::<Text, _>(id.as_str());
        }
        q.execute(c)
    })
}

/// Keeps the full wording of a consent text version (once per version).
pub fn save_text(
    conn: &mut DbConnection,
    version: &str,
    body: &str,
    at: NaiveDateTime,
) -> QueryResult<()> {
    use super::schema::consent_texts;
    crate::with_backend!(conn, |c, _pg| diesel::insert_into(consent_texts::table)
        .values((
            consent_texts::version.eq(version),
            consent_texts::body.eq(body),
            consent_texts::created_at.eq(at),
        ))
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(())
}

/// The full wording of each of `versions` that is kept.
pub fn texts(
    conn: &mut DbConnection,
    versions: &[String],
) -> QueryResult<std::collections::HashMap<String, String>> {
    use super::schema::consent_texts;
    Ok(consent_texts::table
        .filter(consent_texts::version.eq_any(versions))
        .select((consent_texts::version, consent_texts::body))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect())
}
