//! Readers' votes on articles (`feedback_votes`): one row per (article
//! URL, source, voter), so a second vote changes the first and never adds.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::schema::{articles, feedback_votes};
use super::DbConnection;
use crate::domain::{Vote, VoteSource};

/// Yes and no votes of one source, or of both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Tally {
    pub yes: i64,
    pub no: i64,
}

impl Tally {
    fn add(&mut self, vote: Vote, n: i64) {
        match vote {
            Vote::Yes => self.yes += n,
            Vote::No => self.no += n,
        }
    }
}

/// An article's votes from the site and from the digest, and both together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Counts {
    /// Both sources together.
    pub yes: i64,
    pub no: i64,
    /// Votes on the site's widget (one per browser).
    pub site: Tally,
    /// Votes from the digest's links (one per reader).
    pub digest: Tally,
}

impl Counts {
    fn add(&mut self, source: VoteSource, vote: Vote, n: i64) {
        match source {
            VoteSource::Site => self.site.add(vote, n),
            VoteSource::Digest => self.digest.add(vote, n),
        }
        match vote {
            Vote::Yes => self.yes += n,
            Vote::No => self.no += n,
        }
    }
}

/// Records `voter`'s vote on `url` from `source`, replacing any earlier one.
pub fn record(
    conn: &mut DbConnection,
    url: &str,
    source: VoteSource,
    voter: &str,
    vote: Vote,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let row = (
        feedback_votes::url.eq(url),
        feedback_votes::source.eq(source),
        feedback_votes::voter.eq(voter),
        feedback_votes::vote.eq(vote),
        feedback_votes::created_at.eq(now),
        feedback_votes::updated_at.eq(now),
    );
    let target = (
        feedback_votes::url,
        feedback_votes::source,
        feedback_votes::voter,
    );
    let change = (
        feedback_votes::vote.eq(vote),
        feedback_votes::updated_at.eq(now),
    );
    crate::with_backend!(conn, |c, _pg| diesel::insert_into(feedback_votes::table)
        .values(row)
        .on_conflict(target)
        .do_update()
        .set(change)
        .execute(c))
    .map(drop)
}

/// `voter`'s own vote on `url` from `source`, if any.
pub fn vote_of(
    conn: &mut DbConnection,
    url: &str,
    source: VoteSource,
    voter: &str,
) -> QueryResult<Option<Vote>> {
    feedback_votes::table
        .filter(feedback_votes::url.eq(url))
        .filter(feedback_votes::source.eq(source))
        .filter(feedback_votes::voter.eq(voter))
        .select(feedback_votes::vote)
        .first(conn)
        .optional()
}

/// A reader's own vote on a digest's story, as their data export shows it.
#[derive(Debug, Queryable, serde::Serialize)]
pub struct VoteRecord {
    pub url: String,
    pub vote: Vote,
    #[serde(serialize_with = "crate::domain::time::utc")]
    pub updated_at: NaiveDateTime,
}

/// Every vote reader `subscriber_id` gave through their digests' links.
pub fn votes_of(conn: &mut DbConnection, subscriber_id: &str) -> QueryResult<Vec<VoteRecord>> {
    feedback_votes::table
        .filter(feedback_votes::source.eq(VoteSource::Digest))
        .filter(feedback_votes::voter.eq(subscriber_id))
        .order(feedback_votes::url)
        .select((
            feedback_votes::url,
            feedback_votes::vote,
            feedback_votes::updated_at,
        ))
        .load(conn)
}

/// The counts of each URL in `urls` (those without votes are absent).
pub fn counts_for(
    conn: &mut DbConnection,
    urls: &[String],
) -> QueryResult<HashMap<String, Counts>> {
    let rows: Vec<(String, VoteSource, Vote, i64)> = feedback_votes::table
        .filter(feedback_votes::url.eq_any(urls))
        .group_by((
            feedback_votes::url,
            feedback_votes::source,
            feedback_votes::vote,
        ))
        .select((
            feedback_votes::url,
            feedback_votes::source,
            feedback_votes::vote,
            diesel::dsl::count_star(),
        ))
        .load(conn)?;
    let mut out: HashMap<String, Counts> = HashMap::new();
    for (url, source, vote, n) in rows {
        out.entry(url).or_default().add(source, vote, n);
    }
    Ok(out)
}

/// One line of the dashboard's "most liked this week".
#[derive(Clone, Debug, Serialize)]
pub struct Liked {
    pub url: String,
    /// The article's title when the URL is a known article.
    pub title: Option<String>,
    pub yes: i64,
    pub no: i64,
}

/// A URL of the ranking (its count orders it; the counts shown are read
/// with [`counts_for`]).
#[derive(QueryableByName)]
struct UrlCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    url: String,
}

/// The `limit` URLs with the most yes votes cast (or changed) since
/// `since`, both sources together, with their counts over all time.
pub fn most_liked(
    conn: &mut DbConnection,
    since: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<Liked>> {
    let text = "SELECT url, COUNT(*) AS n FROM feedback_votes \
                WHERE vote = 'yes' AND updated_at >= ? \
                GROUP BY url ORDER BY n DESC, url LIMIT ?";
    let top: Vec<UrlCount> =
        crate::with_backend!(conn, |c, pg| diesel::sql_query(super::sql(pg, text))
            .bind::<diesel::sql_types::Timestamp, _>(since)
            .bind::<diesel::sql_types::BigInt, _>(limit)
            .load(c))?;
    let urls: Vec<String> = top.iter().map(|t| t.url.clone()).collect();
    let counts = counts_for(conn, &urls)?;
    let titles: HashMap<String, String> = articles::table
        .filter(articles::url.eq_any(&urls))
        .select((articles::url, articles::title))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    Ok(top
        .into_iter()
        .map(|t| {
            let c = counts.get(&t.url).copied().unwrap_or_default();
            Liked {
                title: titles.get(&t.url).cloned(),
                url: t.url,
                yes: c.yes,
                no: c.no,
            }
        })
        .collect())
}

/// Erasure: the reader's digest votes stay counted but no longer name
/// them (the voter becomes a random id).
pub fn forget_reader(conn: &mut DbConnection, subscriber_id: &str) -> QueryResult<usize> {
    let rows: Vec<i64> = feedback_votes::table
        .filter(feedback_votes::source.eq(VoteSource::Digest))
        .filter(feedback_votes::voter.eq(subscriber_id))
        .select(feedback_votes::id)
        .load(conn)?;
    for id in &rows {
        let anonymous = format!("erased:{}", crate::domain::token::random_token());
        diesel::update(feedback_votes::table.find(*id))
            .set(feedback_votes::voter.eq(anonymous))
            .execute(conn)?;
    }
    Ok(rows.len())
}
