//! Confirmation tokens: only their SHA-256 is stored.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::confirmation_tokens;
use super::DbConnection;

pub fn insert(
    conn: &mut DbConnection,
    token_hash: &str,
    subscriber_id: &str,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<()> {
    insert_row(
        conn,
        token_hash,
        subscriber_id,
        None,
        created_at,
        expires_at,
    )
}

fn insert_row(
    conn: &mut DbConnection,
    token_hash: &str,
    subscriber_id: &str,
    new_email: Option<&str>,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(confirmation_tokens::table)
        .values((
            confirmation_tokens::token_hash.eq(token_hash),
            confirmation_tokens::subscriber_id.eq(subscriber_id),
            confirmation_tokens::created_at.eq(created_at),
            confirmation_tokens::expires_at.eq(expires_at),
            confirmation_tokens::new_email.eq(new_email),
        ))
        .execute(conn)
        .map(drop)
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

/// An address change waiting for its confirmation: the token row carries
/// the new address.
pub fn insert_change(
    conn: &mut DbConnection,
    token_hash: &str,
    subscriber_id: &str,
    new_email: &str,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<()> {
    let new_email = Some(new_email);
    insert_row(
        conn,
        token_hash,
        subscriber_id,
        new_email,
        created_at,
        expires_at,
    )
}

/// The new address a token confirms, if it is an address change; and
/// whether it was used already.
pub fn change_of(conn: &mut DbConnection, token_hash: &str) -> QueryResult<Option<(String, bool)>> {
    let row: Option<(Option<String>, Option<NaiveDateTime>)> = confirmation_tokens::table
        .find(token_hash)
        .select((confirmation_tokens::new_email, confirmation_tokens::used_at))
        .first(conn)
        .optional()?;
    Ok(row.and_then(|(email, used)| email.map(|e| (e, used.is_some()))))
}

/// The address change the reader asked for last and has not confirmed.
pub fn pending_change(
    conn: &mut DbConnection,
    subscriber_id: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<String>> {
    confirmation_tokens::table
        .filter(confirmation_tokens::subscriber_id.eq(subscriber_id))
        .filter(confirmation_tokens::new_email.is_not_null())
        .filter(confirmation_tokens::used_at.is_null())
        .filter(confirmation_tokens::expires_at.gt(now))
        .order(confirmation_tokens::created_at.desc())
        .select(confirmation_tokens::new_email)
        .first::<Option<String>>(conn)
        .optional()
        .map(Option::flatten)
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
