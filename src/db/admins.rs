//! Admin accounts (argon2id password hashes) and their console sessions
//! (stored as the SHA-256 of the session id, so a database dump logs no one in).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{admin_sessions, admins};
use super::DbConnection;

pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    admins::table.count().get_result(conn)
}

/// Creates the admin or replaces the password of an existing one.
pub fn upsert(conn: &mut DbConnection, name: &str, password_hash: &str) -> QueryResult<()> {
    let updated = diesel::update(admins::table.filter(admins::name.eq(name)))
        .set(admins::password_hash.eq(password_hash))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(admins::table)
            .values((
                admins::name.eq(name),
                admins::password_hash.eq(password_hash),
                admins::created_at.eq(super::now()),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// `(id, password hash)` of the named admin.
pub fn find_by_name(conn: &mut DbConnection, name: &str) -> QueryResult<Option<(i64, String)>> {
    admins::table
        .filter(admins::name.eq(name))
        .select((admins::id, admins::password_hash))
        .first(conn)
        .optional()
}

/// A console session that has not expired, with its admin's name.
#[derive(Clone, Debug)]
pub struct Session {
    pub admin_id: i64,
    pub admin_name: String,
    pub csrf_token: String,
    pub expires_at: NaiveDateTime,
}

/// Stores a new session under the SHA-256 of its id (the raw id lives only in
/// the admin's cookie), and drops sessions that ran out.
pub fn create_session(
    conn: &mut DbConnection,
    id_hash: &str,
    admin_id: i64,
    csrf_token: &str,
    expires_at: NaiveDateTime,
) -> QueryResult<()> {
    let now = super::now();
    diesel::delete(admin_sessions::table.filter(admin_sessions::expires_at.le(now)))
        .execute(conn)?;
    diesel::insert_into(admin_sessions::table)
        .values((
            admin_sessions::id_hash.eq(id_hash),
            admin_sessions::admin_id.eq(admin_id),
            admin_sessions::csrf_token.eq(csrf_token),
            admin_sessions::created_at.eq(now),
            admin_sessions::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(drop)
}

/// The live session stored under `id_hash`, if any.
pub fn find_session(conn: &mut DbConnection, id_hash: &str) -> QueryResult<Option<Session>> {
    admin_sessions::table
        .inner_join(admins::table)
        .filter(admin_sessions::id_hash.eq(id_hash))
        .filter(admin_sessions::expires_at.gt(super::now()))
        .select((
            admin_sessions::admin_id,
            admins::name,
            admin_sessions::csrf_token,
            admin_sessions::expires_at,
        ))
        .first::<(i64, String, String, NaiveDateTime)>(conn)
        .optional()
        .map(|row| {
            row.map(|(admin_id, admin_name, csrf_token, expires_at)| Session {
                admin_id,
                admin_name,
                csrf_token,
                expires_at,
            })
        })
}

pub fn delete_session(conn: &mut DbConnection, id_hash: &str) -> QueryResult<usize> {
    diesel::delete(admin_sessions::table.filter(admin_sessions::id_hash.eq(id_hash))).execute(conn)
}
