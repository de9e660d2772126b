//! What readers do: sign up, confirm, unsubscribe. Each is one transaction
//! that changes the subscriber, appends its consent event and (for signups)
//! queues the confirmation email in the outbox.

pub mod batch;
pub mod handoff;

use chrono::{Duration, NaiveDateTime};

use crate::db::{self, confirmations, consent, outbox, subscribers, DbConnection};
use crate::domain::{
    token, ConsentEvent, MailKind, SubscriberEmail, SubscriberName, SubscriberStatus,
};

/// The knobs a signup needs from the settings.
#[derive(Clone, Debug)]
pub struct SignupPolicy {
    pub confirm_ttl: Duration,
    pub resend_after: Duration,
    pub secret: String,
}

impl SignupPolicy {
    pub fn new(settings: &crate::config::Settings, secret: &str) -> Self {
        Self {
            confirm_ttl: Duration::hours(i64::from(settings.confirm_ttl_hours)),
            resend_after: Duration::minutes(i64::from(settings.resend_after_minutes)),
            secret: secret.to_string(),
        }
    }
}

/// What a signup did. Callers answer the same whatever it is (no probing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignupOutcome {
    /// A confirmation email was queued.
    Queued,
    /// Pending and a link was sent recently: nothing sent.
    Throttled,
    /// Already confirmed: nothing to do.
    AlreadyConfirmed,
    /// Suppressed (erased earlier and asked for through the API): nothing.
    Suppressed,
}

/// Payload of a `confirm` outbox row: the nonce the token derives from.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct ConfirmPayload {
    pub nonce: String,
    pub name: Option<String>,
}

/// One signup, inside the caller's transaction. `None`: the row that was in
/// the way of a new one is gone (erased meanwhile) and nothing was
/// written; the caller starts over.
pub fn signup(
    conn: &mut DbConnection,
    email: &SubscriberEmail,
    name: Option<&SubscriberName>,
    ctx: &consent::Context,
    policy: &SignupPolicy,
    respect_suppression: bool,
) -> db::QueryResult<Option<SignupOutcome>> {
    let now = db::now();
    let key = email.key();
    if respect_suppression && db::suppressions::covers(conn, &policy.secret, email)? {
        return Ok(Some(SignupOutcome::Suppressed));
    }
    let name = name.map(SubscriberName::as_str);
    // The common case, a new address, costs one statement: the row goes in
    // with its name and the time of its first link already set.
    let fresh = crate::domain::new_subscriber_id();
    let inserted = subscribers::insert_if_absent(
        conn,
        &subscribers::NewSubscriber {
            id: &fresh,
            email: email.as_str(),
            email_key: &key,
            name,
            status: SubscriberStatus::Pending,
            created_at: now,
            updated_at: now,
            confirmed_at: None,
            last_confirmation_at: Some(now),
        },
    )?;
    let id = if inserted {
        fresh
    } else {
        let Some(existing) = subscribers::find_by_key(conn, &key)? else {
            return Ok(None);
        };
        let id = match existing.status {
            SubscriberStatus::Confirmed => return Ok(Some(SignupOutcome::AlreadyConfirmed)),
            SubscriberStatus::Pending => {
                let recent = existing
                    .last_confirmation_at
                    .is_some_and(|at| now - at < policy.resend_after);
                if recent {
                    return Ok(Some(SignupOutcome::Throttled));
                }
                existing.id
            }
            // Unsubscribed or bounced: a fresh double opt-in.
            _ => {
                subscribers::set_status(conn, &existing.id, SubscriberStatus::Pending, now)?;
                existing.id
            }
        };
        if name.is_some() {
            subscribers::set_name(conn, &id, name)?;
        }
        subscribers::mark_confirmation_sent(conn, &id, now)?;
        id
    };
    consent::record(conn, &id, ConsentEvent::Requested, now, ctx)?;
    queue_confirmation(conn, &id, email.as_str(), name, policy, now)?;
    Ok(Some(SignupOutcome::Queued))
}

fn queue_confirmation(
    conn: &mut DbConnection,
    subscriber_id: &str,
    address: &str,
    name: Option<&str>,
    policy: &SignupPolicy,
    now: NaiveDateTime,
) -> db::QueryResult<()> {
    let (token_hash, payload) = new_confirmation(policy, name);
    confirmations::insert(
        conn,
        &token_hash,
        subscriber_id,
        now,
        now + policy.confirm_ttl,
    )?;
    outbox::enqueue(
        conn,
        MailKind::Confirm,
        Some(subscriber_id),
        address,
        &payload,
        now,
    )
}

/// A new confirmation link: the hash of its token (what is stored) and the
/// outbox payload the token is derived from again when the mail is sent.
fn new_confirmation(policy: &SignupPolicy, name: Option<&str>) -> (String, String) {
    let nonce = token::random_token();
    let raw = token::confirmation_token(&policy.secret, &nonce);
    // A JSON value prints infallibly (ConfirmPayload reads it back).
    let payload = serde_json::json!({"nonce": nonce, "name": name}).to_string();
    (token::hash(&raw), payload)
}

#[derive(Debug, PartialEq, Eq)]
pub enum ConfirmOutcome {
    Confirmed,
    /// A new address asked for on the preferences page is confirmed: it
    /// replaced the old one.
    AddressChanged,
    AlreadyConfirmed,
    /// The link expired (or the reader left since): offer a new one.
    Expired {
        email: Option<String>,
    },
    Unknown,
}

impl ConfirmOutcome {
    /// For logs: the outcome without the address an expired link carries.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::AddressChanged => "address_changed",
            Self::AlreadyConfirmed => "already_confirmed",
            Self::Expired { .. } => "expired",
            Self::Unknown => "unknown",
        }
    }
}

/// Confirms the reader a link's token belongs to, in one transaction
/// (the `confirmed` consent event with it); idempotent.
/// With `welcome`, the welcome email is queued in the same transaction.
pub async fn confirm(
    pool: &db::Pool,
    raw_token: &str,
    ctx: consent::Context,
    welcome: bool,
) -> Result<ConfirmOutcome, db::DbError> {
    let raw_token = raw_token.to_string();
    db::transaction(pool, move |c| confirm_in(c, &raw_token, &ctx, welcome)).await
}

fn confirm_in(
    conn: &mut DbConnection,
    raw_token: &str,
    ctx: &consent::Context,
    welcome: bool,
) -> db::QueryResult<ConfirmOutcome> {
    let now = db::now();
    let hash = token::hash(raw_token);
    let Some((subscriber_id, expires_at)) = confirmations::find(conn, &hash)? else {
        return Ok(ConfirmOutcome::Unknown);
    };
    if let Some((new_email, used)) = confirmations::change_of(conn, &hash)? {
        if used {
            return Ok(ConfirmOutcome::AlreadyConfirmed);
        }
        let change = Change {
            hash: &hash,
            subscriber_id: &subscriber_id,
            new_email: &new_email,
            live: expires_at > now,
        };
        return change_address(conn, &change, ctx, now);
    }
    let Some(subscriber) = subscribers::find(conn, &subscriber_id)? else {
        return Ok(ConfirmOutcome::Unknown);
    };
    match subscriber.status {
        SubscriberStatus::Confirmed => Ok(ConfirmOutcome::AlreadyConfirmed),
        SubscriberStatus::Pending if expires_at > now => {
            subscribers::set_status(conn, &subscriber_id, SubscriberStatus::Confirmed, now)?;
            confirmations::mark_used(conn, &hash, now)?;
            consent::record(conn, &subscriber_id, ConsentEvent::Confirmed, now, ctx)?;
            if let (true, Some(address)) = (welcome, subscriber.email.as_deref()) {
                let payload = serde_json::json!({"name": subscriber.name}).to_string();
                outbox::enqueue(
                    conn,
                    MailKind::Welcome,
                    Some(&subscriber_id),
                    address,
                    &payload,
                    now,
                )?;
            }
            Ok(ConfirmOutcome::Confirmed)
        }
        _ => Ok(ConfirmOutcome::Expired {
            email: subscriber.email,
        }),
    }
}

/// An address change's confirmation link.
struct Change<'a> {
    hash: &'a str,
    subscriber_id: &'a str,
    new_email: &'a str,
    /// Not expired.
    live: bool,
}

/// Confirms an address change: the new address replaces the old one,
/// with a `preferences` consent event. Expired, or the reader left since:
/// expired. Another reader took the address meanwhile: unknown.
fn change_address(
    conn: &mut DbConnection,
    change: &Change,
    ctx: &consent::Context,
    now: NaiveDateTime,
) -> db::QueryResult<ConfirmOutcome> {
    let confirmed = subscribers::find(conn, change.subscriber_id)?
        .is_some_and(|s| s.status == SubscriberStatus::Confirmed);
    if !change.live || !confirmed {
        return Ok(ConfirmOutcome::Expired { email: None });
    }
    let Ok(email) = SubscriberEmail::parse(change.new_email) else {
        return Ok(ConfirmOutcome::Unknown);
    };
    if subscribers::find_by_key(conn, &email.key())?.is_some() {
        return Ok(ConfirmOutcome::Unknown);
    }
    subscribers::set_email(
        conn,
        change.subscriber_id,
        email.as_str(),
        &email.key(),
        now,
    )?;
    confirmations::mark_used(conn, change.hash, now)?;
    let ctx = consent::Context {
        method: Some("new address confirmed".into()),
        ..ctx.clone()
    };
    consent::record(
        conn,
        change.subscriber_id,
        ConsentEvent::Preferences,
        now,
        &ctx,
    )?;
    Ok(ConfirmOutcome::AddressChanged)
}

#[derive(Debug, PartialEq, Eq)]
pub enum UnsubscribeOutcome {
    Unsubscribed,
    AlreadyGone,
    Unknown,
}

/// Unsubscribes a reader at once, in one transaction (the `unsubscribed`
/// consent event with it).
pub async fn unsubscribe(
    pool: &db::Pool,
    subscriber_id: &str,
    ctx: consent::Context,
) -> Result<UnsubscribeOutcome, db::DbError> {
    let id = subscriber_id.to_string();
    db::transaction(pool, move |c| unsubscribe_in(c, &id, &ctx)).await
}

/// Unsubscribes at once; idempotent (a repeat records nothing new).
fn unsubscribe_in(
    conn: &mut DbConnection,
    subscriber_id: &str,
    ctx: &consent::Context,
) -> db::QueryResult<UnsubscribeOutcome> {
    let now = db::now();
    let Some(subscriber) = subscribers::find(conn, subscriber_id)? else {
        return Ok(UnsubscribeOutcome::Unknown);
    };
    match subscriber.status {
        SubscriberStatus::Pending | SubscriberStatus::Confirmed | SubscriberStatus::Bounced => {
            subscribers::set_status(conn, subscriber_id, SubscriberStatus::Unsubscribed, now)?;
            confirmations::delete_for(conn, subscriber_id)?;
            consent::record(conn, subscriber_id, ConsentEvent::Unsubscribed, now, ctx)?;
            Ok(UnsubscribeOutcome::Unsubscribed)
        }
        SubscriberStatus::Erased => Ok(UnsubscribeOutcome::Unknown),
        SubscriberStatus::Unsubscribed => Ok(UnsubscribeOutcome::AlreadyGone),
    }
}

/// A permanent recipient refusal: the reader bounced.
pub fn bounce(conn: &mut DbConnection, subscriber_id: &str, reason: &str) -> db::QueryResult<()> {
    let source = format!("smtp: {}", reason.chars().take(200).collect::<String>());
    bounce_with(conn, subscriber_id, source).map(drop)
}

/// The reader bounced, for the reason `source` gives (an SMTP reply, or an
/// inbound report's status and diagnostic); a pending or confirmed reader
/// becomes `bounced` with a `bounced` consent event. Returns whether the
/// status changed.
pub fn bounce_with(
    conn: &mut DbConnection,
    subscriber_id: &str,
    source: String,
) -> db::QueryResult<bool> {
    let now = db::now();
    let Some(subscriber) = subscribers::find(conn, subscriber_id)? else {
        return Ok(false);
    };
    if !matches!(
        subscriber.status,
        SubscriberStatus::Pending | SubscriberStatus::Confirmed
    ) {
        return Ok(false);
    }
    subscribers::set_status(conn, subscriber_id, SubscriberStatus::Bounced, now)?;
    let ctx = consent::Context {
        source: Some(source),
        method: Some("bounce".into()),
        ..Default::default()
    };
    consent::record(conn, subscriber_id, ConsentEvent::Bounced, now, &ctx)?;
    Ok(true)
}

/// A spam complaint: the reader is unsubscribed at once with a
/// `complained` consent event, and their address goes on the suppression
/// list, so neither an import nor an API signup mails them again. Returns
/// whether the status changed.
pub fn complain(
    conn: &mut DbConnection,
    secret: &str,
    subscriber_id: &str,
    source: String,
) -> db::QueryResult<bool> {
    let now = db::now();
    let Some(subscriber) = subscribers::find(conn, subscriber_id)? else {
        return Ok(false);
    };
    if subscriber.status == SubscriberStatus::Erased {
        return Ok(false);
    }
    if let Some(key) = &subscriber.email_key {
        db::suppressions::add(
            conn,
            secret,
            key,
            crate::domain::SuppressionReason::Complained,
        )?;
    }
    let active = matches!(
        subscriber.status,
        SubscriberStatus::Pending | SubscriberStatus::Confirmed
    );
    if active {
        subscribers::set_status(conn, subscriber_id, SubscriberStatus::Unsubscribed, now)?;
        confirmations::delete_for(conn, subscriber_id)?;
    }
    let ctx = consent::Context {
        source: Some(source),
        method: Some("complaint".into()),
        ..Default::default()
    };
    consent::record(conn, subscriber_id, ConsentEvent::Complained, now, &ctx)?;
    Ok(active)
}
