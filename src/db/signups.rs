//! The rows of a signup group (see `subscriptions::batch`): new readers,
//! pending, each with its `requested` consent event, confirmation token and
//! confirmation email.
//!
//! On PostgreSQL that is one prepared statement (data-modifying CTEs over
//! one array per column): one round trip and one executor run for the
//! whole group, where four inserts cost four of each. On SQLite, which has
//! no round trips, it is one multi-row insert per table.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::consent::{self, Context};
use super::schema::{confirmation_tokens, outbox, subscribers};
use super::unnest::{Bind, Sql, Unnest};
use super::DbConnection;
use crate::domain::{ConsentEvent, MailKind, SubscriberStatus, WorkStatus};

/// One new reader of a group and everything its rows need.
pub struct NewSignup<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub email_key: &'a str,
    pub name: Option<&'a str>,
    pub ctx: &'a Context,
    pub token_hash: &'a str,
    /// The confirmation email's outbox payload.
    pub payload: &'a str,
}

/// When the group signed up, when its links expire, and until when its
/// emails are leased to this instance's outbox worker (`None`: queued).
#[derive(Clone, Copy)]
pub struct Times {
    pub now: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub lease_until: Option<NaiveDateTime>,
}

impl Times {
    /// The status and attempt count the group's outbox rows go in with:
    /// leased rows count the attempt their worker is about to make.
    pub fn outbox_row(&self) -> (WorkStatus, i32) {
        match self.lease_until {
            Some(_) => (WorkStatus::Sending, 1),
            None => (WorkStatus::Queued, 0),
        }
    }
}

/// Inserts the readers whose address is not known yet, each with all its
/// rows; a known address is skipped with all of its. Returns the outbox id
/// of each inserted reader's email, by reader id.
pub fn insert<'r>(
    conn: &mut DbConnection,
    rows: &[NewSignup<'r>],
    times: Times,
) -> QueryResult<HashMap<String, i64>> {
    if rows.is_empty() {
        return Ok(HashMap::new());
    }
    let (outbox_status, attempts) = times.outbox_row();
    let inserted: Vec<(String, i64)> = match conn {
        DbConnection::Pg(c) => {
            let texts =
                |f: fn(&NewSignup<'r>) -> &'r str| Bind::Texts(rows.iter().map(f).collect());
            let maybe = |f: fn(&NewSignup<'r>) -> Option<&'r str>| {
                Bind::MaybeTexts(rows.iter().map(f).collect())
            };
            Unnest::<InsertGroup>::new(vec![
                texts(|r| r.id),
                texts(|r| r.email),
                texts(|r| r.email_key),
                maybe(|r| r.name),
                maybe(|r| r.ctx.ip.as_deref()),
                maybe(|r| r.ctx.user_agent.as_deref()),
                maybe(|r| r.ctx.source.as_deref()),
                maybe(|r| r.ctx.method.as_deref()),
                texts(|r| r.token_hash),
                texts(|r| r.payload),
                Bind::Text(SubscriberStatus::Pending.as_str()),
                Bind::At(times.now),
                Bind::Text(ConsentEvent::Requested.as_str()),
                // One process, one consent text: the group shares it.
                Bind::Text(rows[0].ctx.consent_version.as_deref().unwrap_or_default()),
                Bind::At(times.expires_at),
                Bind::Text(MailKind::Confirm.as_str()),
                Bind::Text(outbox_status.as_str()),
                Bind::Int(attempts),
                Bind::MaybeAt(times.lease_until),
            ])
            .load(c)?
        }
        DbConnection::Sqlite(c) => insert_sqlite(c, rows, times, (outbox_status, attempts))?,
    };
    Ok(inserted.into_iter().collect())
}

/// [`insert`] on PostgreSQL. `t` is the group, `s` the readers actually
/// inserted; the other three inserts take only those.
struct InsertGroup;
impl Sql for InsertGroup {
    const SQL: &'static str = "WITH t AS MATERIALIZED ( \
          SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[], \
                               ?::text[], ?::text[], ?::text[], ?::text[], ?::text[]) \
            AS t(id, email, email_key, name, ip, user_agent, source, method, token_hash, payload)), \
        p AS (SELECT ?::text AS status, ?::timestamp AS now, ?::text AS event, \
                     ?::text AS version, ?::timestamp AS expires_at, ?::text AS kind, \
                     ?::text AS outbox_status, ?::integer AS attempts, \
                     ?::timestamp AS lease_until), \
        s AS (INSERT INTO subscribers (id, email, email_key, name, status, created_at, \
                  updated_at, last_confirmation_at) \
              SELECT t.id, t.email, t.email_key, t.name, p.status, p.now, p.now, p.now FROM t, p \
              ON CONFLICT (email_key) DO NOTHING RETURNING id), \
        e AS (INSERT INTO consent_events (subscriber_id, event, occurred_at, ip, user_agent, \
                  source, consent_text_version, method) \
              SELECT t.id, p.event, p.now, t.ip, t.user_agent, t.source, p.version, t.method \
              FROM t JOIN s USING (id), p), \
        k AS (INSERT INTO confirmation_tokens (token_hash, subscriber_id, created_at, expires_at) \
              SELECT t.token_hash, t.id, p.now, p.expires_at FROM t JOIN s USING (id), p) \
        INSERT INTO outbox (kind, subscriber_id, recipient, payload, status, attempts, \
            next_attempt_at, locked_until, created_at) \
        SELECT p.kind, t.id, t.email, t.payload, p.outbox_status, p.attempts, p.now, \
               p.lease_until, p.now \
        FROM t JOIN s USING (id), p \
        RETURNING subscriber_id, id";
    type Returning = (Text, BigInt);
}

/// [`insert`] on SQLite: one multi-row insert per table.
fn insert_sqlite(
    c: &mut diesel::SqliteConnection,
    rows: &[NewSignup],
    times: Times,
    (outbox_status, attempts): (WorkStatus, i32),
) -> QueryResult<Vec<(String, i64)>> {
    let readers: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                subscribers::id.eq(r.id),
                subscribers::email.eq(r.email),
                subscribers::email_key.eq(r.email_key),
                subscribers::name.eq(r.name),
                subscribers::status.eq(SubscriberStatus::Pending),
                subscribers::created_at.eq(times.now),
                subscribers::updated_at.eq(times.now),
                subscribers::last_confirmation_at.eq(times.now),
            )
        })
        .collect();
    let inserted: HashSet<String> = diesel::insert_into(subscribers::table)
        .values(&readers)
        .on_conflict(subscribers::email_key)
        .do_nothing()
        .returning(subscribers::id)
        .get_results::<String>(c)?
        .into_iter()
        .collect();
    let rows: Vec<&NewSignup> = rows.iter().filter(|r| inserted.contains(r.id)).collect();
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let events: Vec<_> = rows.iter().map(|r| (r.id, r.ctx)).collect();
    consent::record_each_sqlite(c, &events, ConsentEvent::Requested, times.now)?;
    let tokens: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                confirmation_tokens::token_hash.eq(r.token_hash),
                confirmation_tokens::subscriber_id.eq(r.id),
                confirmation_tokens::created_at.eq(times.now),
                confirmation_tokens::expires_at.eq(times.expires_at),
            )
        })
        .collect();
    diesel::insert_into(confirmation_tokens::table)
        .values(&tokens)
        .execute(c)?;
    let mails: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                outbox::kind.eq(MailKind::Confirm),
                outbox::subscriber_id.eq(Some(r.id)),
                outbox::recipient.eq(r.email),
                outbox::payload.eq(r.payload),
                outbox::status.eq(outbox_status),
                outbox::attempts.eq(attempts),
                outbox::next_attempt_at.eq(times.now),
                outbox::locked_until.eq(times.lease_until),
                outbox::created_at.eq(times.now),
            )
        })
        .collect();
    diesel::insert_into(outbox::table)
        .values(&mails)
        .returning((outbox::subscriber_id.assume_not_null(), outbox::id))
        .get_results(c)
}
