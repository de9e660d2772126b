//! Confirmation tokens: only their SHA-256 is stored.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::confirmation_tokens;
use super::unnest::{Bind, Sql, Unnest};
use super::DbConnection;

pub fn insert(
    conn: &mut DbConnection,
    token_hash: &str,
    subscriber_id: &str,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(confirmation_tokens::table)
        .values((
            confirmation_tokens::token_hash.eq(token_hash),
            confirmation_tokens::subscriber_id.eq(subscriber_id),
            confirmation_tokens::created_at.eq(created_at),
            confirmation_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(drop)
}

/// Tokens for many readers: `(token hash, subscriber id)` pairs.
pub fn insert_many(
    conn: &mut DbConnection,
    tokens: &[(String, &str)],
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<()> {
    if tokens.is_empty() {
        return Ok(());
    }
    if let DbConnection::Pg(c) = conn {
        return Unnest::<InsertMany>::new(vec![
            Bind::At(created_at),
            Bind::At(expires_at),
            Bind::Texts(tokens.iter().map(|(hash, _)| hash.as_str()).collect()),
            Bind::Texts(tokens.iter().map(|(_, id)| *id).collect()),
        ])
        .execute(c)
        .map(drop);
    }
    let rows: Vec<_> = tokens
        .iter()
        .map(|(hash, subscriber_id)| {
            (
                confirmation_tokens::token_hash.eq(hash.as_str()),
                confirmation_tokens::subscriber_id.eq(*subscriber_id),
                confirmation_tokens::created_at.eq(created_at),
                confirmation_tokens::expires_at.eq(expires_at),
            )
        })
        .collect();
    crate::with_backend!(conn, |c, _pg| diesel::insert_into(
        confirmation_tokens::table
    )
    .values(&rows)
    .execute(c))
    .map(drop)
}

/// [`insert_many`] on PostgreSQL.
struct InsertMany;
impl Sql for InsertMany {
    const SQL: &'static str = "INSERT INTO confirmation_tokens \
        (token_hash, subscriber_id, created_at, expires_at) \
        SELECT h, s, ?, ? FROM unnest(?::text[], ?::text[]) AS t(h, s)";
    type Returning = ();
}

/// `(subscriber id, expires_at)` for a token hash.
pub fn find(
    conn: &mut DbConnection,
    token_hash: &str,
) -> QueryResult<Option<(String, NaiveDateTime)>> {
    confirmation_tokens::table
        .find(token_hash)
        .select((
            confirmation_tokens::subscriber_id,
            confirmation_tokens::expires_at,
        ))
        .first(conn)
        .optional()
}

pub fn mark_used(
    conn: &mut DbConnection,
    token_hash: &str,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(confirmation_tokens::table.find(token_hash))
        .set(confirmation_tokens::used_at.eq(Some(at)))
        .execute(conn)
}

/// Voids every outstanding link of a subscriber (after unsubscribe/erasure).
pub fn delete_for(conn: &mut DbConnection, subscriber_id: &str) -> QueryResult<usize> {
    diesel::delete(
        confirmation_tokens::table.filter(confirmation_tokens::subscriber_id.eq(subscriber_id)),
    )
    .execute(conn)
}
