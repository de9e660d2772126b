//! Subscribers as CSV: `tidings subscribers export` and `tidings subscribers
//! import`.
//!
//! Export writes `id,email,name,status,created_at,confirmed_at`, oldest
//! first, paging through the table so memory stays flat. Erased skeletons
//! hold no address and are left out unless asked for with `--status erased`.
//!
//! Import reads a CSV with a header row naming at least an `email` column
//! (`name` is optional, other columns are ignored). Each reader becomes
//! `confirmed` with an `imported` consent event (method `import`, source the
//! operator's `--source`). Bad rows are reported and skipped; addresses on
//! the suppression list, already present (whatever their status: an import
//! never re-subscribes someone who left) or repeated in the file are skipped
//! and counted. Rows go in set-based, 5,000 per transaction, so a large
//! file is not one long lock and an interrupted import keeps what it
//! committed (running it again skips those rows); on PostgreSQL several
//! connections write batches at once (see `bench/README.md`).

use std::collections::HashSet;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Mutex;

use anyhow::Context as _;

use crate::db::{self, consent, subscribers, suppressions, DbConnection, Pool};
use crate::domain::{SubscriberEmail, SubscriberName, SubscriberStatus};

/// Rows per multi-row INSERT; five statements make one transaction.
const ROWS_PER_STATEMENT: usize = 1000;
const ROWS_PER_TRANSACTION: usize = 5000;
const EXPORT_PAGE: i64 = 5000;

pub const EXPORT_HEADER: [&str; 6] = [
    "id",
    "email",
    "name",
    "status",
    "created_at",
    "confirmed_at",
];

/// Writes the subscribers as CSV; returns how many rows were written.
pub fn export<W: Write>(
    conn: &mut DbConnection,
    status: Option<SubscriberStatus>,
    out: W,
) -> anyhow::Result<u64> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(EXPORT_HEADER)?;
    let mut after = None;
    let mut written = 0;
    loop {
        let page = subscribers::export_page(conn, status, after.as_ref(), EXPORT_PAGE)?;
        for s in &page {
            csv.write_record([
                s.id.as_str(),
                s.email.as_deref().unwrap_or(""),
                s.name.as_deref().unwrap_or(""),
                s.status.as_str(),
                &timestamp(s.created_at),
                &s.confirmed_at.map(timestamp).unwrap_or_default(),
            ])?;
            written += 1;
        }
        match page.last() {
            Some(last) if page.len() as i64 == EXPORT_PAGE => {
                after = Some((last.created_at, last.id.clone()));
            }
            _ => break,
        }
    }
    csv.flush()?;
    Ok(written)
}

/// The API's timestamp form (naive UTC, ISO 8601).
fn timestamp(t: chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.f").to_string()
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub imported: u64,
    /// Already in the database, or repeated earlier in the file.
    pub existing: u64,
    pub suppressed: u64,
    pub invalid: u64,
}

impl std::fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "imported {}, skipped: {} existing, {} suppressed, {} invalid",
            self.imported, self.existing, self.suppressed, self.invalid
        )
    }
}

/// Why an import could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Header(String),
    // No #[source] on these two: their Display already ends with the
    // cause, and an error chain would print it twice.
    #[error("reading the CSV: {0}")]
    Read(csv::Error),
    #[error("database unavailable: {0}")]
    Pool(r2d2::Error),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

impl From<csv::Error> for ImportError {
    fn from(e: csv::Error) -> Self {
        Self::Read(e)
    }
}

impl From<r2d2::Error> for ImportError {
    fn from(e: r2d2::Error) -> Self {
        Self::Pool(e)
    }
}

/// Connections writing batches at once on PostgreSQL, where the server's
/// index and foreign-key work per row is the bottleneck and several
/// backends spread it over the cores. SQLite has one writer: one.
const PG_WRITERS: usize = 3;

type PooledConn = r2d2::PooledConnection<db::ConnectionManager>;
/// What one writer did: (inserted, already present).
type WriterResult = Result<(u64, u64), ImportError>;

/// Imports readers from `input`. `problems` gets one line per bad row
/// (line number, value, reason); `progress` is told how many bytes of the
/// input were read so far. This thread parses; batches are written by
/// [`PG_WRITERS`] pooled connections on PostgreSQL, one on SQLite. A
/// database error stops the import; what was committed stays (importing
/// the file again skips it as existing). Each `imported` event records
/// `source` and the consent text version in force.
pub fn import<R: Read>(
    pool: &Pool,
    secret: &str,
    input: R,
    (source, consent_version): (&str, &str),
    problems: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> Result<ImportSummary, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::Fields)
        .from_reader(input);
    let columns = columns(reader.headers()?)?;

    let mut first = pool.get()?;
    let suppressed = suppressions::all_hashes(&mut first)?;
    let conns = writer_connections(pool, first)?;
    let writers = conns.len();
    let ctx = consent::Context {
        source: Some(source.to_string()),
        method: Some("import".into()),
        consent_version: Some(consent_version.to_string()),
        ..Default::default()
    };
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<subscribers::ImportRow>>(writers);
    let rx = Mutex::new(rx);
    let failed = AtomicBool::new(false);

    let mut summary = ImportSummary::default();
    let (read, written) = std::thread::scope(|scope| {
        let handles: Vec<_> = conns
            .into_iter()
            .map(|mut conn| {
                let (rx, ctx, failed) = (&rx, &ctx, &failed);
                scope.spawn(move || write_batches(&mut conn, rx, ctx, failed))
            })
            .collect();
        let read = read_rows(
            &mut reader,
            columns,
            |email| {
                email
                    .keys()
                    .iter()
                    .any(|key| suppressed.contains(&suppressions::hash(secret, key)))
            },
            &mut summary,
            problems,
            |batch, bytes| {
                if failed.load(Ordering::Relaxed) || tx.send(batch).is_err() {
                    return false;
                }
                progress(bytes);
                true
            },
        );
        drop(tx);
        (read, join_writers(handles))
    });
    read?;
    for w in written {
        let (inserted, existing) = w?;
        summary.imported += inserted;
        summary.existing += existing;
    }
    Ok(summary)
}

/// The positions of the `email` column (required) and the `name` column,
/// matched without case, blanks or a byte-order mark.
fn columns(headers: &csv::StringRecord) -> Result<(usize, Option<usize>), ImportError> {
    let column = |name: &str| {
        headers.iter().position(|h| {
            h.trim_start_matches('\u{feff}')
                .trim()
                .eq_ignore_ascii_case(name)
        })
    };
    let email_col = column("email").ok_or_else(|| {
        ImportError::Header(format!(
            "no \"email\" column in the header row ({})",
            headers.iter().collect::<Vec<_>>().join(",")
        ))
    })?;
    Ok((email_col, column("name")))
}

/// `first` and, on PostgreSQL, [`PG_WRITERS`] minus one more pooled
/// connections: one per writer thread.
fn writer_connections(pool: &Pool, first: PooledConn) -> Result<Vec<PooledConn>, ImportError> {
    let writers = match &**first {
        DbConnection::Pg(_) => PG_WRITERS,
        DbConnection::Sqlite(_) => 1,
    };
    let mut conns = vec![first];
    for _ in 1..writers {
        conns.push(pool.get()?);
    }
    Ok(conns)
}

/// Waits for every writer; a panicked one counts as a failed import.
fn join_writers(
    handles: Vec<std::thread::ScopedJoinHandle<'_, WriterResult>>,
) -> Vec<WriterResult> {
    handles
        .into_iter()
        .map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(ImportError::Header("a writer thread panicked".into())))
        })
        .collect()
}

/// Parses rows into batches of new readers and hands each to `send` (false:
/// stop reading). Bad, suppressed and repeated rows are counted here.
fn read_rows<R: Read>(
    reader: &mut csv::Reader<R>,
    (email_col, name_col): (usize, Option<usize>),
    is_suppressed: impl Fn(&SubscriberEmail) -> bool,
    summary: &mut ImportSummary,
    problems: &mut dyn Write,
    mut send: impl FnMut(Vec<subscribers::ImportRow>, u64) -> bool,
) -> Result<(), ImportError> {
    let mut seen = HashSet::new();
    let mut batch = Vec::with_capacity(ROWS_PER_TRANSACTION);
    let mut record = csv::StringRecord::new();
    // A report line for the operator; failing to write it must not stop the import.
    let mut bad = |summary: &mut ImportSummary, line: u64, what: String| {
        summary.invalid += 1;
        let _ = problems.write_all(format!("line {line}: {what}\n").as_bytes());
    };
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) if is_row_error(&e) => {
                let line = e.position().map_or(line, |p| p.line());
                bad(summary, line, "row is not valid UTF-8".into());
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        let line = record.position().map_or(line, |p| p.line());
        let raw_email = record.get(email_col).unwrap_or("");
        let email = match SubscriberEmail::parse(raw_email) {
            Ok(e) => e,
            Err(why) => {
                bad(summary, line, format!("email {raw_email:?} {why}"));
                continue;
            }
        };
        let raw_name = name_col.and_then(|i| record.get(i)).unwrap_or("");
        let name = match SubscriberName::parse(raw_name) {
            Ok(n) => n,
            Err(why) => {
                bad(summary, line, format!("name {raw_name:?} {why}"));
                continue;
            }
        };
        if is_suppressed(&email) {
            summary.suppressed += 1;
            continue;
        }
        let key = email.key();
        if !seen.insert(key.clone()) {
            summary.existing += 1;
            continue;
        }
        batch.push(subscribers::ImportRow {
            id: crate::domain::new_subscriber_id(),
            email: email.as_str().to_string(),
            email_key: key,
            name: name.map(SubscriberName::into_inner),
        });
        if batch.len() == ROWS_PER_TRANSACTION {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(ROWS_PER_TRANSACTION));
            if !send(full, reader.position().byte()) {
                return Ok(());
            }
        }
    }
    if !batch.is_empty() {
        send(batch, reader.position().byte());
    }
    Ok(())
}

/// Errors confined to one row (bad UTF-8); anything else stops the import.
fn is_row_error(e: &csv::Error) -> bool {
    matches!(e.kind(), csv::ErrorKind::Utf8 { .. })
}

/// One writer: takes batches until the reader is done, one transaction
/// each; returns (inserted, already present). After any writer failed it
/// only drains the queue so the reader is never left blocked.
fn write_batches(
    conn: &mut DbConnection,
    rx: &Mutex<Receiver<Vec<subscribers::ImportRow>>>,
    ctx: &consent::Context,
    failed: &AtomicBool,
) -> WriterResult {
    let mut done = (0, 0);
    let mut error = None;
    if let Err(e) = db::prepare_bulk(conn) {
        failed.store(true, Ordering::Relaxed);
        error = Some(e.into());
    }
    loop {
        let next = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => break,
        };
        let Ok(batch) = next else { break };
        if failed.load(Ordering::Relaxed) {
            continue;
        }
        let now = db::now();
        let result = db::in_transaction(conn, |c| {
            let mut inserted = 0;
            for rows in batch.chunks(ROWS_PER_STATEMENT) {
                inserted += subscribers::import_confirmed(c, rows, now, ctx)?;
            }
            Ok(inserted)
        });
        match result {
            Ok(inserted) => {
                done.0 += inserted as u64;
                done.1 += (batch.len() - inserted) as u64;
            }
            Err(e) => {
                failed.store(true, Ordering::Relaxed);
                error = Some(e.into());
            }
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

/// Opens the import file, naming it in the error.
pub fn open(path: &std::path::Path) -> anyhow::Result<(std::fs::File, u64)> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok((file, len))
}
