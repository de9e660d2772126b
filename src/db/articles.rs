//! Articles: pushed by the API or read from the feed, upserted by URL (or
//! feed GUID) so a repeat updates and never duplicates.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::schema::articles;
use super::DbConnection;

#[derive(Clone, Debug, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = articles)]
pub struct Article {
    pub id: i64,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guid: Option<String>,
    pub title: String,
    pub summary: Option<String>,
    #[serde(serialize_with = "crate::domain::time::utc")]
    pub published_at: NaiveDateTime,
    #[serde(serialize_with = "crate::domain::time::utc")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "crate::domain::time::utc")]
    pub updated_at: NaiveDateTime,
    pub digest_id: Option<i64>,
    pub image_url: Option<String>,
    pub author: Option<String>,
    /// A JSON array of section names (see [`Article::section_names`]).
    #[serde(serialize_with = "sections_as_array")]
    pub sections: Option<String>,
    /// False: the source gave no usable date; `published_at` is when it
    /// was read, and it sorts after the dated articles.
    pub dated: bool,
    /// Where an editor put it in its digest (0: the default order).
    #[serde(skip)]
    pub digest_position: i32,
}

impl Article {
    pub fn section_names(&self) -> Vec<String> {
        parse_sections(self.sections.as_deref())
    }
}

fn parse_sections(raw: Option<&str>) -> Vec<String> {
    raw.and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

fn sections_as_array<S: serde::Serializer>(
    raw: &Option<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(parse_sections(raw.as_deref()))
}

#[derive(Clone, Debug, Default)]
pub struct NewArticle {
    pub url: String,
    pub guid: Option<String>,
    pub title: String,
    pub summary: Option<String>,
    pub published_at: NaiveDateTime,
    pub image_url: Option<String>,
    pub author: Option<String>,
    pub sections: Vec<String>,
    pub dated: bool,
}

impl NewArticle {
    fn sections_json(&self) -> Option<String> {
        (!self.sections.is_empty())
            .then(|| serde_json::to_string(&self.sections).unwrap_or_default())
    }
}

/// Inserts or updates; returns the id and whether it was new. Two callers
/// with the same new url at once: one inserts, the other finds its row
/// and updates it.
pub fn upsert(conn: &mut DbConnection, new: &NewArticle) -> QueryResult<(i64, bool)> {
    match upsert_once(conn, new)? {
        Some(done) => Ok(done),
        None => upsert_once(conn, new)?.ok_or(diesel::result::Error::NotFound),
    }
}

/// `None`: another writer inserted the row between our look and our insert.
fn upsert_once(conn: &mut DbConnection, new: &NewArticle) -> QueryResult<Option<(i64, bool)>> {
    let now = super::now();
    let mut existing = articles::table
        .filter(articles::url.eq(&new.url))
        .select(articles::id)
        .first::<i64>(conn)
        .optional()?;
    if existing.is_none() {
        if let Some(guid) = &new.guid {
            existing = articles::table
                .filter(articles::guid.eq(guid))
                .select(articles::id)
                .first::<i64>(conn)
                .optional()?;
        }
    }
    let sections = new.sections_json();
    if let Some(id) = existing {
        diesel::update(articles::table.find(id))
            .set((
                articles::url.eq(&new.url),
                articles::title.eq(&new.title),
                articles::summary.eq(&new.summary),
                articles::published_at.eq(new.published_at),
                articles::updated_at.eq(now),
                articles::image_url.eq(&new.image_url),
                articles::author.eq(&new.author),
                articles::sections.eq(&sections),
                articles::dated.eq(new.dated),
            ))
            .execute(conn)?;
        return Ok(Some((id, false)));
    }
    let row = (
        articles::url.eq(&new.url),
        articles::guid.eq(&new.guid),
        articles::title.eq(&new.title),
        articles::summary.eq(&new.summary),
        articles::published_at.eq(new.published_at),
        articles::created_at.eq(now),
        articles::updated_at.eq(now),
        articles::image_url.eq(&new.image_url),
        articles::author.eq(&new.author),
        articles::sections.eq(&sections),
        articles::dated.eq(new.dated),
    );
    let inserted = crate::with_backend!(conn, |c, _pg| diesel::insert_into(articles::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(c))?;
    if inserted == 0 {
        return Ok(None);
    }
    let id = articles::table
        .filter(articles::url.eq(&new.url))
        .select(articles::id)
        .first(conn)?;
    Ok(Some((id, true)))
}

/// Newest first, optionally only those published at or after `since`.
pub fn list(
    conn: &mut DbConnection,
    since: Option<NaiveDateTime>,
    limit: i64,
) -> QueryResult<Vec<Article>> {
    let mut q = articles::table.into_boxed();
    if let Some(since) = since {
        q = q.filter(articles::published_at.ge(since));
    }
    q.order((articles::published_at.desc(), articles::id.desc()))
        .limit(limit)
        .select(Article::as_select())
        .load(conn)
}

/// Takes the newest `max` articles not yet in a digest, published in
/// `[cutoff, now]`, into `digest_id` (dated ones first; the rest wait for
/// the next digest). A concurrent composer on PostgreSQL blocks on the rows
/// and then finds them taken (the outer filter is checked again), so no
/// article lands in two digests.
pub fn take_for_digest(
    conn: &mut DbConnection,
    digest_id: i64,
    cutoff: NaiveDateTime,
    now: NaiveDateTime,
    max: i64,
) -> QueryResult<usize> {
    let newest = articles::table
        .filter(articles::digest_id.is_null())
        .filter(articles::published_at.ge(cutoff))
        .filter(articles::published_at.le(now))
        .order((
            articles::dated.desc(),
            articles::published_at.desc(),
            articles::id.desc(),
        ))
        .limit(max)
        .select(articles::id);
    let ids: Vec<i64> = newest.load(conn)?;
    diesel::update(
        articles::table
            .filter(articles::id.eq_any(&ids))
            .filter(articles::digest_id.is_null()),
    )
    .set(articles::digest_id.eq(Some(digest_id)))
    .execute(conn)
}

/// The section names of the articles published since `since`, most used
/// first (the sections a reader may pick from), at most `limit`.
pub fn sections_since(
    conn: &mut DbConnection,
    since: NaiveDateTime,
    limit: usize,
) -> QueryResult<Vec<String>> {
    let rows: Vec<Option<String>> = articles::table
        .filter(articles::published_at.ge(since))
        .filter(articles::sections.is_not_null())
        .select(articles::sections)
        .load(conn)?;
    let mut counts: Vec<(String, usize)> = Vec::new();
    for name in rows.iter().flat_map(|r| parse_sections(r.as_deref())) {
        let name = name.trim().to_string();
        match counts
            .iter_mut()
            .find(|(n, _)| n.to_lowercase() == name.to_lowercase())
        {
            Some((_, k)) => *k += 1,
            None if !name.is_empty() => counts.push((name, 1)),
            None => {}
        }
    }
    counts.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then_with(|| a.0.to_lowercase().cmp(&b.0.to_lowercase()))
    });
    Ok(counts.into_iter().take(limit).map(|(n, _)| n).collect())
}

pub fn in_digest(conn: &mut DbConnection, digest_id: i64) -> QueryResult<Vec<Article>> {
    articles::table
        .filter(articles::digest_id.eq(digest_id))
        // An editor's order first; an undated article never leads.
        .order((
            articles::digest_position.asc(),
            articles::dated.desc(),
            articles::published_at.desc(),
            articles::id.desc(),
        ))
        .select(Article::as_select())
        .load(conn)
}

/// Puts a digest's articles in `order` (positions 1, 2, …) and gives back
/// the others to the pool for the next digest.
pub fn arrange(conn: &mut DbConnection, digest_id: i64, order: &[i64]) -> QueryResult<()> {
    diesel::update(
        articles::table
            .filter(articles::digest_id.eq(digest_id))
            .filter(articles::id.ne_all(order)),
    )
    .set((
        articles::digest_id.eq(None::<i64>),
        articles::digest_position.eq(0),
    ))
    .execute(conn)?;
    for (i, id) in order.iter().enumerate() {
        diesel::update(
            articles::table
                .find(*id)
                .filter(articles::digest_id.eq(digest_id)),
        )
        .set(articles::digest_position.eq(i as i32 + 1))
        .execute(conn)?;
    }
    Ok(())
}

pub fn find(conn: &mut DbConnection, id: i64) -> QueryResult<Option<Article>> {
    articles::table
        .find(id)
        .select(Article::as_select())
        .first(conn)
        .optional()
}

/// Whether an article has this exact URL.
pub fn url_known(conn: &mut DbConnection, url: &str) -> QueryResult<bool> {
    let n: i64 = articles::table
        .filter(articles::url.eq(url))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}
