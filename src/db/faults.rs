//! Which database errors mean "the database cannot serve now" (503, try
//! again) rather than "this query is wrong" (500), and the readiness probe
//! that asks whether the database can take a write.
//!
//! The classification lives here alone: [`super::run`] turns every error it
//! accepts into [`super::DbError::Lost`], and [`super::Pooled::observe`]
//! drops the connection that saw it, so the pool reconnects by itself once
//! the database is back (a SQLite connection opened while the file was
//! read-only stays read-only for life).

use diesel::connection::SimpleConnection;
use diesel::result::{DatabaseErrorKind, Error};
use diesel::RunQueryDsl;

use super::DbConnection;

/// Words of the errors that say the database (not the query) is at fault.
/// diesel keeps neither SQLite's result code nor PostgreSQL's SQLSTATE, only
/// the message, so the message is what is matched; only errors of unknown
/// kind are matched, never constraint errors that can quote a value.
const UNAVAILABLE_MESSAGES: &[&str] = &[
    // SQLite: SQLITE_READONLY, SQLITE_FULL, SQLITE_IOERR, SQLITE_CANTOPEN,
    // SQLITE_BUSY (after busy_timeout), SQLITE_LOCKED.
    "attempt to write a readonly database",
    "database or disk is full",
    "disk i/o error",
    "unable to open database file",
    "database is locked",
    "database table is locked",
    // PostgreSQL: 57P01 admin shutdown, 57P03 cannot connect now, 53100
    // disk full, 53300 too many connections, and libpq's lost socket.
    "terminating connection due to administrator command",
    "the database system is",
    "could not extend file",
    "no space left on device",
    "too many connections",
    "server closed the connection unexpectedly",
    "no connection to the server",
    "connection to server",
    "could not connect to server",
    "ssl syscall error",
];

/// Whether `e` means the database is away, read-only, full or jammed: the
/// request may succeed later, unchanged.
pub fn is_unavailable(e: &Error) -> bool {
    match e {
        Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection
            | DatabaseErrorKind::UnableToSendCommand
            | DatabaseErrorKind::ReadOnlyTransaction,
            _,
        )
        | Error::BrokenTransactionManager => true,
        Error::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            let message = info.message().to_ascii_lowercase();
            UNAVAILABLE_MESSAGES.iter().any(|m| message.contains(m))
        }
        Error::RollbackErrorOnCommit { commit_error, .. } => is_unavailable(commit_error),
        _ => false,
    }
}

/// How long a process must have reached the database before it takes over
/// leases that ran out. Twice the longest pause between a live holder's
/// settle retries (the workers' `settle_pause`, 2 s) and then
/// some: time in which a holder that was only cut off has settled or
/// renewed its work.
pub const TAKEOVER_GRACE: std::time::Duration = std::time::Duration::from_secs(6);

/// When this process last failed to reach the database. A lease that ran
/// out while the database was away is no sign its holder died: the holder
/// could not renew it either, and sends it made meanwhile wait in its
/// memory for their settle. Taking such a lease over the moment the
/// database is back would send them again, so workers take over only once
/// [`Reach::may_take_over`] says the database has been reachable for
/// [`TAKEOVER_GRACE`]. A process that saw no outage (its peer crashed)
/// takes over as soon as the lease runs out.
#[derive(Debug, Default)]
pub struct Reach {
    last_failure: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Reach {
    /// Notes a failed claim, settle or release.
    pub fn failed(&self) {
        if let Ok(mut last) = self.last_failure.lock() {
            *last = Some(std::time::Instant::now());
        }
    }

    /// Whether expired leases may be taken over now.
    pub fn may_take_over(&self) -> bool {
        match self.last_failure.lock() {
            Ok(last) => last.is_none_or(|at| at.elapsed() >= TAKEOVER_GRACE),
            Err(_) => false,
        }
    }
}

/// How long the probe waits for SQLite's write lock: a readiness check must
/// answer quickly, not wait out the requests' busy_timeout.
const PROBE_BUSY_MS: u32 = 2_000;
const REQUEST_BUSY_MS: u32 = 10_000;

/// Succeeds when the database can take a write now. On SQLite a real,
/// committed write of one tiny row: a file made read-only under an open
/// connection (or a full disk) still answers `SELECT 1` and even `BEGIN
/// IMMEDIATE`, and only fails once a page reaches the WAL. On PostgreSQL
/// `SELECT` of the server's read-only state (a standby, a read-only
/// default): no write, so probes cost the server nothing.
pub fn probe_writable(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    match conn {
        DbConnection::Sqlite(c) => {
            c.batch_execute(&format!("PRAGMA busy_timeout = {PROBE_BUSY_MS}"))?;
            let written = c.batch_execute(
                "INSERT INTO app_state (key, value) VALUES ('ready_probe', CURRENT_TIMESTAMP) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            );
            c.batch_execute(&format!("PRAGMA busy_timeout = {REQUEST_BUSY_MS}"))?;
            written
        }
        DbConnection::Pg(c) => {
            #[derive(diesel::QueryableByName)]
            struct ReadOnly {
                #[diesel(sql_type = diesel::sql_types::Bool)]
                read_only: bool,
            }
            let state: ReadOnly = diesel::sql_query(
                "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on' \
                 AS read_only",
            )
            .get_result(c)?;
            if state.read_only {
                return Err(Error::DatabaseError(
                    DatabaseErrorKind::ReadOnlyTransaction,
                    Box::new("the database is read-only".to_string()),
                ));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unknown(message: &str) -> Error {
        Error::DatabaseError(DatabaseErrorKind::Unknown, Box::new(message.to_string()))
    }

    #[test]
    fn faults_of_the_database_are_unavailable() {
        for message in [
            "attempt to write a readonly database",
            "database or disk is full",
            "disk I/O error",
            "database is locked",
            "unable to open database file",
            "terminating connection due to administrator command",
            "FATAL:  the database system is shutting down",
            "server closed the connection unexpectedly\n\tThis probably means…",
        ] {
            assert!(is_unavailable(&unknown(message)), "{message}");
        }
        assert!(is_unavailable(&Error::DatabaseError(
            DatabaseErrorKind::ReadOnlyTransaction,
            Box::new("cannot execute INSERT in a read-only transaction".to_string()),
        )));
        assert!(is_unavailable(&Error::BrokenTransactionManager));
    }

    #[test]
    fn takeover_waits_out_the_grace_after_a_failure() {
        let reach = Reach::default();
        assert!(reach.may_take_over(), "no outage seen: take over at once");
        reach.failed();
        assert!(!reach.may_take_over());
        if let Ok(mut last) = reach.last_failure.lock() {
            *last = std::time::Instant::now().checked_sub(TAKEOVER_GRACE);
        }
        assert!(reach.may_take_over());
    }

    #[test]
    fn faults_of_the_query_are_not() {
        assert!(!is_unavailable(&Error::NotFound));
        assert!(!is_unavailable(&unknown("no such table: nonsense")));
        assert!(!is_unavailable(&Error::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            Box::new("database is locked".to_string()),
        )));
    }
}
