//! What the last feed poll learned, for conditional GETs.

use diesel::prelude::*;

use super::schema::feed_state;
use super::DbConnection;

/// `(etag, last_modified)` from the last successful poll.
pub fn validators(
    conn: &mut DbConnection,
    url: &str,
) -> QueryResult<(Option<String>, Option<String>)> {
    Ok(feed_state::table
        .find(url)
        .select((feed_state::etag, feed_state::last_modified))
        .first(conn)
        .optional()?
        .unwrap_or((None, None)))
}

pub fn save(
    conn: &mut DbConnection,
    url: &str,
    etag: Option<&str>,
    last_modified: Option<&str>,
) -> QueryResult<()> {
    let now = super::now();
    let updated = diesel::update(feed_state::table.find(url))
        .set((
            feed_state::etag.eq(etag),
            feed_state::last_modified.eq(last_modified),
            feed_state::last_polled_at.eq(Some(now)),
        ))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(feed_state::table)
            .values((
                feed_state::feed_url.eq(url),
                feed_state::etag.eq(etag),
                feed_state::last_modified.eq(last_modified),
                feed_state::last_polled_at.eq(Some(now)),
            ))
            .execute(conn)?;
    }
    Ok(())
}
