//! `tidings subscribers import` and `export`: the real binary against a
//! fresh database.

use std::path::Path;
use std::process::Output;

use crate::helpers::{tidings, TestDb};

fn import(db: &TestDb, file: &Path, source: &str) -> Output {
    tidings()
        .env("TIDINGS_DATABASE_URL", &db.url)
        .arg("--create")
        .args(["subscribers", "import"])
        .arg(file)
        .args(["--source", source])
        .output()
        .unwrap()
}

fn export(db: &TestDb, args: &[&str]) -> Output {
    tidings()
        .env("TIDINGS_DATABASE_URL", &db.url)
        .arg("--create")
        .args(["subscribers", "export"])
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Stderr without the line that names the database.
fn errors(bytes: &[u8]) -> String {
    crate::helpers::without_database_line(&text(bytes))
}

/// Rows of an export as (email, name, status), header checked.
fn rows(out: &Output) -> Vec<(String, String, String)> {
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    assert_eq!(
        reader.headers().unwrap(),
        vec![
            "id",
            "email",
            "name",
            "status",
            "created_at",
            "confirmed_at"
        ]
    );
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[1].to_string(), r[2].to_string(), r[3].to_string())
        })
        .collect()
}

#[test]
fn import_reports_bad_rows_by_line_and_imports_the_rest() {
    // Arrange
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("readers.csv");
    std::fs::write(
        &file,
        "Email,Name,Signed up\n\
         ann@example.com,Ann,2020-01-01\n\
         not-an-address,Bob,2020-01-02\n\
         \"Cid@Example.COM\",\"Cid, the third\",x\n\
         ann@EXAMPLE.com,Ann again,x\n\
         \"dee@example.com\",\"Dee\nwith a newline\",x\n\
         ,No address,x\n\
         eve@example.com\n",
    )
    .unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend(b"fay@example.com,\xff\xfe not UTF-8\n");
    std::fs::write(&file, bytes).unwrap();

    // Act
    let out = import(&db, &file, "spring fair sign-up sheet");

    // Assert
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "imported 3, skipped: 1 existing, 0 suppressed, 4 invalid"
    );
    let stderr = errors(&out.stderr);
    assert!(
        stderr.contains("line 3: email \"not-an-address\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 6: name \"Dee\\nwith a newline\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 8: email \"\" is required"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 10: row is not valid UTF-8"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 4, "{stderr}");

    let mut emails = db.query_strings(
        "SELECT email || '|' || COALESCE(name, '') || '|' || status AS v FROM subscribers",
    );
    emails.sort();
    assert_eq!(
        emails,
        [
            "Cid@example.com|Cid, the third|confirmed",
            "ann@example.com|Ann|confirmed",
            "eve@example.com||confirmed",
        ]
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM subscribers WHERE confirmed_at IS NOT NULL"),
        3
    );
    assert_eq!(
        db.query_strings(
            "SELECT DISTINCT event || '|' || method || '|' || source || '|' || consent_text_version AS v \
             FROM consent_events"
        ),
        [format!(
            "imported|import|spring fair sign-up sheet|{}",
            tidings::domain::CONSENT_TEXT_VERSION
        )]
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM consent_events"), 3);

    // Again: everything is there already.
    let out = import(&db, &file, "spring fair sign-up sheet");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout).trim(),
        "imported 0, skipped: 4 existing, 0 suppressed, 4 invalid"
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM consent_events"), 3);
}

#[tokio::test]
async fn import_skips_another_spelling_of_a_reader_who_signed_up() {
    // Arrange: a reader who signed up through the form.
    let app = crate::helpers::spawn_app().await;
    assert_eq!(
        app.signup("reader@example.com").await.status().as_u16(),
        200
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("list.csv");
    std::fs::write(
        &file,
        "email\nreader@ｅｘａｍｐｌｅ.com\nreader@EXAMPLE．com\nleser@bücher.example\n",
    )
    .unwrap();

    // Act
    let out = import(&app.db, &file, "old list");

    // Assert: the full-width spellings are the reader we have.
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "imported 1, skipped: 2 existing, 0 suppressed, 0 invalid"
    );
    let mut emails = app
        .db
        .query_strings("SELECT email || '|' || status AS v FROM subscribers");
    emails.sort();
    assert_eq!(
        emails,
        [
            "leser@xn--bcher-kva.example|confirmed",
            "reader@example.com|pending",
        ]
    );
}

#[test]
fn import_never_resubscribes_someone_who_left() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.csv");
    std::fs::write(&file, "email\nleft@example.com\n").unwrap();
    assert_eq!(import(&db, &file, "first").status.code(), Some(0));
    db.execute("UPDATE subscribers SET status = 'unsubscribed'");

    let out = import(&db, &file, "second");

    assert_eq!(
        text(&out.stdout).trim(),
        "imported 0, skipped: 1 existing, 0 suppressed, 0 invalid"
    );
    assert_eq!(
        db.query_strings("SELECT status AS v FROM subscribers"),
        ["unsubscribed"]
    );
}

#[test]
fn import_of_an_unusable_file_is_one_line_exit_1() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();

    let missing = dir.path().join("missing.csv");
    let out = import(&db, &missing, "x");
    assert_eq!(out.status.code(), Some(1));
    let stderr = errors(&out.stderr);
    assert!(stderr.starts_with("error: cannot read "), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let no_email = dir.path().join("no-email.csv");
    std::fs::write(&no_email, "mail,name\nann@example.com,Ann\n").unwrap();
    let out = import(&db, &no_email, "x");
    assert_eq!(out.status.code(), Some(1));
    let stderr = errors(&out.stderr);
    assert!(stderr.starts_with("error: importing "), "{stderr}");
    assert!(stderr.contains("no \"email\" column"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert_eq!(db.count("SELECT COUNT(*) FROM subscribers"), 0);

    // Usage errors are clap's: exit 2.
    let out = tidings()
        .env("TIDINGS_DATABASE_URL", &db.url)
        .args(["subscribers", "import"])
        .arg(&no_email)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn export_has_the_columns_and_filters_by_status() {
    // Arrange
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.csv");
    std::fs::write(
        &file,
        "email,name\na@example.com,\"Quote \"\"A\"\", comma\"\nb@example.com,B\nc@example.com,\n",
    )
    .unwrap();
    assert_eq!(import(&db, &file, "seed").status.code(), Some(0));
    db.execute("UPDATE subscribers SET status = 'unsubscribed' WHERE email = 'b@example.com'");
    db.execute(
        "UPDATE subscribers SET status = 'erased', email = NULL, email_key = NULL, name = NULL \
         WHERE email = 'c@example.com'",
    );

    // Act + Assert
    let mut all = rows(&export(&db, &[]));
    all.sort();
    assert_eq!(
        all,
        [
            (
                "a@example.com".into(),
                "Quote \"A\", comma".into(),
                "confirmed".into()
            ),
            ("b@example.com".into(), "B".into(), "unsubscribed".into()),
        ]
    );
    assert_eq!(
        rows(&export(&db, &["--status", "unsubscribed"])),
        [("b@example.com".into(), "B".into(), "unsubscribed".into())]
    );
    assert_eq!(
        rows(&export(&db, &["--status", "erased"])),
        [(String::new(), String::new(), "erased".into())]
    );
    let out = export(&db, &["--status", "confirmed"]);
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    let record = reader.records().next().unwrap().unwrap();
    assert_eq!(record.len(), 6);
    assert!(uuid::Uuid::parse_str(&record[0]).is_ok());
    assert!(chrono::NaiveDateTime::parse_from_str(&record[4], "%Y-%m-%dT%H:%M:%S%.f").is_ok());
    assert!(chrono::NaiveDateTime::parse_from_str(&record[5], "%Y-%m-%dT%H:%M:%S%.f").is_ok());

    assert_eq!(
        export(&db, &["--status", "nonsense"]).status.code(),
        Some(2)
    );
}

#[test]
fn export_then_import_round_trips() {
    // Arrange: more rows than one export page, odd characters included.
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("seed.csv");
    let mut seed = String::from("email,name\n");
    for i in 0..12_000 {
        seed.push_str(&format!("reader{i}@example.com,\"Zoë, №{i}\"\n"));
    }
    seed.push_str("o'brien@example.com,\"O'Brien \"\"the quoted\"\"\"\n");
    std::fs::write(&file, seed).unwrap();
    let out = import(&db, &file, "seed");
    assert_eq!(
        text(&out.stdout).trim(),
        "imported 12001, skipped: 0 existing, 0 suppressed, 0 invalid"
    );

    // Act
    let first = export(&db, &[]);
    let exported = dir.path().join("exported.csv");
    std::fs::write(&exported, &first.stdout).unwrap();
    let other = TestDb::new();
    let out = import(&other, &exported, "moved from the old server");
    let second = export(&other, &[]);

    // Assert
    assert_eq!(
        text(&out.stdout).trim(),
        "imported 12001, skipped: 0 existing, 0 suppressed, 0 invalid"
    );
    let (mut a, mut b) = (rows(&first), rows(&second));
    assert_eq!(a.len(), 12_001);
    a.sort();
    b.sort();
    assert_eq!(a, b);
    assert!(a.contains(&(
        "o'brien@example.com".into(),
        "O'Brien \"the quoted\"".into(),
        "confirmed".into()
    )));
}
