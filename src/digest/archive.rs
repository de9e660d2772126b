//! The public web archive of digests (`/archive`, `archive_public`): what
//! went out, with no reader's link or address in it. A digest is archived
//! once it started sending (so an email's "view in browser" link works at
//! once); drafts, scheduled and cancelled digests are not.

use crate::db::{self, digests::Digest, DbError};
use crate::domain::DigestStatus;

use super::compose::{
    FEEDBACK_MARKER, PREFERENCES_MARKER, READER_END, READER_START, UNSUBSCRIBE_MARKER,
};

/// Digests per archive page.
pub const PER_PAGE: i64 = 20;

/// The statuses of a digest that is in the archive.
pub const ARCHIVED: [DigestStatus; 3] = [
    DigestStatus::Sending,
    DigestStatus::Paused,
    DigestStatus::Sent,
];

/// A page of the archive (from 1), newest first, and how many there are.
pub async fn page(pool: &db::Pool, page: i64) -> Result<(Vec<Digest>, i64), DbError> {
    let offset = (page - 1) * PER_PAGE;
    db::run(pool, move |c| {
        let items = db::digests::archived(c, &ARCHIVED, offset, PER_PAGE)?;
        let total = db::digests::archived_count(c, &ARCHIVED)?;
        Ok((items, total))
    })
    .await
}

/// One archived digest; `None` when there is none by that id in the archive.
pub async fn find(pool: &db::Pool, id: i64) -> Result<Option<Digest>, DbError> {
    let found = db::run(pool, move |c| db::digests::find(c, id)).await?;
    Ok(found.filter(|d| ARCHIVED.contains(&d.status)))
}

/// The digest's HTML as sent, without the reader's own parts (between the
/// reader markers); a stray unsubscribe placeholder (a custom template
/// without the markers) becomes `signup_url`, a stray feedback token
/// nothing.
pub fn web_version(html: &str, signup_url: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find(READER_START) {
        out.push_str(&rest[..start]);
        match rest[start..].find(READER_END) {
            Some(end) => rest = &rest[start + end + READER_END.len()..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.replace(UNSUBSCRIBE_MARKER, signup_url)
        .replace(FEEDBACK_MARKER, "")
        .replace(PREFERENCES_MARKER, signup_url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_parts_are_cut() {
        let html = format!(
            "a{READER_START}<a href=\"{UNSUBSCRIBE_MARKER}\">x</a>{READER_END}b{READER_START}c{READER_END}d<a href=\"{UNSUBSCRIBE_MARKER}\">"
        );
        assert_eq!(
            web_version(&html, "https://n.example/"),
            "abd<a href=\"https://n.example/\">"
        );
    }
}
