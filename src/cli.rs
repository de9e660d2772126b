//! The `tidings` commands. Errors are one line on stderr and exit status 1;
//! usage errors exit 2 (clap).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::config::Settings;
use crate::db;
use crate::domain::{DigestStatus, SubscriberStatus};
use crate::state::AppState;

#[derive(Parser, Debug)]
#[command(
    name = "tidings",
    version,
    about = "Self-hosted newsletter: double opt-in signups and digests of new articles"
)]
pub struct Cli {
    /// TOML settings file (every key can be overridden by TIDINGS_<KEY>)
    #[arg(long, global = true, env = "TIDINGS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Let a command other than serve or migrate make a new SQLite database
    /// (without it, a missing file is an error: usually the wrong folder)
    #[arg(long, global = true)]
    pub create: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve HTTP, send mail and run the schedule (the default)
    Serve,
    /// Bring the database schema up to date and exit
    Migrate,
    /// Admin accounts for the console
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// API tokens for the ops API
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Digests
    Digest {
        #[command(subcommand)]
        command: DigestCommand,
    },
    /// The articles feed
    Feed {
        #[command(subcommand)]
        command: FeedCommand,
    },
    /// Check the settings, the database, the relay and DNS, and say what to fix
    Doctor {
        /// Ask this DNS server (IP:PORT) instead of the system's
        #[arg(long, value_name = "IP:PORT")]
        dns: Option<std::net::SocketAddr>,
    },
    /// Subscribers as CSV
    Subscribers {
        #[command(subcommand)]
        command: SubscribersCommand,
    },
    /// Read one inbound message on stdin (a bounce, a complaint or a mailto
    /// unsubscribe), as an MTA's pipe transport delivers it. Exit 0 when it
    /// was processed or ignored, 75 (EX_TEMPFAIL) when it should be retried
    Inbound {
        /// The envelope recipient (repeatable); RECIPIENT and
        /// ORIGINAL_RECIPIENT from the environment are read too
        #[arg(long, value_name = "ADDRESS")]
        recipient: Vec<String>,
        /// Print the verdict on the message as JSON and change nothing
        /// (needs no database)
        #[arg(long)]
        dry_run: bool,
    },
}

/// EX_TEMPFAIL: the MTA keeps the message and tries again later.
pub const EXIT_TEMPFAIL: i32 = 75;
use crate::bounces::INBOUND_MAX;

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create an admin (or set a new password); password from TIDINGS_ADMIN_PASSWORD or a prompt
    Create { name: String },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create an API token; it is printed once, alone on the last line
    Create { name: String },
}

#[derive(Subcommand, Debug)]
pub enum DigestCommand {
    /// Compose a digest of new articles and send it now, with a progress bar
    Send,
}

#[derive(Subcommand, Debug)]
pub enum FeedCommand {
    /// Poll feed_url once
    Poll,
}

#[derive(Subcommand, Debug)]
pub enum SubscribersCommand {
    /// Write subscribers as CSV to stdout (id,email,name,status,created_at,confirmed_at);
    /// erased readers only with --status erased
    Export {
        /// Only readers with this status
        #[arg(long, value_parser = status_parser())]
        status: Option<SubscriberStatus>,
    },
    /// Import readers from a CSV file (header row with an `email` column,
    /// optional `name`) as confirmed, recording the import in the consent log
    Import {
        /// The CSV file
        file: PathBuf,
        /// Where the list comes from, kept in each reader's consent log
        #[arg(long)]
        source: String,
    },
}

/// Runs the command line; returns the exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    crate::telemetry::init();
    if let Some(Command::Inbound { recipient, dry_run }) = &cli.command {
        return inbound(cli.config.as_deref(), recipient.clone(), *dry_run);
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return 1;
        }
    };
    for warning in crate::config::unknown_env_vars(&std::env::vars().collect()) {
        tracing::warn!("{warning}");
    }
    let command = cli.command.unwrap_or(Command::Serve);
    let result = match command {
        // actix-web wants its own system on the current thread.
        Command::Serve => actix_web::rt::System::new().block_on(crate::startup::serve(settings)),
        Command::Doctor { dns } => runtime.block_on(doctor(settings, dns)),
        other => {
            let may_create = cli.create || matches!(other, Command::Migrate);
            check_database(&settings, may_create)
                .and_then(|()| runtime.block_on(run(other, settings)))
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            1
        }
    }
}

/// Names the database a command works on (one line on stderr), and
/// refuses to make a new SQLite file unless `may_create` (migrate, or
/// `--create`): a command run from the wrong folder would otherwise work on
/// an empty database of its own, and the running server would never see
/// its token or admin.
fn check_database(settings: &Settings, may_create: bool) -> anyhow::Result<()> {
    eprintln!("database: {}", settings.database_label());
    if let crate::config::DatabaseUrl::Sqlite(path) = &settings.database_url {
        if !may_create && !path.exists() {
            anyhow::bail!(
                "no database at {}: run where it is, point --config or TIDINGS_DATABASE_URL at it, \
                 or pass --create to make a new one",
                settings.database_label()
            );
        }
    }
    Ok(())
}

/// `tidings doctor`: a line per finding on stdout; exit 1 with a count
/// when any is a problem.
async fn doctor(settings: Settings, dns: Option<std::net::SocketAddr>) -> anyhow::Result<()> {
    let env = std::env::vars().collect();
    let findings = crate::doctor::examine(&settings, &env, dns).await;
    for finding in &findings {
        println!("{finding}");
    }
    let problems = findings
        .iter()
        .filter(|f| matches!(f, crate::doctor::Finding::Problem { .. }))
        .count();
    match problems {
        0 => Ok(()),
        n => anyhow::bail!("{}", plural(n, "problem")),
    }
}

fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve | Command::Inbound { .. } | Command::Doctor { .. } => {
            unreachable!("handled by main")
        }
        Command::Migrate => {
            let url = settings.database_url.clone();
            let applied = tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
                let pool = db::connect(&url)?;
                let mut conn = pool.get()?;
                db::migrate(&mut conn)
            })
            .await??;
            println!("migrations applied: {applied}; schema is up to date");
            Ok(())
        }
        Command::Admin {
            command: AdminCommand::Create { name },
        } => admin_create(settings, name).await,
        Command::Token {
            command: TokenCommand::Create { name },
        } => {
            let name = name.trim().to_string();
            if name.is_empty() || name.len() > 100 {
                anyhow::bail!("token name must be 1 to 100 characters");
            }
            let state = AppState::open(settings).await?;
            let token = format!("tid_{}", crate::domain::token::random_token());
            let hash = crate::domain::token::hash(&token);
            let n = name.clone();
            db::run(&state.pool, move |c| db::api_tokens::create(c, &n, &hash)).await?;
            println!("API token \"{name}\" created. It is shown once; store it now:");
            println!("{token}");
            Ok(())
        }
        Command::Digest {
            command: DigestCommand::Send,
        } => digest_send(settings).await,
        Command::Feed {
            command: FeedCommand::Poll,
        } => {
            let state = AppState::open(settings).await?;
            let outcome = crate::digest::feed::poll(&state).await?;
            if outcome.not_modified {
                println!("feed not modified since the last poll");
            } else {
                println!(
                    "feed polled: {} new, {} updated, {} skipped (no title or http(s) link), \
                     {} undated (given the poll time)",
                    outcome.new, outcome.updated, outcome.skipped, outcome.undated
                );
            }
            Ok(())
        }
        Command::Subscribers {
            command: SubscribersCommand::Export { status },
        } => subscribers_export(settings, status).await,
        Command::Subscribers {
            command: SubscribersCommand::Import { file, source },
        } => subscribers_import(settings, file, source).await,
    }
}

/// `--status`: one of the statuses' names (listed in `--help`), parsed.
fn status_parser() -> impl clap::builder::TypedValueParser<Value = SubscriberStatus> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(SubscriberStatus::NAMES)
        .try_map(|name| name.parse::<SubscriberStatus>())
}

async fn subscribers_export(
    settings: Settings,
    status: Option<SubscriberStatus>,
) -> anyhow::Result<()> {
    let state = AppState::open(settings).await?;
    let pool = state.pool.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut conn = pool.get()?;
        let stdout = std::io::stdout().lock();
        crate::subscriber_csv::export(&mut conn, status, std::io::BufWriter::new(stdout))?;
        Ok(())
    })
    .await?
}

async fn subscribers_import(
    settings: Settings,
    file: PathBuf,
    source: String,
) -> anyhow::Result<()> {
    let source = source.trim().to_string();
    if source.is_empty() || source.len() > 500 || source.chars().any(char::is_control) {
        anyhow::bail!("--source must be 1 to 500 printable characters");
    }
    // The file first: a typo in its name should not wait on the database.
    let (input, len) = crate::subscriber_csv::open(&file)?;
    let state = AppState::open(settings).await?;
    let pool = state.pool.clone();
    let secret = state.secret.clone();
    let version = state.consent_version.clone();
    let summary = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let bar = indicatif::ProgressBar::new(len);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {binary_bytes}/{binary_total_bytes} read {elapsed}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let mut problems = AboveBar(&bar);
        let mut progress = |bytes| bar.set_position(bytes);
        let result = crate::subscriber_csv::import(
            &pool,
            &secret,
            std::io::BufReader::with_capacity(1 << 16, input),
            (&source, &version),
            &mut problems,
            &mut progress,
        );
        bar.finish_and_clear();
        result.with_context(|| format!("importing {}", file.display()))
    })
    .await??;
    println!("{summary}");
    Ok(())
}

/// Writes report lines to stderr above a progress bar instead of through it.
struct AboveBar<'a>(&'a indicatif::ProgressBar);

impl std::io::Write for AboveBar<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.suspend(|| std::io::stderr().write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

async fn admin_create(settings: Settings, name: String) -> anyhow::Result<()> {
    let name = name.trim().to_string();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        anyhow::bail!("admin name must be 1 to 100 printable characters");
    }
    let password = match std::env::var("TIDINGS_ADMIN_PASSWORD") {
        Ok(p) => p,
        Err(_) if !std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
            anyhow::bail!("no terminal to ask for the password: set TIDINGS_ADMIN_PASSWORD")
        }
        Err(_) => {
            let p = rpassword::prompt_password(format!("Password for {name}: "))?;
            let again = rpassword::prompt_password("Repeat it: ")?;
            if p != again {
                anyhow::bail!("the passwords differ");
            }
            p
        }
    };
    if password.chars().count() < 12 {
        anyhow::bail!("password must be at least 12 characters");
    }
    let hash = crate::domain::password::hash(&password)?;
    let state = AppState::open(settings).await?;
    let n = name.clone();
    db::run(&state.pool, move |c| db::admins::upsert(c, &n, &hash)).await?;
    println!(
        "admin \"{name}\" can now log in at {}",
        state.link("/admin/login")
    );
    Ok(())
}

/// Composes and sends now, in this process, following the real counts.
async fn digest_send(settings: Settings) -> anyhow::Result<()> {
    let state = AppState::open(settings).await?;
    let id = match crate::digest::compose(&state, None).await? {
        crate::digest::ComposeOutcome::NothingNew => {
            println!("nothing new: no digest sent");
            return Ok(());
        }
        crate::digest::ComposeOutcome::Created(c) | crate::digest::ComposeOutcome::Existing(c) => {
            println!(
                "digest {} composed: {}, {}",
                c.id,
                plural(c.articles, "article"),
                plural(c.recipients, "recipient")
            );
            c.id
        }
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {msg} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    crate::telemetry::set_bar(&bar);
    let result = follow_digest(&state, id, &bar).await;
    crate::telemetry::clear_bar();
    result
}

/// `N of M sent, F failed, R retrying`.
fn progress_line(p: &db::digests::Progress, retrying: i64) -> String {
    format!(
        "{} of {} sent, {} failed, {} retrying",
        p.sent, p.total, p.failed, retrying
    )
}

/// `1 article`, `2 articles`.
fn plural(n: usize, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        _ => format!("{n} {noun}s"),
    }
}

/// Runs the delivery worker here and draws its progress until the digest
/// is done, paused or cancelled.
async fn follow_digest(
    state: &crate::state::SharedState,
    id: i64,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<()> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(crate::workers::delivery::run(state.clone(), rx));
    let progress = loop {
        let (p, digest, retrying) = db::run(&state.pool, move |c| {
            Ok((
                db::digests::progress(c, id)?,
                db::digests::find(c, id)?,
                db::digests::retrying(c, id)?,
            ))
        })
        .await?;
        if let Some(d) = digest.filter(|d| d.status != DigestStatus::Sending) {
            if d.status != DigestStatus::Sent {
                let _ = tx.send(true);
                let _ = worker.await;
                bar.abandon();
                anyhow::bail!(
                    "digest {id} is {}{}: {} sent, {} queued (POST /api/digests/{id}/resume goes on)",
                    d.status,
                    d.status_reason.map(|r| format!(" ({r})")).unwrap_or_default(),
                    p.sent,
                    p.queued
                );
            }
        }
        bar.set_length(p.total as u64);
        bar.set_position((p.sent + p.failed + p.skipped) as u64);
        bar.set_message(progress_line(&p, retrying));
        if p.queued == 0 {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = tx.send(true);
    let _ = worker.await;
    bar.finish();
    println!(
        "digest {id} done: {} sent, {} failed, {} skipped",
        progress.sent, progress.failed, progress.skipped
    );
    Ok(())
}

/// `tidings inbound`: only exit 0 or 75, whatever happens, so a pipe
/// transport never bounces a bounce (any other status makes Postfix and
/// Exim return the message to its sender).
fn inbound(config: Option<&std::path::Path>, mut recipients: Vec<String>, dry_run: bool) -> i32 {
    let raw = match read_inbound(std::io::stdin().lock()) {
        Ok(Some(raw)) => raw,
        Ok(None) => {
            println!("ignored: message over {} bytes", INBOUND_MAX);
            return 0;
        }
        Err(e) => {
            eprintln!("error: reading the message: {e}");
            return EXIT_TEMPFAIL;
        }
    };
    if dry_run {
        println!("{}", crate::bounces::classify(&raw));
        return 0;
    }
    for var in ["RECIPIENT", "ORIGINAL_RECIPIENT"] {
        if let Ok(r) = std::env::var(var) {
            recipients.push(r);
        }
    }
    let outcome = Settings::load(config)
        .map_err(anyhow::Error::from)
        .and_then(|settings| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let state = AppState::open(settings).await?;
                let source = crate::domain::BounceSource::Pipe;
                Ok(crate::bounces::receive(&state, raw, recipients, source).await?)
            })
        });
    match outcome {
        Ok(outcome) => {
            println!("{}", describe(&outcome));
            0
        }
        Err(e) => {
            eprintln!("error: {} (the MTA will retry)", one_line(&e));
            EXIT_TEMPFAIL
        }
    }
}

/// The message, or `None` when it is over [`INBOUND_MAX`] (the rest is
/// read and dropped, so the MTA's write does not fail).
fn read_inbound(mut input: impl std::io::Read) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read as _;
    let mut raw = Vec::new();
    (&mut input)
        .take(INBOUND_MAX as u64 + 1)
        .read_to_end(&mut raw)?;
    if raw.len() > INBOUND_MAX {
        std::io::copy(&mut input, &mut std::io::sink())?;
        return Ok(None);
    }
    Ok(Some(raw))
}

/// One line for the MTA's log: never an address.
fn describe(outcome: &crate::bounces::Outcome) -> String {
    use crate::bounces::Outcome;
    match outcome {
        Outcome::Unsubscribed => "unsubscribed".to_string(),
        Outcome::Recorded {
            kind,
            subscriber_id,
            changed,
        } => format!(
            "recorded: {kind} for subscriber {subscriber_id}{}",
            if *changed { " (status changed)" } else { "" }
        ),
        Outcome::Ignored(why) => format!("ignored: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_and_counts_read_as_english() {
        let p = db::digests::Progress {
            total: 5,
            sent: 3,
            failed: 1,
            queued: 1,
            skipped: 0,
        };
        assert_eq!(progress_line(&p, 1), "3 of 5 sent, 1 failed, 1 retrying");
        assert_eq!(plural(1, "article"), "1 article");
        assert_eq!(plural(0, "article"), "0 articles");
        assert_eq!(plural(2, "recipient"), "2 recipients");
    }
}
