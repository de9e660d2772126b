//! The console's sessions: a login starts a new one and ends the one the
//! browser had before, in one transaction.

use chrono::NaiveDateTime;

use crate::db::{self, DbError};

/// A session to store: only the SHA-256 of its id is kept.
pub struct NewSession {
    pub id_hash: String,
    pub admin_id: i64,
    pub csrf_token: String,
    pub expires_at: NaiveDateTime,
}

/// Stores `session`, deleting the session whose id hash is `previous`.
pub async fn start_session(
    pool: &db::Pool,
    previous: Option<String>,
    session: NewSession,
) -> Result<(), DbError> {
    db::transaction(pool, move |c| {
        if let Some(previous) = &previous {
            db::admins::delete_session(c, previous)?;
        }
        let s = &session;
        db::admins::create_session(c, &s.id_hash, s.admin_id, &s.csrf_token, s.expires_at)
    })
    .await
}
