//! Editorial control of a digest before it goes out: a draft (composed by
//! the cron when `digest_mode = draft`, or on request) can be previewed,
//! edited (subject, intro, which articles and in what order), sent as a
//! test to a few addresses, and then sent to every reader now or at a set
//! time. Sending a draft queues it exactly as a composed digest is queued
//! ([`crate::db::digests::fan_out`]).

use chrono::NaiveDateTime;

use super::compose::{render, Framing, FEEDBACK_MARKER, PREFERENCES_MARKER, UNSUBSCRIBE_MARKER};
use crate::db::{self, digests::Digest, DbError};
use crate::domain::{DigestStatus, SubscriberEmail};
use crate::state::{AppState, SharedState};

/// Most addresses one test send goes to.
pub const MAX_TEST_RECIPIENTS: usize = 10;
/// An HTML part this big is near Gmail's ~102 KB clipping: the preview warns.
pub const SIZE_WARNING_BYTES: usize = 90_000;

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("no such digest")]
    NotFound,
    #[error("the digest is {0}, not a draft")]
    NotDraft(DigestStatus),
    #[error("{field} {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("rendering the digest: {0:#}")]
    Render(anyhow::Error),
    /// The relay refused a test recipient's address.
    #[error("the relay refused {0}")]
    Refused(String),
    #[error("sending the test: {0}")]
    Mail(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What an editor changes; `None` leaves it as it is.
#[derive(Debug, Default)]
pub struct Edit {
    /// `Some("")` goes back to the template's subject.
    pub subject: Option<String>,
    /// `Some("")` removes the intro.
    pub intro: Option<String>,
    /// The articles to keep, in order (ids of the draft's articles).
    pub articles: Option<Vec<i64>>,
}

/// Applies `edit` to draft `id` and renders it again, in one transaction.
pub async fn edit(state: &SharedState, id: i64, edit: Edit) -> Result<Digest, EditError> {
    let st = state.clone();
    // A refused edit or a failed render undoes the whole edit.
    db::transaction_or(&state.pool, move |c| {
        let digest = match draft(c, id)? {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        if let Some(order) = &edit.articles {
            let current: Vec<i64> = db::articles::in_digest(c, id)?
                .iter()
                .map(|a| a.id)
                .collect();
            if let Err(e) = check_order(order, &current) {
                return Ok(Err(e));
            }
            db::articles::arrange(c, id, order)?;
        }
        db::digests::set_words(
            c,
            id,
            blank_is_none(edit.subject.as_deref()),
            blank_is_none(edit.intro.as_deref()),
        )?;
        rerender(c, &st, digest.id)
    })
    .await?
}

/// A field an editor set: `Some(None)` when set blank (back to the default).
fn blank_is_none(s: Option<&str>) -> Option<Option<&str>> {
    s.map(|s| Some(s.trim()).filter(|s| !s.is_empty()))
}

/// The draft, or why it cannot be edited.
fn draft(c: &mut db::DbConnection, id: i64) -> db::QueryResult<Result<Digest, EditError>> {
    Ok(match db::digests::find(c, id)? {
        None => Err(EditError::NotFound),
        Some(d) if d.status != DigestStatus::Draft => Err(EditError::NotDraft(d.status)),
        Some(d) => Ok(d),
    })
}

/// An order must name each of its articles once, only the draft's own,
/// and keep at least one.
fn check_order(order: &[i64], current: &[i64]) -> Result<(), EditError> {
    let invalid = |reason: &str| EditError::Invalid {
        field: "articles",
        reason: reason.to_string(),
    };
    if order.is_empty() {
        return Err(invalid("must keep at least one article"));
    }
    if let Some(stranger) = order.iter().find(|id| !current.contains(id)) {
        return Err(invalid(&format!(
            "has {stranger}, which is not in this digest"
        )));
    }
    let mut seen = order.to_vec();
    seen.sort_unstable();
    seen.dedup();
    if seen.len() != order.len() {
        return Err(invalid("names an article twice"));
    }
    Ok(())
}

/// Renders draft `id` from its articles, intro and subject.
fn rerender(
    c: &mut db::DbConnection,
    state: &AppState,
    id: i64,
) -> db::QueryResult<Result<Digest, EditError>> {
    let Some(digest) = db::digests::find(c, id)? else {
        return Ok(Err(EditError::NotFound));
    };
    let list = db::articles::in_digest(c, id)?;
    let framing = Framing {
        id,
        intro: digest.intro.as_deref(),
        now: digest.created_at,
    };
    let rendered = match render(state, &list, &framing) {
        Ok(r) => r,
        Err(e) => return Ok(Err(EditError::Render(e))),
    };
    let subject = digest
        .custom_subject
        .as_deref()
        .unwrap_or(&rendered.subject);
    db::digests::set_content(
        c,
        id,
        subject,
        &rendered.text,
        &rendered.html,
        list.len() as i32,
    )?;
    Ok(db::digests::find(c, id)?.ok_or(EditError::NotFound))
}

/// A digest as a reader sees it, with stand-ins where their own
/// unsubscribe link and feedback token go: `(body, html_bytes)`.
pub fn preview(state: &AppState, digest: &Digest, text: bool) -> (String, usize) {
    let stand_in = state.link("/unsubscribe?token=preview");
    let body = if text {
        &digest.body_text
    } else {
        &digest.body_html
    };
    (
        body.replace(UNSUBSCRIBE_MARKER, &stand_in)
            .replace(FEEDBACK_MARKER, "preview")
            .replace(
                PREFERENCES_MARKER,
                &state.link("/preferences?token=preview"),
            ),
        digest.body_html.len(),
    )
}

/// Sends digest `id` (any status) to `to` only, subject prefixed "[Test]":
/// no delivery row, no counter, no reader touched. Returns how many went.
pub async fn test_send(
    state: &SharedState,
    id: i64,
    to: &[SubscriberEmail],
) -> Result<usize, EditError> {
    if to.is_empty() || to.len() > MAX_TEST_RECIPIENTS {
        return Err(EditError::Invalid {
            field: "to",
            reason: format!("must list 1 to {MAX_TEST_RECIPIENTS} addresses"),
        });
    }
    let digest = db::run(&state.pool, move |c| db::digests::find(c, id))
        .await?
        .ok_or(EditError::NotFound)?;
    let (html, _) = preview(state, &digest, false);
    let (text, _) = preview(state, &digest, true);
    let rendered = crate::mail::message::Rendered {
        subject: format!("[Test] {}", digest.subject),
        text,
        html,
    };
    for address in to {
        let msg = crate::mail::message::build(
            &state.settings.mail_from,
            address.as_ref(),
            None,
            &rendered,
            None,
        )
        .map_err(EditError::Mail)?;
        let envelope = msg.envelope().clone();
        let raw = state.sign_and_format(msg);
        state
            .mailer
            .send(&envelope, &raw)
            .await
            .map_err(|e| match e {
                crate::mail::SendError::Recipient(reason) => EditError::Refused(reason),
                other => EditError::Mail(other.to_string()),
            })?;
    }
    tracing::info!(digest_id = id, recipients = to.len(), "test digest sent");
    Ok(to.len())
}

/// What became of a send request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// Queued for every confirmed reader now: how many.
    Now { recipients: usize },
    /// Scheduled for later.
    At(NaiveDateTime),
}

/// Sends draft `id` now (queued as any composed digest is), or schedules
/// it for `at` (a scheduled one may also be sent now or moved).
pub async fn send(
    state: &SharedState,
    id: i64,
    at: Option<NaiveDateTime>,
) -> Result<Sent, EditError> {
    let now = db::now();
    let st = state.clone();
    let outcome = db::transaction(&state.pool, move |c| {
        let from = [DigestStatus::Draft, DigestStatus::Scheduled];
        let Some(digest) = db::digests::find(c, id)? else {
            return Ok(Err(EditError::NotFound));
        };
        if !from.contains(&digest.status) {
            return Ok(Err(EditError::NotDraft(digest.status)));
        }
        match at.filter(|t| *t > now) {
            Some(when) => {
                db::digests::advance(c, id, &from, DigestStatus::Scheduled, Some(when))?;
                Ok(Ok(Sent::At(when)))
            }
            None => {
                if !db::digests::advance(c, id, &from, DigestStatus::Sending, None)? {
                    return Ok(Err(EditError::NotDraft(digest.status)));
                }
                Ok(Ok(Sent::Now {
                    recipients: queue(c, &st, id, now)?,
                }))
            }
        }
    })
    .await??;
    if let Sent::Now { recipients } = outcome {
        tracing::info!(digest_id = id, recipients, "draft digest sent");
        state.wake_deliveries.notify_one();
    }
    Ok(outcome)
}

/// Queues a digest for its audience: the same fan-out a composed digest
/// gets.
fn queue(
    c: &mut db::DbConnection,
    state: &AppState,
    id: i64,
    now: NaiveDateTime,
) -> db::QueryResult<usize> {
    super::audience::queue(c, state, id, now)
}

/// Sends the scheduled digests whose time has come; each is claimed by a
/// conditional update, so one instance sends it.
pub async fn send_due(state: &SharedState) -> Result<usize, DbError> {
    let now = db::now();
    let st = state.clone();
    let sent = db::transaction(&state.pool, move |c| {
        let mut sent = 0;
        for id in db::digests::due(c, now)? {
            if db::digests::advance(
                c,
                id,
                &[DigestStatus::Scheduled],
                DigestStatus::Sending,
                None,
            )? {
                queue(c, &st, id, now)?;
                sent += 1;
            }
        }
        Ok(sent)
    })
    .await?;
    if sent > 0 {
        tracing::info!(digests = sent, "scheduled digests sent");
        state.wake_deliveries.notify_one();
    }
    Ok(sent)
}
