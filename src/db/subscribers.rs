//! The `subscribers` table.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::schema::subscribers;
use super::DbConnection;
use crate::domain::{ConsentEvent, SubscriberStatus};

#[derive(Clone, Debug, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = subscribers)]
pub struct Subscriber {
    pub id: String,
    pub email: Option<String>,
    #[serde(skip)]
    pub email_key: Option<String>,
    pub name: Option<String>,
    #[schema(value_type = String, example = "confirmed")]
    pub status: SubscriberStatus,
    #[serde(serialize_with = "crate::domain::time::utc")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "crate::domain::time::utc")]
    pub updated_at: NaiveDateTime,
    #[serde(serialize_with = "crate::domain::time::utc_opt")]
    pub confirmed_at: Option<NaiveDateTime>,
    #[serde(skip)]
    #[serde(serialize_with = "crate::domain::time::utc_opt")]
    pub last_confirmation_at: Option<NaiveDateTime>,
}

#[derive(Insertable)]
#[diesel(table_name = subscribers)]
pub struct NewSubscriber<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub email_key: &'a str,
    pub name: Option<&'a str>,
    pub status: SubscriberStatus,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub confirmed_at: Option<NaiveDateTime>,
    pub last_confirmation_at: Option<NaiveDateTime>,
}

pub fn insert(conn: &mut DbConnection, new: &NewSubscriber) -> QueryResult<()> {
    diesel::insert_into(subscribers::table)
        .values(new)
        .execute(conn)
        .map(drop)
}

/// Inserts the reader unless the address is already known; true when this
/// call inserted it. A concurrent first signup of the same address waits for
/// the other transaction and then inserts nothing, so no retry is needed.
pub fn insert_if_absent(conn: &mut DbConnection, new: &NewSubscriber) -> QueryResult<bool> {
    let n = crate::with_backend!(conn, |c, _pg| diesel::insert_into(subscribers::table)
        .values(new)
        .on_conflict(subscribers::email_key)
        .do_nothing()
        .execute(c))?;
    Ok(n == 1)
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<Subscriber>> {
    subscribers::table
        .find(id)
        .select(Subscriber::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_key(conn: &mut DbConnection, key: &str) -> QueryResult<Option<Subscriber>> {
    subscribers::table
        .filter(subscribers::email_key.eq(key))
        .select(Subscriber::as_select())
        .first(conn)
        .optional()
}

/// Sets the status; `confirmed_at` is set when confirming and kept otherwise.
pub fn set_status(
    conn: &mut DbConnection,
    id: &str,
    status: SubscriberStatus,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    let target = subscribers::table.find(id);
    if status == SubscriberStatus::Confirmed {
        diesel::update(target)
            .set((
                subscribers::status.eq(status),
                subscribers::updated_at.eq(at),
                subscribers::confirmed_at.eq(Some(at)),
            ))
            .execute(conn)
    } else {
        diesel::update(target)
            .set((
                subscribers::status.eq(status),
                subscribers::updated_at.eq(at),
            ))
            .execute(conn)
    }
}

pub fn mark_confirmation_sent(
    conn: &mut DbConnection,
    id: &str,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(subscribers::table.find(id))
        .set(subscribers::last_confirmation_at.eq(Some(at)))
        .execute(conn)
}

/// A confirmed address change: the new address and its key.
pub fn set_email(
    conn: &mut DbConnection,
    id: &str,
    email: &str,
    key: &str,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(subscribers::table.find(id))
        .set((
            subscribers::email.eq(Some(email)),
            subscribers::email_key.eq(Some(key)),
            subscribers::updated_at.eq(at),
        ))
        .execute(conn)
}

pub fn set_name(conn: &mut DbConnection, id: &str, name: Option<&str>) -> QueryResult<usize> {
    diesel::update(subscribers::table.find(id))
        .set(subscribers::name.eq(name))
        .execute(conn)
}

/// Filters for listing. `q` matches part of the address, case-insensitively.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub status: Option<SubscriberStatus>,
    pub q: Option<String>,
}

fn escape_like(q: &str) -> String {
    q.to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// One page of subscribers (newest first) and the total that match.
pub fn list(
    conn: &mut DbConnection,
    filter: &Filter,
    page: i64,
    per_page: i64,
) -> QueryResult<(Vec<Subscriber>, i64)> {
    let query = || {
        let mut q = subscribers::table.into_boxed();
        if let Some(status) = filter.status {
            q = q.filter(subscribers::status.eq(status));
        }
        if let Some(text) = filter.q.as_ref().filter(|t| !t.is_empty()) {
            q = q.filter(
                subscribers::email_key
                    .like(format!("%{}%", escape_like(text)))
                    .escape('\\'),
            );
        }
        q
    };
    let total = query().count().get_result(conn)?;
    let items = query()
        .select(Subscriber::as_select())
        .order((subscribers::created_at.desc(), subscribers::id.desc()))
        .limit(per_page)
        .offset((page - 1).max(0) * per_page)
        .load(conn)?;
    Ok((items, total))
}

/// Count by status, every status present (zero when none).
pub fn count_by_status(conn: &mut DbConnection) -> QueryResult<Vec<(SubscriberStatus, i64)>> {
    let rows: Vec<(SubscriberStatus, i64)> = subscribers::table
        .group_by(subscribers::status)
        .select((subscribers::status, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(SubscriberStatus::ALL
        .iter()
        .map(|s| {
            let n = rows
                .iter()
                .find(|(k, _)| k == s)
                .map(|(_, n)| *n)
                .unwrap_or(0);
            (*s, n)
        })
        .collect())
}

/// Confirmations per day since `since` (for growth charts).
pub fn confirmed_since(
    conn: &mut DbConnection,
    since: NaiveDateTime,
) -> QueryResult<Vec<NaiveDateTime>> {
    subscribers::table
        .filter(subscribers::confirmed_at.ge(since))
        .filter(subscribers::status.eq(SubscriberStatus::Confirmed))
        .select(subscribers::confirmed_at.assume_not_null())
        .load(conn)
}

/// One reader of a bulk import, already parsed.
#[derive(Clone, Debug)]
pub struct ImportRow {
    pub id: String,
    pub email: String,
    pub email_key: String,
    pub name: Option<String>,
}

/// Inserts readers as `confirmed`, each with an `imported` consent event,
/// skipping any address already present (whatever its status: an import
/// never re-subscribes someone who left). Returns how many were inserted.
/// Set-based: on PostgreSQL one statement (arrays through `unnest`, the
/// events written from the `RETURNING` of the insert); on SQLite one
/// multi-row `INSERT OR IGNORE … RETURNING id` and one multi-row insert of
/// events. At most a few thousand rows per call (SQLite bind limits).
pub fn import_confirmed(
    conn: &mut DbConnection,
    rows: &[ImportRow],
    at: NaiveDateTime,
    ctx: &super::consent::Context,
) -> QueryResult<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    match conn {
        DbConnection::Pg(c) => import_confirmed_pg(c, rows, at, ctx),
        DbConnection::Sqlite(c) => {
            let ids = insert_confirmed_sqlite(c, rows, at)?;
            super::consent::record_many(conn, &ids, ConsentEvent::Imported, at, ctx)?;
            Ok(ids.len())
        }
    }
}

/// PostgreSQL: the rows go in as arrays, and one statement inserts the
/// subscribers and the consent events of those that were new.
fn import_confirmed_pg(
    c: &mut diesel::PgConnection,
    rows: &[ImportRow],
    at: NaiveDateTime,
    ctx: &super::consent::Context,
) -> QueryResult<usize> {
    use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamp};
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let emails: Vec<&str> = rows.iter().map(|r| r.email.as_str()).collect();
    let keys: Vec<&str> = rows.iter().map(|r| r.email_key.as_str()).collect();
    let names: Vec<Option<&str>> = rows.iter().map(|r| r.name.as_deref()).collect();
    let counted: Vec<Count> = diesel::sql_query(
        "WITH ins AS ( \
           INSERT INTO subscribers (id, email, email_key, name, status, created_at, \
             updated_at, confirmed_at) \
           SELECT u.id, u.email, u.email_key, u.name, $5, $6, $6, $6 \
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) \
             AS u(id, email, email_key, name) \
           ON CONFLICT (email_key) DO NOTHING RETURNING id), \
         ev AS ( \
           INSERT INTO consent_events (subscriber_id, event, occurred_at, ip, \
             user_agent, source, method, consent_text_version) \
           SELECT id, $7, $6, $8, $9, $10, $11, $12 FROM ins) \
         SELECT COUNT(*) AS n FROM ins",
    )
    .bind::<Array<Text>, _>(&ids)
    .bind::<Array<Text>, _>(&emails)
    .bind::<Array<Text>, _>(&keys)
    .bind::<Array<Nullable<Text>>, _>(&names)
    .bind::<Text, _>(SubscriberStatus::Confirmed.as_str())
    .bind::<Timestamp, _>(at)
    .bind::<Text, _>(ConsentEvent::Imported.as_str())
    .bind::<Nullable<Text>, _>(ctx.ip.as_deref())
    .bind::<Nullable<Text>, _>(ctx.user_agent.as_deref())
    .bind::<Nullable<Text>, _>(ctx.source.as_deref())
    .bind::<Nullable<Text>, _>(ctx.method.as_deref())
    .bind::<Nullable<Text>, _>(ctx.consent_version.as_deref())
    .load(c)?;
    Ok(counted.first().map_or(0, |c| c.n as usize))
}

/// SQLite: one multi-row `INSERT OR IGNORE`; returns the ids that were new
/// (their consent events are the caller's).
fn insert_confirmed_sqlite(
    c: &mut diesel::SqliteConnection,
    rows: &[ImportRow],
    at: NaiveDateTime,
) -> QueryResult<Vec<String>> {
    use diesel::sql_types::{Nullable, Text, Timestamp};
    #[derive(QueryableByName)]
    struct Inserted {
        #[diesel(sql_type = Text)]
        id: String,
    }
    let mut q = diesel::sql_query(sqlite_insert_confirmed_sql(rows.len()))
        .into_boxed()
        .bind::<Timestamp, _>(at)
        .bind::<Text, _>(SubscriberStatus::Confirmed.as_str());
    for r in rows {
        q = q
            .bind::<Text, _>(r.id.as_str())
            .bind::<Text, _>(r.email.as_str())
            .bind::<Text, _>(r.email_key.as_str())
            .bind::<Nullable<Text>, _>(r.name.as_deref());
    }
    let inserted: Vec<Inserted> = q.load(c)?;
    Ok(inserted.into_iter().map(|r| r.id).collect())
}

/// The statement for `rows` readers: `?1` is the time, `?2` the status,
/// then four placeholders (id, email, key, name) per reader.
fn sqlite_insert_confirmed_sql(rows: usize) -> String {
    let p = |n| super::placeholder(false, n);
    let mut text = String::from(
        "INSERT OR IGNORE INTO subscribers (id, email, email_key, name, status, \
         created_at, updated_at, confirmed_at) VALUES ",
    );
    for i in 0..rows {
        if i > 0 {
            text.push_str(", ");
        }
        let n = 3 + 4 * i;
        text.push_str(&format!(
            "({}, {}, {}, {}, {}, {t}, {t}, {t})",
            p(n),
            p(n + 1),
            p(n + 2),
            p(n + 3),
            p(2),
            t = p(1)
        ));
    }
    text.push_str(" RETURNING id");
    text
}

/// One page of subscribers for a CSV export, oldest first, after the
/// `(created_at, id)` of the last row of the previous page. Erased
/// skeletons only when `status` asks for them.
pub fn export_page(
    conn: &mut DbConnection,
    status: Option<SubscriberStatus>,
    after: Option<&(NaiveDateTime, String)>,
    limit: i64,
) -> QueryResult<Vec<Subscriber>> {
    let mut q = subscribers::table.into_boxed();
    q = match status {
        Some(s) => q.filter(subscribers::status.eq(s)),
        None => q.filter(subscribers::status.ne(SubscriberStatus::Erased)),
    };
    if let Some((at, id)) = after {
        q = q.filter(
            subscribers::created_at.gt(*at).or(subscribers::created_at
                .eq(*at)
                .and(subscribers::id.gt(id.clone()))),
        );
    }
    q.select(Subscriber::as_select())
        .order((subscribers::created_at.asc(), subscribers::id.asc()))
        .limit(limit)
        .load(conn)
}

/// The addresses of readers `ids` (`None` once erased), for listings that
/// name readers by id: one query per page.
pub fn addresses(
    conn: &mut DbConnection,
    ids: &[String],
) -> QueryResult<std::collections::HashMap<String, Option<String>>> {
    Ok(subscribers::table
        .filter(subscribers::id.eq_any(ids))
        .select((subscribers::id, subscribers::email))
        .load::<(String, Option<String>)>(conn)?
        .into_iter()
        .collect())
}
