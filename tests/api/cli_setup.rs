//! The CLI run from wherever ops happen to be: it names the database it
//! works on, never makes a new one by accident, reads paths in a settings
//! file as relative to that file, says what to do where it cannot prompt,
//! and warns about TIDINGS_* variables that are not settings.

use std::path::Path;
use std::process::{Output, Stdio};

use crate::helpers::tidings;

fn run(dir: &Path, args: &[&str]) -> Output {
    tidings()
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_command_run_elsewhere_names_the_database_and_makes_no_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/tidings.db");

    let out = run(dir.path(), &["token", "create", "ops"]);

    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.trim().lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert_eq!(lines[0], format!("database: {}", db.display()));
    assert!(
        lines[1].starts_with("error: no database at ") && lines[1].contains("--create"),
        "{err}"
    );
    assert!(!db.exists() && !dir.path().join("data").exists());
    assert!(out.stdout.is_empty());

    let out = run(dir.path(), &["--create", "token", "create", "ops"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(db.exists());
    assert!(stderr(&out).starts_with(&format!("database: {}\n", db.display())));
}

#[test]
fn relative_paths_in_a_settings_file_mean_the_files_folder() {
    let etc = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let config = etc.path().join("tidings.toml");
    std::fs::write(&config, "database_url = \"sqlite://news.db\"\n").unwrap();
    let config = config.display().to_string();

    let out = run(elsewhere.path(), &["--config", &config, "migrate"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(etc.path().join("news.db").exists());

    let out = run(
        elsewhere.path(),
        &["--config", &config, "token", "create", "ops"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).starts_with(&format!(
        "database: {}\n",
        etc.path().join("news.db").display()
    )));
    assert!(std::fs::read_dir(elsewhere.path())
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn admin_create_without_a_terminal_says_to_set_the_password_variable() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run(dir.path(), &["migrate"]).status.code(), Some(0));

    let out = run(dir.path(), &["admin", "create", "editor"]);

    assert_eq!(out.status.code(), Some(1));
    let err = crate::helpers::without_database_line(&stderr(&out));
    assert_eq!(
        err.trim(),
        "error: no terminal to ask for the password: set TIDINGS_ADMIN_PASSWORD"
    );
}

#[test]
fn unknown_tidings_variables_are_warned_about_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = tidings()
        .current_dir(dir.path())
        .env("TIDINGS_SMPT_URL", "smtp://relay.example")
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "TIDINGS_SMPT_URL is not a setting and is ignored (did you mean TIDINGS_SMTP_URL?)"
        ) && err.contains("WARN"),
        "{err}"
    );
}
