//! Small key/value facts every instance shares (the generated secret key).

use diesel::prelude::*;

use super::schema::app_state;
use super::DbConnection;

/// The secret key, generated on first use. Concurrent first starts agree:
/// the loser's insert fails on the primary key and it reads the winner's.
pub fn secret_key(conn: &mut DbConnection) -> QueryResult<String> {
    let existing = app_state::table
        .find("secret_key")
        .select(app_state::value)
        .first::<String>(conn)
        .optional()?;
    if let Some(value) = existing {
        return Ok(value);
    }
    let fresh = format!(
        "{}{}",
        crate::domain::token::random_token(),
        crate::domain::token::random_token()
    );
    let _ = diesel::insert_into(app_state::table)
        .values((app_state::key.eq("secret_key"), app_state::value.eq(&fresh)))
        .execute(conn);
    app_state::table
        .find("secret_key")
        .select(app_state::value)
        .first(conn)
}
