//! Inbound mail and provider events: bounces, spam complaints and mailto
//! unsubscribes, through one path whatever the way in (`tidings inbound`
//! on a pipe, the SMTP receiver, a webhook).
//!
//! A message to `unsubscribe+TOKEN@<bounce domain>` with a genuine token
//! unsubscribes its reader at once. Anything else is read
//! ([`crate::mail::inbound`]) and, when it is a bounce or a complaint,
//! pinned on a reader: by the VERP tag of the address it came back to (or
//! one quoted in the report), else by the recipient the report names, but
//! only if that reader was sent mail in the last 30 days. Then, in one
//! transaction, the bounce is stored and its effect applied:
//! - hard: the reader is `bounced` (consent event `bounced`, with the
//!   status and diagnostic);
//! - soft: after `soft_bounce_limit` soft bounces within 30 days, with no
//!   digest between them that did not bounce, likewise `bounced`;
//! - complaint: `unsubscribed` with a `complained` event, and suppressed.

use chrono::{Duration, NaiveDateTime};

use crate::db::{self, bounces, DbConnection, DbError, QueryResult};
use crate::domain::verp::{self, Email, Ours, Tag};
use crate::domain::{BounceKind, BounceSource, SubscriberEmail, SubscriberStatus};
use crate::mail::inbound::{self, Report, Verdict};
use crate::state::AppState;

/// The largest inbound message read (by `tidings inbound` and the
/// receiver); a larger one is drained and ignored (bounces are small; a
/// digest quoted whole is ~100 KB).
pub const INBOUND_MAX: usize = 10 * 1024 * 1024;

/// How far back a bounce without a VERP tag may find the reader it names
/// mailed, and how far back soft bounces count.
const WINDOW_DAYS: i64 = 30;

/// What became of one inbound message or event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A mailto unsubscribe: the reader is unsubscribed (or already was).
    Unsubscribed,
    /// Stored against a reader; `changed`: their status changed.
    Recorded {
        kind: BounceKind,
        subscriber_id: String,
        changed: bool,
    },
    /// Nothing to do, and why.
    Ignored(String),
}

/// A bounce or complaint pinned on a reader, as every way in reports it.
#[derive(Clone, Debug)]
pub struct Reported {
    pub subscriber_id: String,
    pub digest_id: Option<i64>,
    pub kind: BounceKind,
    pub status: Option<String>,
    pub diagnostic: Option<String>,
    pub source: BounceSource,
}

/// One inbound message: `recipients` are its envelope recipients where
/// known (RCPT TO, or what the MTA passed to the pipe).
pub async fn receive(
    state: &AppState,
    raw: Vec<u8>,
    recipients: Vec<String>,
    source: BounceSource,
) -> Result<Outcome, DbError> {
    let Some(bounce_address) = state.settings.bounce_address.clone() else {
        return Ok(Outcome::Ignored("bounce_address is not set".into()));
    };
    let secret = state.secret.clone();
    let ours = |addresses: &[String]| -> Vec<Ours> {
        addresses
            .iter()
            .filter_map(|a| {
                verp::read_address(&secret, &bounce_address.local, &bounce_address.domain, a)
            })
            .collect()
    };
    // Parsing is CPU work on a message of up to the size cap.
    let report = tokio::task::spawn_blocking(move || inbound::read(&raw))
        .await
        .map_err(|e| DbError::Join(e.to_string()))?;
    let mut addressed = ours(&recipients);
    addressed.extend(ours(&report.addressed_to));
    if let Some(id) = addressed.iter().find_map(|o| match o {
        Ours::Unsubscribe(id) => Some(id.clone()),
        Ours::Bounce(_) => None,
    }) {
        return mailto_unsubscribe(state, id).await;
    }
    let kind = match report.verdict() {
        Verdict::Hard => BounceKind::Hard,
        Verdict::Soft => BounceKind::Soft,
        Verdict::Complaint => BounceKind::Complaint,
        Verdict::Ignored(why) => return Ok(Outcome::Ignored(why.into())),
    };
    let quoted = ours(&report.quoted);
    let tag = addressed.into_iter().chain(quoted).find_map(|o| match o {
        Ours::Bounce(tag) => Some((tag.subscriber_id.clone(), digest_of(&tag))),
        // The quoted original's own mailto names its reader too.
        Ours::Unsubscribe(id) if kind == BounceKind::Complaint => Some((id, None)),
        Ours::Unsubscribe(_) => None,
    });
    let limit = state.settings.soft_bounce_limit;
    let secret = state.secret.clone();
    let outcome = db::transaction(&state.pool, move |c| {
        let pinned = match tag {
            Some(t) => Some(t),
            None => named_reader(c, &report)?,
        };
        let Some((subscriber_id, digest_id)) = pinned else {
            return Ok(Outcome::Ignored("no reader to pin it on".into()));
        };
        let reported = Reported {
            subscriber_id,
            digest_id,
            kind,
            status: report.status.clone(),
            diagnostic: report.diagnostic.clone(),
            source,
        };
        apply(c, &secret, limit, &reported)
    })
    .await?;
    if let Outcome::Recorded { kind, .. } = &outcome {
        state
            .metrics
            .bounces
            .with_label_values(&[kind.as_str()])
            .inc();
    }
    Ok(outcome)
}

fn digest_of(tag: &Tag) -> Option<i64> {
    match tag.email {
        Email::Digest(id) => Some(id),
        Email::Confirmation(_) => None,
    }
}

/// The reader a report without a VERP tag names, if they were sent mail
/// in the last 30 days: a forged DSN cannot bounce anyone else.
fn named_reader(
    c: &mut DbConnection,
    report: &Report,
) -> QueryResult<Option<(String, Option<i64>)>> {
    let Some(email) = report
        .final_recipient
        .as_deref()
        .and_then(|a| SubscriberEmail::parse(a).ok())
    else {
        return Ok(None);
    };
    let Some(reader) = db::subscribers::find_by_key(c, &email.key())? else {
        return Ok(None);
    };
    let since = db::now() - Duration::days(WINDOW_DAYS);
    if !bounces::mailed_since(c, &reader.id, reader.confirmed_at, since)? {
        return Ok(None);
    }
    Ok(Some((reader.id, None)))
}

async fn mailto_unsubscribe(state: &AppState, id: String) -> Result<Outcome, DbError> {
    let ctx = db::consent::Context {
        source: Some("mailto unsubscribe".into()),
        method: Some("mailto".into()),
        ..Default::default()
    };
    Ok(
        match crate::subscriptions::unsubscribe(&state.pool, &id, ctx).await? {
            crate::subscriptions::UnsubscribeOutcome::Unknown => {
                Outcome::Ignored("unsubscribe token of no reader".into())
            }
            _ => Outcome::Unsubscribed,
        },
    )
}

/// Stores a bounce and applies its effect, inside the caller's
/// transaction (every way in ends here).
pub fn apply(
    c: &mut DbConnection,
    secret: &str,
    soft_limit: u32,
    r: &Reported,
) -> QueryResult<Outcome> {
    let Some(reader) = db::subscribers::find(c, &r.subscriber_id)? else {
        return Ok(Outcome::Ignored("no such reader".into()));
    };
    if reader.status == SubscriberStatus::Erased {
        return Ok(Outcome::Ignored("reader erased".into()));
    }
    let now = db::now();
    bounces::insert(
        c,
        &bounces::NewBounce {
            subscriber_id: &r.subscriber_id,
            digest_id: r.digest_id,
            kind: r.kind,
            status_code: r.status.as_deref(),
            diagnostic: r.diagnostic.as_deref(),
            source: r.source,
            received_at: now,
        },
    )?;
    let why = consent_source(r);
    let changed = match r.kind {
        BounceKind::Hard => crate::subscriptions::bounce_with(c, &r.subscriber_id, why)?,
        BounceKind::Soft if soft_limit_reached(c, &r.subscriber_id, soft_limit, now)? => {
            let why = format!("{why} ({soft_limit} soft bounces)");
            crate::subscriptions::bounce_with(c, &r.subscriber_id, why)?
        }
        BounceKind::Soft => false,
        BounceKind::Complaint => crate::subscriptions::complain(c, secret, &r.subscriber_id, why)?,
    };
    tracing::info!(
        subscriber = %r.subscriber_id,
        kind = %r.kind,
        status = r.status.as_deref().unwrap_or(""),
        source = %r.source,
        changed,
        "bounce recorded"
    );
    Ok(Outcome::Recorded {
        kind: r.kind,
        subscriber_id: r.subscriber_id.clone(),
        changed,
    })
}

/// The consent event's source: how it came in, its status and diagnostic.
fn consent_source(r: &Reported) -> String {
    let text = format!(
        "{} {}: {} {}",
        r.source,
        r.kind,
        r.status.as_deref().unwrap_or("-"),
        r.diagnostic.as_deref().unwrap_or("")
    );
    text.trim().chars().take(300).collect()
}

/// `limit` soft bounces within 30 days, about as many different emails,
/// and no digest since the first of them that did not bounce (a digest
/// that went through is a delivery between them, which starts the count
/// again).
fn soft_limit_reached(
    c: &mut DbConnection,
    id: &str,
    limit: u32,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let emails = bounces::soft_since(c, id, now - Duration::days(WINDOW_DAYS))?;
    let mut digests: Vec<i64> = emails.iter().flatten().copied().collect();
    digests.sort_unstable();
    digests.dedup();
    let others = emails.iter().filter(|e| e.is_none()).count();
    if digests.len() + others < limit as usize {
        return Ok(false);
    }
    let Some(first) = bounces::first_created(c, &digests)? else {
        return Ok(true);
    };
    let out = bounces::digests_out_since(c, first)?;
    Ok(out.iter().all(|d| digests.binary_search(d).is_ok()))
}

/// What `tidings inbound --dry-run` prints: the verdict on a message,
/// without settings or a database.
pub fn classify(raw: &[u8]) -> serde_json::Value {
    let report = inbound::read(raw);
    let (verdict, why) = match report.verdict() {
        Verdict::Hard => ("hard", None),
        Verdict::Soft => ("soft", None),
        Verdict::Complaint => ("complaint", None),
        Verdict::Ignored(why) => ("ignored", Some(why)),
    };
    serde_json::json!({
        "verdict": verdict,
        "why": why,
        "status": report.status,
        "diagnostic": report.diagnostic,
    })
}

pub use crate::domain::bounce_rates::{DigestBounces, COMPLAINT_ALERT, COMPLAINT_WARNING};

/// Bounce counts of digest `id`, which was sent to `sent` readers.
pub fn digest_bounces(c: &mut DbConnection, id: i64, sent: i64) -> QueryResult<DigestBounces> {
    let (mut hard, mut soft, mut complaints) = (0, 0, 0);
    for (_, kind, n) in bounces::counts_by_digest(c, &[id])? {
        match kind {
            BounceKind::Hard => hard = n,
            BounceKind::Soft => soft = n,
            BounceKind::Complaint => complaints = n,
        }
    }
    Ok(DigestBounces::of(hard, soft, complaints, sent))
}

/// A provider's event about one recipient, after its signature was
/// checked.
#[derive(Clone, Debug)]
pub struct ProviderEvent {
    pub recipient: String,
    pub kind: BounceKind,
    pub status: Option<String>,
    pub diagnostic: Option<String>,
}

/// Records authenticated provider events: each names its recipient by
/// address (the provider is trusted to have sent to it), all in one
/// transaction. Returns how many were pinned on a reader.
pub async fn record_events(state: &AppState, events: Vec<ProviderEvent>) -> Result<usize, DbError> {
    let limit = state.settings.soft_bounce_limit;
    let secret = state.secret.clone();
    let recorded = db::transaction(&state.pool, move |c| {
        let mut recorded = Vec::new();
        for e in &events {
            let Ok(email) = SubscriberEmail::parse(&e.recipient) else {
                continue;
            };
            let Some(reader) = db::subscribers::find_by_key(c, &email.key())? else {
                continue;
            };
            let reported = Reported {
                subscriber_id: reader.id,
                digest_id: None,
                kind: e.kind,
                status: e.status.clone(),
                diagnostic: e
                    .diagnostic
                    .as_deref()
                    .map(|d| d.chars().take(500).collect()),
                source: BounceSource::Webhook,
            };
            if let Outcome::Recorded { kind, .. } = apply(c, &secret, limit, &reported)? {
                recorded.push(kind);
            }
        }
        Ok(recorded)
    })
    .await?;
    for kind in &recorded {
        state
            .metrics
            .bounces
            .with_label_values(&[kind.as_str()])
            .inc();
    }
    Ok(recorded.len())
}
