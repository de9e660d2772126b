//! Pausing, resuming and cancelling a digest in progress: the operator's
//! levers (API and console), beside the breaker that pauses a digest by
//! itself when the relay keeps refusing the sender or the content.

use crate::db::{self, digests::Digest, DbError};
use crate::domain::DigestStatus;
use crate::state::AppState;

/// The reason kept on a digest an operator paused.
pub const PAUSED_BY_OPERATOR: &str = "paused by an operator";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pause,
    Resume,
    Cancel,
}

impl Action {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "pause" => Some(Self::Pause),
            "resume" => Some(Self::Resume),
            "cancel" => Some(Self::Cancel),
            _ => None,
        }
    }

    /// The status the digest must be in for the action to apply.
    fn applies_to(self) -> &'static [DigestStatus] {
        match self {
            Self::Pause => &[DigestStatus::Sending],
            Self::Resume => &[DigestStatus::Paused],
            Self::Cancel => &[
                DigestStatus::Sending,
                DigestStatus::Paused,
                DigestStatus::Draft,
                DigestStatus::Scheduled,
            ],
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no such digest")]
    NotFound,
    /// The digest is in a status the action does not apply to.
    #[error("the digest is {0}")]
    WrongStatus(DigestStatus),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Applies `action` to digest `id` in one transaction; returns the digest
/// as it is afterwards. Resuming wakes the delivery workers.
pub async fn apply(state: &AppState, id: i64, action: Action) -> Result<Digest, ControlError> {
    let outcome = db::transaction(&state.pool, move |c| {
        let Some(digest) = db::digests::find(c, id)? else {
            return Ok(Err(ControlError::NotFound));
        };
        if !action.applies_to().contains(&digest.status) {
            return Ok(Err(ControlError::WrongStatus(digest.status)));
        }
        let now = db::now();
        match action {
            Action::Pause => db::digests::pause(c, id, PAUSED_BY_OPERATOR)?,
            Action::Resume => db::digests::resume(c, id, now)?,
            Action::Cancel => db::digests::cancel(c, id, now)?,
        };
        Ok(db::digests::find(c, id)?.ok_or(ControlError::NotFound))
    })
    .await??;
    match action {
        Action::Resume => state.wake_deliveries.notify_one(),
        Action::Pause => state
            .metrics
            .digests_paused
            .with_label_values(&["operator"])
            .inc(),
        Action::Cancel => {}
    }
    tracing::info!(digest_id = id, status = %outcome.status, "digest {}", match action {
        // Past-tense verbs for the log line, not statuses.
        Action::Pause => "paused",
        Action::Resume => "resumed",
        Action::Cancel => "cancelled",
    });
    Ok(outcome)
}
