//! Ops API tokens, stored as SHA-256 hashes.

use diesel::prelude::*;

use super::schema::api_tokens;
use super::DbConnection;

pub fn create(conn: &mut DbConnection, name: &str, token_hash: &str) -> QueryResult<()> {
    diesel::insert_into(api_tokens::table)
        .values((
            api_tokens::name.eq(name),
            api_tokens::token_hash.eq(token_hash),
            api_tokens::created_at.eq(super::now()),
        ))
        .execute(conn)
        .map(drop)
}

/// The token's name when the hash is known.
pub fn find_by_hash(conn: &mut DbConnection, token_hash: &str) -> QueryResult<Option<String>> {
    api_tokens::table
        .filter(api_tokens::token_hash.eq(token_hash))
        .select(api_tokens::name)
        .first(conn)
        .optional()
}
