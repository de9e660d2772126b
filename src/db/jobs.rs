//! Scheduler leadership: the first instance to record `(job, tick)` runs it;
//! the others see the key taken and skip that tick.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::job_runs;
use super::DbConnection;

/// True when this caller won the tick.
pub fn claim_tick(
    conn: &mut DbConnection,
    job: &str,
    tick: &str,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let inserted = diesel::insert_into(job_runs::table)
        .values((
            job_runs::job.eq(job),
            job_runs::tick.eq(tick),
            job_runs::started_at.eq(at),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(true),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Forgets ticks older than `before` (their leadership is long decided).
pub fn prune(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(job_runs::table.filter(job_runs::started_at.lt(before))).execute(conn)
}
