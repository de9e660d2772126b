//! Composition: take the articles not yet in any digest, render the email
//! once, and queue one delivery per confirmed reader, all in one transaction.
//! Nothing new, no digest.

use chrono::NaiveDateTime;
use serde::Serialize;

use crate::db::{self, articles, digests, DbError};
use crate::domain::cron::period;
use crate::state::{AppState, SharedState};

/// Stands in the rendered bodies where each reader's unsubscribe link goes.
pub const UNSUBSCRIBE_MARKER: &str = "%%UNSUBSCRIBE_URL%%";

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Created {
    pub id: i64,
    pub articles: usize,
    pub recipients: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComposeOutcome {
    Created(Created),
    /// The Idempotency-Key was seen before: the digest it made.
    Existing(Created),
    NothingNew,
}

/// Why a digest was not composed.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("rendering the digest: {0:#}")]
    Render(anyhow::Error),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What undoes a composition inside its transaction.
enum Abandon {
    NothingNew,
    Render(anyhow::Error),
}

/// Composes a digest of the articles not yet sent and fans it out, in one
/// transaction (undone when there is nothing new).
pub async fn compose(
    state: &SharedState,
    idempotency_key: Option<String>,
) -> Result<ComposeOutcome, ComposeError> {
    let run = |key: Option<String>| {
        let st = state.clone();
        db::transaction_or(&state.pool, move |c| compose_in(c, &st, key.as_deref()))
    };
    let mut outcome = run(idempotency_key.clone()).await;
    if idempotency_key.is_some() && outcome.as_ref().is_err_and(DbError::is_unique_violation) {
        // A concurrent request with the same key won the race: answer with
        // the digest it made.
        outcome = run(idempotency_key).await;
    }
    let outcome = match outcome? {
        Ok(created) => created,
        Err(Abandon::NothingNew) => return Ok(ComposeOutcome::NothingNew),
        Err(Abandon::Render(e)) => return Err(ComposeError::Render(e)),
    };
    if let ComposeOutcome::Created(created) = &outcome {
        tracing::info!(
            digest_id = created.id,
            articles = created.articles,
            recipients = created.recipients,
            "digest composed"
        );
        state.wake_deliveries.notify_one();
    }
    Ok(outcome)
}

fn compose_in(
    c: &mut db::DbConnection,
    state: &AppState,
    key: Option<&str>,
) -> db::QueryResult<Result<ComposeOutcome, Abandon>> {
    if let Some(key) = key {
        if let Some(d) = digests::find_by_key(c, key)? {
            return Ok(Ok(ComposeOutcome::Existing(Created {
                id: d.id,
                articles: d.article_count as usize,
                recipients: d.total as usize,
            })));
        }
    }
    let now = db::now();
    let start = digests::first_created_at(c)?.unwrap_or(now);
    let cutoff = start - period(&state.settings.digest_cron);
    let id = digests::insert(c, "", key, now)?;
    let taken = articles::take_for_digest(c, id, cutoff, now)?;
    if taken == 0 {
        return Ok(Err(Abandon::NothingNew));
    }
    let list = articles::in_digest(c, id)?;
    let rendered = match render(state, &list, now) {
        Ok(r) => r,
        Err(e) => return Ok(Err(Abandon::Render(e))),
    };
    digests::set_content(
        c,
        id,
        &rendered.subject,
        &rendered.text,
        &rendered.html,
        taken as i32,
    )?;
    let recipients = digests::fan_out(c, id, now)?;
    if recipients == 0 {
        // No reader to wait for: the digest is done as composed.
        db::deliveries::finish_done_digests(c, now)?;
    }
    Ok(Ok(ComposeOutcome::Created(Created {
        id,
        articles: taken,
        recipients,
    })))
}

#[derive(Serialize)]
struct ArticleView<'a> {
    title: &'a str,
    url: &'a str,
    summary: Option<&'a str>,
    published: String,
}

/// Renders subject, text and HTML once; each send only fills in the
/// reader's unsubscribe link.
pub fn render(
    state: &AppState,
    list: &[articles::Article],
    now: NaiveDateTime,
) -> anyhow::Result<crate::mail::message::Rendered> {
    let views: Vec<ArticleView> = list
        .iter()
        .map(|a| ArticleView {
            title: &a.title,
            url: &a.url,
            summary: a.summary.as_deref().filter(|s| !s.trim().is_empty()),
            published: a.published_at.format("%B %-d, %Y").to_string(),
        })
        .collect();
    let ctx = minijinja::context! {
        articles => minijinja::Value::from(minijinja::value::Serde(&views)),
        count => views.len(),
        date => now.format("%B %-d, %Y").to_string(),
        site => state.settings.base_url.host_str().unwrap_or("our site"),
        unsubscribe_url => UNSUBSCRIBE_MARKER,
    };
    let render = |part: &str| {
        crate::mail::templates::render(&state.templates, &format!("emails/digest/{part}"), &ctx)
    };
    Ok(crate::mail::message::Rendered {
        subject: render("subject.txt")?.trim().to_string(),
        text: render("body.txt")?,
        html: render("body.html")?,
    })
}
