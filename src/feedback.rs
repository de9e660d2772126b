//! Readers' votes on articles: "Enjoyed this article? Yes · No" on the
//! site (one vote per browser, named by a signed cookie) and "Useful? Yes
//! · No" under each story of a digest (one vote per reader, named by the
//! email's signed link). A second vote changes the first. Site and digest
//! votes are counted apart and together.
//!
//! Nothing here reads who is subscribed: a site vote knows a browser, a
//! digest vote only a token that the secret key signed, so no answer
//! depends on whether an address is on the list.

use crate::db::{self, articles::Article, feedback::Counts, DbError};
use crate::domain::feedback::{article_url, is_under};
use crate::domain::{SubscriberStatus, Vote, VoteSource};
use crate::state::AppState;

/// Why a vote was not taken.
#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    /// The URL is not an article we know nor a page under `site_url`.
    #[error("url {0}")]
    UnknownUrl(&'static str),
    /// The digest link names an article that is not in its digest, or a
    /// reader whose data was erased.
    #[error("this feedback link is not valid")]
    UnknownLink,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// An article's counts, and this voter's own vote when known.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ArticleCounts {
    pub url: String,
    #[serde(flatten)]
    pub counts: Counts,
    /// The vote of the browser that asked (`yes`, `no`, or null).
    #[schema(value_type = Option<String>)]
    pub mine: Option<Vote>,
}

/// The URL a site vote may name: a known article's, or any page under
/// `site_url`; its canonical form (no fragment) is what votes are kept by.
pub async fn resolve_url(state: &AppState, raw: &str) -> Result<String, FeedbackError> {
    let url = article_url(raw).map_err(FeedbackError::UnknownUrl)?;
    let site = url::Url::parse(&state.settings.brand.site_url).ok();
    if site.is_some_and(|site| is_under(&site, &url)) {
        return Ok(url.to_string());
    }
    let text = url.to_string();
    let lookup = text.clone();
    let known = db::run(&state.pool, move |c| db::articles::url_known(c, &lookup)).await?;
    if known {
        return Ok(text);
    }
    Err(FeedbackError::UnknownUrl(
        "is not an article of this newsletter nor a page of the site",
    ))
}

/// The counts of `url` (already resolved), with `voter`'s own site vote.
pub async fn counts(
    pool: &db::Pool,
    url: String,
    voter: Option<String>,
) -> Result<ArticleCounts, DbError> {
    db::run(pool, move |c| {
        counts_in(c, url, voter.as_deref(), VoteSource::Site)
    })
    .await
}

fn counts_in(
    c: &mut db::DbConnection,
    url: String,
    voter: Option<&str>,
    source: VoteSource,
) -> db::QueryResult<ArticleCounts> {
    let counts = db::feedback::counts_for(c, std::slice::from_ref(&url))?
        .remove(&url)
        .unwrap_or_default();
    let mine = match voter {
        Some(v) => db::feedback::vote_of(c, &url, source, v)?,
        None => None,
    };
    Ok(ArticleCounts { url, counts, mine })
}

/// Records a browser's vote on `url` (already resolved) and returns the
/// new counts. `voter` is the browser id's hash.
pub async fn vote_on_site(
    state: &AppState,
    url: String,
    voter: String,
    vote: Vote,
) -> Result<ArticleCounts, DbError> {
    let counts = db::transaction(&state.pool, move |c| {
        db::feedback::record(c, &url, VoteSource::Site, &voter, vote, db::now())?;
        counts_in(c, url, Some(&voter), VoteSource::Site)
    })
    .await?;
    count_metric(state, VoteSource::Site, vote);
    Ok(counts)
}

/// The article a digest link names, when it is one of that digest's.
pub async fn digest_article(
    pool: &db::Pool,
    digest_id: i64,
    article_id: i64,
) -> Result<Option<Article>, DbError> {
    let found = db::run(pool, move |c| db::articles::find(c, article_id)).await?;
    Ok(found.filter(|a| a.digest_id == Some(digest_id)))
}

/// Records a reader's vote from a digest link (its token already
/// verified): the article must be in that digest. Returns the article and
/// its new counts.
pub async fn vote_from_digest(
    state: &AppState,
    digest_id: i64,
    subscriber_id: String,
    article_id: i64,
    vote: Vote,
) -> Result<(Article, ArticleCounts), FeedbackError> {
    let done = db::transaction_or(&state.pool, move |c| {
        let article = db::articles::find(c, article_id)?;
        let Some(article) = article.filter(|a| a.digest_id == Some(digest_id)) else {
            return Ok(Err(FeedbackError::UnknownLink));
        };
        let reader = db::subscribers::find(c, &subscriber_id)?;
        if reader.is_some_and(|r| r.status == SubscriberStatus::Erased) {
            return Ok(Err(FeedbackError::UnknownLink));
        }
        let url = article.url.clone();
        db::feedback::record(c, &url, VoteSource::Digest, &subscriber_id, vote, db::now())?;
        let counts = counts_in(c, url, Some(&subscriber_id), VoteSource::Digest)?;
        Ok(Ok((article, counts)))
    })
    .await??;
    count_metric(state, VoteSource::Digest, vote);
    Ok(done)
}

fn count_metric(state: &AppState, source: VoteSource, vote: Vote) {
    state
        .metrics
        .feedback_votes
        .with_label_values(&[source.as_str(), vote.as_str()])
        .inc();
}
