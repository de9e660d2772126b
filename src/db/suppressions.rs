//! Addresses that must never be mailed again, kept as keyed hashes (HMAC with
//! `secret_key` of the lower-cased address) so the list itself holds no
//! personal data.

use diesel::prelude::*;

use super::schema::suppressions;
use super::DbConnection;
use crate::domain::SubscriberEmail;

pub fn hash(secret: &str, email_key: &str) -> String {
    crate::domain::token::mac_hex(secret, &format!("suppress:{email_key}"))
}

pub fn is_suppressed(conn: &mut DbConnection, secret: &str, email_key: &str) -> QueryResult<bool> {
    let found = suppressions::table
        .find(hash(secret, email_key))
        .select(suppressions::email_hash)
        .first::<String>(conn)
        .optional()?;
    Ok(found.is_some())
}

/// Whether the address is on the list under any key it may have been
/// erased under ([`SubscriberEmail::keys`]).
pub fn covers(conn: &mut DbConnection, secret: &str, email: &SubscriberEmail) -> QueryResult<bool> {
    for key in email.keys() {
        if is_suppressed(conn, secret, &key)? {
            return Ok(true);
        }
    }
    Ok(false)
}

pub fn add(
    conn: &mut DbConnection,
    secret: &str,
    email_key: &str,
    reason: crate::domain::SuppressionReason,
) -> QueryResult<()> {
    let h = hash(secret, email_key);
    if is_suppressed(conn, secret, email_key)? {
        return Ok(());
    }
    diesel::insert_into(suppressions::table)
        .values((
            suppressions::email_hash.eq(h),
            suppressions::reason.eq(reason),
            suppressions::created_at.eq(super::now()),
        ))
        .execute(conn)
        .map(drop)
}

/// Every hash on the list, for checking many addresses at once (bulk import).
pub fn all_hashes(conn: &mut DbConnection) -> QueryResult<std::collections::HashSet<String>> {
    let rows: Vec<String> = suppressions::table
        .select(suppressions::email_hash)
        .load(conn)?;
    Ok(rows.into_iter().collect())
}
