//! Composition: take the articles not yet in any digest, render the email
//! once, and queue it for its audience ([`super::audience::queue`]), all in
//! one transaction.
//! Nothing new, no digest.

use chrono::NaiveDateTime;
use serde::Serialize;

use crate::db::{self, articles, digests, DbError};
use crate::digest::feed::EXCERPT_CHARS;
use crate::domain::cron::period;
use crate::domain::{feed_text, DigestStatus};
use crate::state::{AppState, SharedState};

/// Stands in the rendered bodies where each reader's unsubscribe link goes.
pub const UNSUBSCRIBE_MARKER: &str = "%%UNSUBSCRIBE_URL%%";
/// Stands where each reader's preferences link goes.
pub const PREFERENCES_MARKER: &str = "%%PREFERENCES_URL%%";

/// Stands in the rendered bodies where each reader's feedback token goes:
/// every story's "Useful? Yes · No" links carry it
/// ([`crate::domain::token::feedback_token`]), filled in at send time like
/// the unsubscribe link, so the digest is still rendered once.
pub const FEEDBACK_MARKER: &str = "%%FEEDBACK_TOKEN%%";

/// Around the part of a digest that is the reader's own (their unsubscribe
/// link, why they get it): the web archive leaves it out.
pub const READER_START: &str = "<!--reader-->";
pub const READER_END: &str = "<!--/reader-->";

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Created {
    pub id: i64,
    pub articles: usize,
    pub recipients: usize,
    /// `sending`, or `draft` when composed for an editor.
    #[schema(value_type = String, example = "sending")]
    pub status: DigestStatus,
}

/// Whether a composed digest goes out at once or waits for an editor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Send,
    Draft,
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
    compose_as(state, idempotency_key, Mode::Send).await
}

/// [`compose`], or (`Mode::Draft`) compose a draft an editor sends later.
pub async fn compose_as(
    state: &SharedState,
    idempotency_key: Option<String>,
    mode: Mode,
) -> Result<ComposeOutcome, ComposeError> {
    let run = |key: Option<String>| {
        let st = state.clone();
        db::transaction_or(&state.pool, move |c| {
            compose_in(c, &st, key.as_deref(), mode)
        })
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
            status = %created.status,
            "digest composed"
        );
        if created.status == DigestStatus::Sending {
            state.wake_deliveries.notify_one();
        }
    }
    Ok(outcome)
}

fn compose_in(
    c: &mut db::DbConnection,
    state: &AppState,
    key: Option<&str>,
    mode: Mode,
) -> db::QueryResult<Result<ComposeOutcome, Abandon>> {
    if let Some(key) = key {
        if let Some(d) = digests::find_by_key(c, key)? {
            return Ok(Ok(ComposeOutcome::Existing(Created {
                id: d.id,
                articles: d.article_count as usize,
                recipients: d.total as usize,
                status: d.status,
            })));
        }
    }
    let now = db::now();
    let start = digests::first_created_at(c)?.unwrap_or(now);
    let cutoff = start - period(&state.settings.digest_cron);
    let status = match mode {
        Mode::Send => DigestStatus::Sending,
        Mode::Draft => DigestStatus::Draft,
    };
    let id = digests::insert(c, ("", status), key, now)?;
    let max = i64::from(state.settings.digest_max_articles);
    let taken = articles::take_for_digest(c, id, cutoff, now, max)?;
    if taken == 0 {
        return Ok(Err(Abandon::NothingNew));
    }
    let list = articles::in_digest(c, id)?;
    let framing = Framing {
        id,
        intro: None,
        now,
    };
    let rendered = match render(state, &list, &framing) {
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
    if mode == Mode::Draft {
        return Ok(Ok(ComposeOutcome::Created(Created {
            id,
            articles: taken,
            recipients: 0,
            status,
        })));
    }
    let recipients = super::audience::queue(c, state, id, now)?;
    Ok(Ok(ComposeOutcome::Created(Created {
        id,
        articles: taken,
        recipients,
        status,
    })))
}

#[derive(Serialize)]
struct ArticleView<'a> {
    title: &'a str,
    url: &'a str,
    /// The excerpt, at most [`EXCERPT_CHARS`] characters.
    summary: Option<String>,
    /// The excerpt's paragraphs, for the HTML part.
    paragraphs: Vec<String>,
    published: String,
    image_url: Option<&'a str>,
    author: Option<&'a str>,
    /// Section names joined with " · ".
    sections: String,
    /// The story's "Useful? Yes · No" links, with [`FEEDBACK_MARKER`]
    /// where the reader's token goes.
    useful_yes: String,
    useful_no: String,
}

impl<'a> ArticleView<'a> {
    /// `feedback` is the feedback link up to the article id.
    fn of(a: &'a articles::Article, feedback: &str) -> Self {
        let summary = a
            .summary
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| feed_text::excerpt(s, EXCERPT_CHARS));
        let paragraphs = summary
            .iter()
            .flat_map(|s| s.split("\n\n"))
            .map(|p| p.replace('\n', " "))
            .collect();
        Self {
            title: &a.title,
            url: &a.url,
            summary,
            paragraphs,
            published: a.published_at.format("%B %-d, %Y").to_string(),
            image_url: a.image_url.as_deref(),
            author: a.author.as_deref(),
            sections: a.section_names().join(" · "),
            useful_yes: format!("{feedback}{}&vote=yes", a.id),
            useful_no: format!("{feedback}{}&vote=no", a.id),
        }
    }
}

/// What a digest says besides its articles.
pub struct Framing<'a> {
    pub id: i64,
    pub intro: Option<&'a str>,
    pub now: NaiveDateTime,
}

/// Renders subject, text and HTML once; each send only fills in the
/// reader's unsubscribe link. The reader's part of the footer sits
/// between [`READER_START`] and [`READER_END`], which the web archive
/// cuts out.
pub fn render(
    state: &AppState,
    list: &[articles::Article],
    framing: &Framing,
) -> anyhow::Result<crate::mail::message::Rendered> {
    let feedback = state.link(&format!("/feedback?token={FEEDBACK_MARKER}&article="));
    let views: Vec<ArticleView> = list.iter().map(|a| ArticleView::of(a, &feedback)).collect();
    let ctx = minijinja::context! {
        lead => views.first().map(|v| minijinja::Value::from(minijinja::value::Serde(v))),
        rest => minijinja::Value::from(minijinja::value::Serde(views.get(1..).unwrap_or_default())),
        articles => minijinja::Value::from(minijinja::value::Serde(&views)),
        count => views.len(),
        date => framing.now.format("%B %-d, %Y").to_string(),
        intro => framing.intro,
        intro_paragraphs => framing
            .intro
            .map(|i| i.split("\n\n").map(|p| p.trim().replace('\n', " ")).collect::<Vec<_>>())
            .unwrap_or_default(),
        site => &state.settings.brand.site_name,
        unsubscribe_url => UNSUBSCRIBE_MARKER,
        preferences_url => PREFERENCES_MARKER,
        archive_url => if state.settings.archive_public {
            state.link(&format!("/archive/{}", framing.id))
        } else {
            String::new()
        },
        signup_url => state.link("/"),
        reader_start => minijinja::Value::from_safe_string(READER_START.into()),
        reader_end => minijinja::Value::from_safe_string(READER_END.into()),
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
