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
//! and counted. Rows go in as multi-row INSERTs, a few thousand per
//! transaction, so a large file is not one long lock and an interrupted
//! import keeps what it committed (running it again skips those rows).

use std::collections::HashSet;
use std::io::{Read, Write};

use anyhow::Context as _;

use crate::db::{self, consent, subscribers, suppressions, DbConnection};
use crate::domain::{SubscriberEmail, SubscriberName};

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
    status: Option<&str>,
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
    #[error("reading the CSV: {0}")]
    Read(#[from] csv::Error),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// Imports readers from `input`. `problems` gets one line per bad row
/// (line number, value, reason); `progress` is told how many bytes of the
/// input were read so far.
pub fn import<R: Read>(
    conn: &mut DbConnection,
    secret: &str,
    input: R,
    source: &str,
    problems: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> Result<ImportSummary, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::Fields)
        .from_reader(input);
    let headers = reader.headers()?.clone();
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
    let name_col = column("name");

    db::prepare_bulk(conn)?;
    let suppressed = suppressions::all_hashes(conn)?;
    let ctx = consent::Context {
        source: Some(source.to_string()),
        method: Some("import".into()),
        ..Default::default()
    };
    let mut summary = ImportSummary::default();
    let mut seen = HashSet::new();
    let mut batch = Vec::with_capacity(ROWS_PER_TRANSACTION);
    let mut record = csv::StringRecord::new();
    let mut bad = |summary: &mut ImportSummary, line: u64, what: &str, value: &str, why: &str| {
        summary.invalid += 1;
        // A report line for the operator; failing to write it must not stop the import.
        let report = format!("line {line}: {what} {value:?} {why}\n");
        let _ = problems.write_all(report.as_bytes());
    };
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) if is_row_error(&e) => {
                let line = e.position().map_or(line, |p| p.line());
                bad(&mut summary, line, "row", "", &e.to_string());
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        let line = record.position().map_or(line, |p| p.line());
        let raw_email = record.get(email_col).unwrap_or("");
        let email = match SubscriberEmail::parse(raw_email) {
            Ok(e) => e,
            Err(why) => {
                bad(&mut summary, line, "email", raw_email, &why);
                continue;
            }
        };
        let raw_name = name_col.and_then(|i| record.get(i)).unwrap_or("");
        let name = match SubscriberName::parse(raw_name) {
            Ok(n) => n,
            Err(why) => {
                bad(&mut summary, line, "name", raw_name, &why);
                continue;
            }
        };
        let key = email.key();
        if suppressed.contains(&suppressions::hash(secret, &key)) {
            summary.suppressed += 1;
            continue;
        }
        if !seen.insert(key.clone()) {
            summary.existing += 1;
            continue;
        }
        batch.push(subscribers::ImportRow {
            // rand's user-space generator: no getrandom call per row.
            id: uuid::Builder::from_random_bytes(rand::random())
                .into_uuid()
                .to_string(),
            email: email.as_str().to_string(),
            email_key: key,
            name: name.map(SubscriberName::into_inner),
        });
        if batch.len() == ROWS_PER_TRANSACTION {
            flush(conn, &mut batch, &ctx, &mut summary)?;
            progress(reader.position().byte());
        }
    }
    flush(conn, &mut batch, &ctx, &mut summary)?;
    progress(reader.position().byte());
    Ok(summary)
}

/// Errors confined to one row (bad UTF-8); anything else stops the import.
fn is_row_error(e: &csv::Error) -> bool {
    matches!(e.kind(), csv::ErrorKind::Utf8 { .. })
}

/// Inserts one transaction's worth of readers and their consent events.
fn flush(
    conn: &mut DbConnection,
    batch: &mut Vec<subscribers::ImportRow>,
    ctx: &consent::Context,
    summary: &mut ImportSummary,
) -> Result<(), ImportError> {
    if batch.is_empty() {
        return Ok(());
    }
    let now = db::now();
    let inserted = db::in_transaction(conn, |c| {
        let mut inserted = 0;
        for rows in batch.chunks(ROWS_PER_STATEMENT) {
            inserted += subscribers::import_confirmed(c, rows, now, ctx)?;
        }
        Ok(inserted)
    })?;
    summary.imported += inserted as u64;
    summary.existing += (batch.len() - inserted) as u64;
    batch.clear();
    Ok(())
}

/// Opens the import file, naming it in the error.
pub fn open(path: &std::path::Path) -> anyhow::Result<(std::fs::File, u64)> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok((file, len))
}
