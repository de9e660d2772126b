//! The reader's own page (GET/POST /preferences), reached from every
//! email's footer with a link signed per reader
//! ([`crate::domain::token::preferences_token`]): no login. A reader pauses
//! the digest for 1, 2 or 4 weeks (it comes back by itself: the audience
//! rule compares the pause with each digest's time), chooses every digest
//! or at most one a week, picks sections (none: all), changes their name
//! or address, downloads their data, deletes themselves or unsubscribes.
//!
//! Every change is one transaction with a `preferences` consent event
//! (unsubscribing and deleting write their own events, `unsubscribed` and
//! `erased`, as the other ways to do them do). A new address gets a
//! double opt-in of its own: the old one stays until the new one confirms
//! ([`crate::subscriptions::confirm`]); an address another reader has is
//! answered the same and sent nothing, so the page tells nobody who is
//! subscribed.

use chrono::NaiveDateTime;

use crate::db::{
    self, audience, confirmations, consent, outbox, subscribers, DbConnection, DbError,
};
use crate::domain::preferences::{Pause, SectionChoice};
use crate::domain::token::{self, TokenProblem};
use crate::domain::{
    ConsentEvent, Frequency, MailKind, SubscriberEmail, SubscriberName, SubscriberStatus,
};
use crate::subscriptions::SignupPolicy;

/// Sections offered: those of the articles of the last 180 days, at most
/// this many.
pub const MAX_OFFERED: usize = 30;

/// Why a change was not made; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum PrefError {
    #[error("This link is not valid. Please use the link in one of our emails.")]
    Unknown,
    #[error("This link has expired. Please use the link in a more recent email.")]
    Expired,
    #[error("{field} {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("You are not subscribed any more, so there is nothing to change.")]
    NotSubscribed,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The reader a token names (checked with the key alone, before any
/// lookup: a forged token costs no query).
pub fn reader_of(secret: &str, raw: &str, now: NaiveDateTime) -> Result<String, PrefError> {
    token::verify_preferences_token(secret, raw, token::day_of(now)).map_err(|p| match p {
        TokenProblem::Forged => PrefError::Unknown,
        TokenProblem::Expired => PrefError::Expired,
    })
}

/// What the page shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct View {
    pub email: Option<String>,
    pub name: Option<String>,
    pub status: SubscriberStatus,
    pub subscribed: bool,
    /// "December 18, 2026" while paused.
    pub paused_until: Option<String>,
    pub weekly: bool,
    /// Every section offered, and whether the reader picked it.
    pub sections: Vec<(String, bool)>,
    /// A new address waiting for its confirmation.
    pub pending_email: Option<String>,
}

/// The page of reader `id`; `None` when unknown or erased.
pub async fn view(pool: &db::Pool, id: &str) -> Result<Option<View>, DbError> {
    let id = id.to_string();
    db::run(pool, move |c| view_in(c, &id)).await
}

fn view_in(c: &mut DbConnection, id: &str) -> db::QueryResult<Option<View>> {
    let now = db::now();
    let Some(s) = subscribers::find(c, id)? else {
        return Ok(None);
    };
    let Some(settings) = audience::settings_of(c, id)? else {
        return Ok(None);
    };
    if s.status == SubscriberStatus::Erased {
        return Ok(None);
    }
    let chosen = match settings.choice_id {
        Some(choice) => {
            SectionChoice::from_key(&audience::choice_key(c, choice)?.unwrap_or_default())
        }
        None => SectionChoice::default(),
    };
    let mut offered =
        db::articles::sections_since(c, now - chrono::Duration::days(180), MAX_OFFERED)?;
    for name in chosen.names() {
        if !offered
            .iter()
            .any(|o| o.to_lowercase() == name.to_lowercase())
        {
            offered.push(name.clone());
        }
    }
    let sections = offered
        .into_iter()
        .map(|name| {
            let picked = chosen
                .names()
                .iter()
                .any(|n| n.to_lowercase() == name.to_lowercase());
            (name, picked)
        })
        .collect();
    Ok(Some(View {
        email: s.email,
        name: s.name,
        status: s.status,
        subscribed: s.status == SubscriberStatus::Confirmed,
        paused_until: settings
            .paused_until
            .filter(|until| *until > now)
            .map(|until| until.format("%B %-d, %Y").to_string()),
        weekly: settings.frequency == Frequency::Weekly,
        sections,
        pending_email: confirmations::pending_change(c, id, now)?,
    }))
}

/// A change a reader asks for, parsed.
#[derive(Debug, Clone)]
pub enum Change {
    /// The digest settings form: frequency, sections, name.
    Settings {
        weekly: bool,
        sections: SectionChoice,
        name: Option<SubscriberName>,
    },
    Pause(Pause),
    Resume,
    Address(SubscriberEmail),
}

impl Change {
    /// What the consent event's method says was done.
    fn label(&self) -> String {
        match self {
            Self::Settings { .. } => "settings".into(),
            Self::Pause(p) => format!("pause {} weeks", p.weeks()),
            Self::Resume => "resume".into(),
            Self::Address(_) => "new address requested".into(),
        }
    }
}

/// What a change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Saved,
    Paused,
    Resumed,
    /// A confirmation link went to the new address (or, if another reader
    /// has it, nothing did: the answer is the same).
    AddressPending,
}

/// Applies `change` for reader `id` in one transaction with its
/// `preferences` consent event.
pub async fn apply(
    pool: &db::Pool,
    policy: SignupPolicy,
    id: &str,
    change: Change,
    mut ctx: consent::Context,
) -> Result<Applied, PrefError> {
    let id = id.to_string();
    ctx.method = Some(change.label());
    db::transaction_or(pool, move |c| apply_in(c, &policy, &id, &change, &ctx)).await?
}

fn apply_in(
    c: &mut DbConnection,
    policy: &SignupPolicy,
    id: &str,
    change: &Change,
    ctx: &consent::Context,
) -> db::QueryResult<Result<Applied, PrefError>> {
    let now = db::now();
    let (Some(s), Some(mut settings)) = (subscribers::find(c, id)?, audience::settings_of(c, id)?)
    else {
        return Ok(Err(PrefError::Unknown));
    };
    match s.status {
        SubscriberStatus::Confirmed => {}
        SubscriberStatus::Erased => return Ok(Err(PrefError::Unknown)),
        _ => return Ok(Err(PrefError::NotSubscribed)),
    }
    let applied = match change {
        Change::Settings {
            weekly,
            sections,
            name,
        } => {
            let frequency = if *weekly {
                Frequency::Weekly
            } else {
                Frequency::Every
            };
            if frequency != settings.frequency {
                // A week counts from when it was chosen: the digest before
                // may have come the day before.
                settings.frequency_at = (*weekly).then_some(now);
            }
            settings.frequency = frequency;
            settings.choice_id = match sections.is_all() {
                true => None,
                false => Some(audience::choice_id(c, &sections.key(), now)?),
            };
            subscribers::set_name(c, id, name.as_ref().map(SubscriberName::as_str))?;
            Applied::Saved
        }
        Change::Pause(pause) => {
            settings.paused_until = Some(now + pause.duration());
            Applied::Paused
        }
        Change::Resume => {
            settings.paused_until = None;
            Applied::Resumed
        }
        Change::Address(email) => {
            if s.email_key.as_deref() == Some(email.key().as_str()) {
                return Ok(Err(PrefError::Invalid {
                    field: "email",
                    reason: "is already your address".into(),
                }));
            }
            request_address(c, policy, id, email, s.name.as_deref(), now)?;
            Applied::AddressPending
        }
    };
    audience::set_settings(c, id, &settings, now)?;
    consent::record(c, id, ConsentEvent::Preferences, now, ctx)?;
    Ok(Ok(applied))
}

/// Queues the confirmation of a new address, unless another reader has it
/// (then nothing is sent, and the reader is answered the same).
fn request_address(
    c: &mut DbConnection,
    policy: &SignupPolicy,
    id: &str,
    email: &SubscriberEmail,
    name: Option<&str>,
    now: NaiveDateTime,
) -> db::QueryResult<()> {
    if subscribers::find_by_key(c, &email.key())?.is_some() {
        return Ok(());
    }
    let nonce = token::random_token();
    let raw = token::confirmation_token(&policy.secret, &nonce);
    let payload = serde_json::json!({"nonce": nonce, "name": name}).to_string();
    confirmations::insert_change(
        c,
        &token::hash(&raw),
        id,
        email.as_str(),
        now,
        now + policy.confirm_ttl,
    )?;
    outbox::enqueue(
        c,
        MailKind::Confirm,
        Some(id),
        email.as_str(),
        &payload,
        now,
    )
}
