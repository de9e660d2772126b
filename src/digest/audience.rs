//! Queuing a digest for its audience: which readers get it (the rule in
//! [`crate::db::audience`]) and in which edition. A reader who picked
//! sections gets only the articles of those sections; the digest is
//! rendered once per distinct choice that matches any of its articles
//! (never per reader), and a choice that matches none gets nothing. Every
//! caller that sends a digest (compose, a draft sent now, a scheduled one
//! whose time came) queues it through [`queue`].

use chrono::NaiveDateTime;

use super::compose::{render, Framing};
use crate::db::{self, audience, DbConnection, QueryResult};
use crate::domain::preferences::SectionChoice;
use crate::state::AppState;

/// Decides whether digest `id` is a weekly one, writes an edition per
/// section choice that matches some of its articles, and fans it out.
/// Returns the number of readers it goes to.
pub fn queue(
    c: &mut DbConnection,
    state: &AppState,
    id: i64,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    audience::mark_weekly(c, id, now)?;
    write_editions(c, state, id)?;
    let recipients = db::digests::fan_out(c, id, now)?;
    if recipients == 0 {
        // No reader to wait for: the digest is done as composed.
        db::deliveries::finish_done_digests(c, now)?;
    }
    Ok(recipients)
}

/// One edition per matching choice: the digest's own content when every
/// article matched, else its own rendering of the articles that did.
fn write_editions(c: &mut DbConnection, state: &AppState, id: i64) -> QueryResult<()> {
    let choices = audience::choices(c)?;
    if choices.is_empty() {
        return Ok(());
    }
    let Some(digest) = db::digests::find(c, id)? else {
        return Ok(());
    };
    let list = db::articles::in_digest(c, id)?;
    for (choice_id, key) in choices {
        let choice = SectionChoice::from_key(&key);
        let wanted: Vec<db::articles::Article> = list
            .iter()
            .filter(|a| choice.wants(&a.section_names()))
            .cloned()
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let edition = if wanted.len() == list.len() {
            audience::Edition::default()
        } else {
            let framing = Framing {
                id,
                intro: digest.intro.as_deref(),
                now: digest.created_at,
            };
            // The same template rendered the whole digest a moment ago.
            let rendered = render(state, &wanted, &framing).map_err(|e| {
                diesel::result::Error::QueryBuilderError(
                    format!("rendering an edition: {e:#}").into(),
                )
            })?;
            audience::Edition {
                subject: Some(digest.custom_subject.clone().unwrap_or(rendered.subject)),
                body_text: Some(rendered.text),
                body_html: Some(rendered.html),
            }
        };
        audience::add_edition(c, id, choice_id, &edition)?;
    }
    Ok(())
}
