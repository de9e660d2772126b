//! Persistence: one diesel connection type over SQLite and PostgreSQL, its r2d2
//! pool, embedded migrations (one folder per backend) and the bridge that runs
//! blocking diesel work off the async executor.
//!
//! Query functions live in one file per table group and take `&mut DbConnection`
//! so callers compose them inside one transaction. Most queries are written
//! once through diesel's multi-backend; the few that need backend-specific SQL
//! (`FOR UPDATE SKIP LOCKED`, `INSERT … SELECT`) branch with [`with_backend!`].

pub mod schema;

pub mod admins;
pub mod api_tokens;
pub mod app_state;
pub mod articles;
pub mod audience;
pub mod bounces;
pub mod confirmations;
pub mod consent;
pub mod deliveries;
pub mod digests;
pub mod erasure;
pub mod faults;
pub mod feedback;
pub mod feeds;
pub mod jobs;
pub mod outbox;
pub mod signups;
pub mod subscribers;
pub mod suppressions;
pub mod unnest;
pub mod views;

use std::time::Duration;

use chrono::{NaiveDateTime, SubsecRound, Utc};
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::config::DatabaseUrl;

pub const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

pub type Pool = r2d2::Pool<ConnectionManager>;

/// A pooled connection that remembers whether it saw the server go away, so
/// r2d2 discards it instead of handing a dead socket to the next request.
pub struct Pooled {
    conn: DbConnection,
    broken: bool,
}

impl std::ops::Deref for Pooled {
    type Target = DbConnection;
    fn deref(&self) -> &DbConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self.conn
    }
}

impl Pooled {
    /// Notes errors that mean the database is away or cannot write
    /// ([`faults::is_unavailable`]); true when this one did. Such a
    /// connection is not reused: a dead socket, or a SQLite handle opened
    /// read-only while the file was, would keep failing after the database
    /// is back.
    pub fn observe<T>(&mut self, result: &diesel::QueryResult<T>) -> bool {
        if let Err(e) = result {
            let lost = faults::is_unavailable(e);
            self.broken |= lost;
            return lost;
        }
        false
    }
}
pub type QueryResult<T> = diesel::QueryResult<T>;

/// Runs the same block on whichever concrete connection this is, so a query
/// written once with backend-specific SQL compiles for both.
#[macro_export]
macro_rules! with_backend {
    ($conn:expr, |$c:ident, $pg:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Pg($c) => {
                let $pg = true;
                $body
            }
            $crate::db::DbConnection::Sqlite($c) => {
                let $pg = false;
                $body
            }
        }
    };
}

/// Rewrites `?` placeholders to PostgreSQL's `$1, $2, …` when `pg` is set, so
/// raw SQL is written once for both backends.
pub fn sql(pg: bool, text: &str) -> String {
    if !pg {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut n = 0;
    for ch in text.chars() {
        if ch == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(ch);
        }
    }
    out
}

/// The `n`th (1-based) numbered placeholder: `$n` on PostgreSQL, `?n` on
/// SQLite. For statements built at run time that reuse a parameter.
pub fn placeholder(pg: bool, n: usize) -> String {
    if pg {
        format!("${n}")
    } else {
        format!("?{n}")
    }
}

/// Readies this connection for a bulk write: on SQLite a 64 MB page cache
/// (the default 2 MB spills dirty pages to the WAL in the middle of a large
/// transaction, rewriting them many times). A no-op on PostgreSQL.
pub fn prepare_bulk(conn: &mut DbConnection) -> QueryResult<()> {
    match conn {
        DbConnection::Pg(_) => Ok(()),
        DbConnection::Sqlite(c) => c.batch_execute("PRAGMA cache_size = -65536"),
    }
}

/// A table of leased work rows (`status`, `locked_until`, `attempts`).
pub struct WorkTable {
    pub name: &'static str,
    /// Claim order of the rows.
    pub order: &'static str,
    /// Columns the claim returns.
    pub returning: &'static str,
}

/// Leases up to `limit` rows of a work table that match `condition` (one
/// `?`, bound to `now`): marks them `sending` until `lease_until`, counts
/// the attempt and returns the table's `returning` columns. Concurrent
/// workers on PostgreSQL skip each other's rows; SQLite has one writer.
pub fn claim_batch<T>(
    conn: &mut DbConnection,
    table: &WorkTable,
    condition: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<T>>
where
    T: diesel::QueryableByName<diesel::pg::Pg>
        + diesel::QueryableByName<diesel::sqlite::Sqlite>
        + 'static,
{
    use diesel::sql_types::{BigInt, Timestamp};
    use diesel::RunQueryDsl;
    crate::with_backend!(conn, |c, pg| {
        let text = format!(
            "UPDATE {name} SET status = '{sending}', locked_until = ?, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM {name} WHERE {condition} \
               ORDER BY {order} LIMIT ? {}) \
             RETURNING {returning}",
            if pg { "FOR UPDATE SKIP LOCKED" } else { "" },
            sending = crate::domain::WorkStatus::Sending,
            name = table.name,
            order = table.order,
            returning = table.returning,
        );
        diesel::sql_query(sql(pg, &text))
            .bind::<Timestamp, _>(lease_until)
            .bind::<Timestamp, _>(now)
            .bind::<BigInt, _>(limit)
            .load(c)
    })
}

/// Timestamps are naive UTC with microsecond precision on both backends.
pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(6)
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Connection(#[from] diesel::ConnectionError),
    #[error("{0}")]
    Query(#[from] diesel::result::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// An r2d2 manager that picks the backend by URL scheme, so the real
/// connection error surfaces (diesel's multi `establish` hides it).
#[derive(Clone, Debug)]
pub struct ConnectionManager {
    url: DatabaseUrl,
    /// PostgreSQL sessions whose commits do not wait for the log flush
    /// (the workers' settles; see [`connect_settling`]).
    relaxed: bool,
}

impl ConnectionManager {
    pub fn new(url: DatabaseUrl) -> Self {
        Self {
            url,
            relaxed: false,
        }
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = Pooled;
    type Error = ConnectError;

    fn connect(&self) -> Result<Pooled, ConnectError> {
        Ok(Pooled {
            conn: self.open()?,
            // SQLite opens a file it may not write read-only, for good:
            // such a connection serves one checkout, so none outlives the
            // fault.
            broken: self.sqlite_read_only(),
        })
    }

    fn is_valid(&self, conn: &mut Pooled) -> Result<(), ConnectError> {
        Ok(conn.batch_execute("SELECT 1")?)
    }

    fn has_broken(&self, conn: &mut Pooled) -> bool {
        conn.broken
    }
}

impl ConnectionManager {
    /// Whether SQLite would open the file (or its WAL) read-only now, as it
    /// does when opening it for writing is refused.
    fn sqlite_read_only(&self) -> bool {
        let DatabaseUrl::Sqlite(path) = &self.url else {
            return false;
        };
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        [path.as_os_str(), wal.as_os_str()].iter().any(|file| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(file)
                .is_err_and(|e| {
                    matches!(
                        e.kind(),
                        std::io::ErrorKind::PermissionDenied
                            | std::io::ErrorKind::ReadOnlyFilesystem
                    )
                })
        })
    }

    /// Opens one connection of the configured backend.
    pub fn open(&self) -> Result<DbConnection, ConnectError> {
        match &self.url {
            DatabaseUrl::Postgres(url) => {
                let mut conn = PgConnection::establish(url)?;
                // A session that died mid-transaction without the server
                // noticing (a cut network, a proxy that dropped only our
                // side) would hold its row locks until TCP keepalive gives
                // up, hours later: the server ends it after this instead.
                // No transaction of ours sits idle for more than a moment.
                conn.batch_execute("SET idle_in_transaction_session_timeout = '15s'")?;
                if self.relaxed {
                    conn.batch_execute("SET synchronous_commit = off")?;
                }
                Ok(DbConnection::Pg(conn))
            }
            DatabaseUrl::Sqlite(path) => {
                let path = path.to_string_lossy();
                let mut conn = SqliteConnection::establish(&path)?;
                // busy_timeout first, or parallel pool start-up meets "database is locked".
                conn.batch_execute(
                    "PRAGMA busy_timeout = 10000;
                     PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = NORMAL;
                     PRAGMA foreign_keys = ON;
                     PRAGMA secure_delete = ON;",
                )?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

/// Opens the pool, failing with the database's own words when it cannot be
/// reached. Creates the SQLite file's folder on first run.
pub fn connect(url: &DatabaseUrl) -> anyhow::Result<Pool> {
    if let DatabaseUrl::Sqlite(path) = url {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        }
    }
    let manager = ConnectionManager::new(url.clone());
    let first = manager
        .open()
        .map_err(|e| anyhow::anyhow!("database unreachable: {}", e.to_string().trim()))?;
    let max_size = if url.is_postgres() { 24 } else { 8 };
    let pool = r2d2::Pool::builder()
        .max_size(max_size)
        .min_idle(Some(1))
        .connection_timeout(Duration::from_secs(3))
        .test_on_check_out(false)
        .build_unchecked(manager);
    drop(first);
    Ok(pool)
}

/// The pool the mail workers settle through. On PostgreSQL its sessions
/// commit without waiting for the log flush: a settle is committed every
/// few sends, and its latency paces sending (a send's place in the window
/// comes back only when its outcome is committed). Nothing is lost when
/// Tidings crashes (the server has the commit and flushes it within a
/// fraction of a second); a crash of the database server itself may lose
/// its last settles, which repeats those sends and loses none. SQLite (WAL,
/// `synchronous = NORMAL`) already commits so: the main pool serves.
pub fn connect_settling(url: &DatabaseUrl, main: &Pool) -> Pool {
    if !url.is_postgres() {
        return main.clone();
    }
    let manager = ConnectionManager {
        url: url.clone(),
        relaxed: true,
    };
    r2d2::Pool::builder()
        .max_size(8)
        .min_idle(Some(1))
        .connection_timeout(Duration::from_secs(3))
        .test_on_check_out(false)
        .build_unchecked(manager)
}

/// Brings the schema up to date. Several instances starting together on one
/// PostgreSQL take turns through an advisory lock.
pub fn migrate(conn: &mut DbConnection) -> anyhow::Result<usize> {
    let applied = match conn {
        DbConnection::Pg(c) => {
            c.batch_execute("SELECT pg_advisory_lock(7231977)")?;
            let result = c.run_pending_migrations(PG_MIGRATIONS).map(|v| v.len());
            c.batch_execute("SELECT pg_advisory_unlock(7231977)")?;
            result
        }
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
    };
    applied.map_err(|e| anyhow::anyhow!("migration failed: {e}"))
}

/// Why a database call from a request failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had: the database is down or saturated (503).
    #[error("database unavailable: {0}")]
    Unavailable(#[from] r2d2::Error),
    /// The database could not serve the query: the connection died, or the
    /// database is read-only, full, locked or shutting down (503; see
    /// [`faults::is_unavailable`]).
    #[error("database fault: {0}")]
    Lost(diesel::result::Error),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    #[error("blocking task failed: {0}")]
    Join(String),
    /// Another call found the database unavailable just now (503): what a
    /// group of waiting requests hears from the one that tried.
    #[error("database unavailable: {0}")]
    Down(String),
}

impl DbError {
    /// The database, not the request, is at fault: answer 503 and retry later.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            DbError::Unavailable(_) | DbError::Lost(_) | DbError::Down(_)
        )
    }

    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            DbError::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }
}

/// Runs `f` with a pooled connection on the blocking thread pool.
pub async fn run<T, F>(pool: &Pool, f: F) -> Result<T, DbError>
where
    F: FnOnce(&mut DbConnection) -> diesel::QueryResult<T> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get()?;
        let result = f(&mut conn);
        if conn.observe(&result) {
            return Err(DbError::Lost(
                result.err().unwrap_or(diesel::result::Error::NotFound),
            ));
        }
        Ok(result?)
    })
    .await
    .map_err(|e| DbError::Join(e.to_string()))?
}

/// Like [`run`], inside one transaction.
pub async fn transaction<T, F>(pool: &Pool, f: F) -> Result<T, DbError>
where
    F: FnOnce(&mut DbConnection) -> diesel::QueryResult<T> + Send + 'static,
    T: Send + 'static,
{
    run(pool, move |conn| in_transaction(conn, f)).await
}

/// Like [`transaction`], for work that can also end for a reason of its
/// own: `Ok(Err(e))` from `f` rolls the transaction back and is returned as
/// `Ok(Err(e))`, so use cases need no stand-in diesel error to undo work.
pub async fn transaction_or<T, E, F>(pool: &Pool, f: F) -> Result<Result<T, E>, DbError>
where
    F: FnOnce(&mut DbConnection) -> diesel::QueryResult<Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    run(pool, move |conn| {
        let mut abandoned = None;
        let result = in_transaction(conn, |c| match f(c)? {
            Ok(value) => Ok(value),
            Err(e) => {
                abandoned = Some(e);
                Err(diesel::result::Error::RollbackTransaction)
            }
        });
        match (result, abandoned) {
            (Ok(value), _) => Ok(Ok(value)),
            (Err(_), Some(e)) => Ok(Err(e)),
            (Err(e), None) => Err(e),
        }
    })
    .await
}

/// Runs `f` inside one transaction. On SQLite it begins IMMEDIATE, taking the
/// write lock up front: a deferred transaction that later writes can fail with
/// SQLITE_BUSY at once, which busy_timeout does not cover. Query functions do
/// not open transactions of their own, so this never nests.
pub fn in_transaction<T, F>(conn: &mut DbConnection, f: F) -> diesel::QueryResult<T>
where
    F: FnOnce(&mut DbConnection) -> diesel::QueryResult<T>,
{
    match conn {
        DbConnection::Pg(_) => conn.transaction(f),
        DbConnection::Sqlite(_) => {
            conn.batch_execute("BEGIN IMMEDIATE")?;
            match f(conn) {
                Ok(value) => match conn.batch_execute("COMMIT") {
                    Ok(()) => Ok(value),
                    Err(e) => {
                        let _ = conn.batch_execute("ROLLBACK");
                        Err(e)
                    }
                },
                Err(e) => {
                    let _ = conn.batch_execute("ROLLBACK");
                    Err(e)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use diesel::prelude::*;
    use diesel::sql_types::Text;

    use crate::domain::{DigestStatus, SubscriberStatus};

    /// Through the multi-backend connection, as every query runs: an enum
    /// binds as its text, reads back from it, and text that is none of its
    /// values is a deserialization error.
    #[test]
    fn vocabulary_is_text_through_the_multi_backend() {
        let sqlite = diesel::SqliteConnection::establish(":memory:").unwrap();
        let mut conn = super::DbConnection::Sqlite(sqlite);
        let bound: String = diesel::select(SubscriberStatus::Erased.into_sql::<Text>())
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(bound, "erased");
        let read: DigestStatus = diesel::select(diesel::dsl::sql::<Text>("'paused'"))
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(read, DigestStatus::Paused);
        let unknown = diesel::select(diesel::dsl::sql::<Text>("'Paused'"))
            .get_result::<DigestStatus>(&mut conn)
            .unwrap_err();
        assert!(
            matches!(unknown, diesel::result::Error::DeserializationError(_)),
            "{unknown:?}"
        );
    }

    #[test]
    fn placeholders() {
        assert_eq!(super::sql(true, "a = ? AND b = ?"), "a = $1 AND b = $2");
        assert_eq!(super::sql(false, "a = ?"), "a = ?");
    }
}
