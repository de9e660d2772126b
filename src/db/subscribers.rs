//! The `subscribers` table.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::schema::subscribers;
use super::DbConnection;

#[derive(Clone, Debug, Queryable, Selectable, Serialize)]
#[diesel(table_name = subscribers)]
pub struct Subscriber {
    pub id: String,
    pub email: Option<String>,
    #[serde(skip)]
    pub email_key: Option<String>,
    pub name: Option<String>,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub confirmed_at: Option<NaiveDateTime>,
    #[serde(skip)]
    pub last_confirmation_at: Option<NaiveDateTime>,
}

#[derive(Insertable)]
#[diesel(table_name = subscribers)]
pub struct NewSubscriber<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub email_key: &'a str,
    pub name: Option<&'a str>,
    pub status: &'a str,
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
    status: &str,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    let target = subscribers::table.find(id);
    if status == crate::domain::status::CONFIRMED {
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

pub fn set_name(conn: &mut DbConnection, id: &str, name: Option<&str>) -> QueryResult<usize> {
    diesel::update(subscribers::table.find(id))
        .set(subscribers::name.eq(name))
        .execute(conn)
}

/// Filters for listing. `q` matches part of the address, case-insensitively.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub status: Option<String>,
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
        if let Some(status) = &filter.status {
            q = q.filter(subscribers::status.eq(status.clone()));
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
pub fn count_by_status(conn: &mut DbConnection) -> QueryResult<Vec<(String, i64)>> {
    let rows: Vec<(String, i64)> = subscribers::table
        .group_by(subscribers::status)
        .select((subscribers::status, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(crate::domain::status::ALL
        .iter()
        .map(|s| {
            let n = rows
                .iter()
                .find(|(k, _)| k == s)
                .map(|(_, n)| *n)
                .unwrap_or(0);
            (s.to_string(), n)
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
        .filter(subscribers::status.eq(crate::domain::status::CONFIRMED))
        .select(subscribers::confirmed_at.assume_not_null())
        .load(conn)
}
