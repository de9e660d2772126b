//! Admin accounts (argon2id password hashes).

use diesel::prelude::*;

use super::schema::admins;
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
