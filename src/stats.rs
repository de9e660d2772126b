//! The numbers ops watch: readers by status, emails sent, and recent growth
//! (confirmations per day). The console's dashboard and `GET /api/stats`
//! both read them from here.

use chrono::{NaiveDate, NaiveDateTime};
use serde::Serialize;

use crate::db::{self, DbConnection, QueryResult};
use crate::domain::WorkStatus;

/// Days of growth the dashboard charts and the API reports.
pub const GROWTH_DAYS: u32 = 30;

/// Everything `GET /api/stats` answers.
#[derive(Debug, Serialize)]
pub struct Stats {
    /// Readers by status, every status present, and their total.
    pub subscribers: serde_json::Map<String, serde_json::Value>,
    pub sends: Sends,
    pub growth: Growth,
}

#[derive(Debug, Serialize)]
pub struct Sends {
    /// Confirmation emails: queued (or in flight), sent, failed.
    pub confirmations: Confirmations,
    /// Digest emails over every digest so far.
    pub digests: db::digests::Totals,
}

#[derive(Debug, Default, Serialize)]
pub struct Confirmations {
    pub queued: i64,
    pub sent: i64,
    pub failed: i64,
}

#[derive(Debug, Serialize)]
pub struct Growth {
    pub days: u32,
    /// Confirmations over those days.
    pub confirmed: i64,
    pub per_day: Vec<Day>,
}

#[derive(Debug, Serialize)]
pub struct Day {
    pub date: NaiveDate,
    pub confirmed: i64,
}

pub fn gather(conn: &mut DbConnection, today: NaiveDate) -> QueryResult<Stats> {
    let mut subscribers = serde_json::Map::new();
    let mut total = 0;
    for (status, n) in db::subscribers::count_by_status(conn)? {
        total += n;
        subscribers.insert(status.to_string(), n.into());
    }
    subscribers.insert("total".into(), total.into());
    let mut confirmations = Confirmations::default();
    for (status, n) in db::outbox::count_by_status(conn)? {
        match status {
            WorkStatus::Sent => confirmations.sent += n,
            WorkStatus::Failed => confirmations.failed += n,
            WorkStatus::Queued | WorkStatus::Sending => confirmations.queued += n,
        }
    }
    let per_day: Vec<Day> = growth(conn, today)?
        .into_iter()
        .map(|(date, confirmed)| Day { date, confirmed })
        .collect();
    Ok(Stats {
        subscribers,
        sends: Sends {
            confirmations,
            digests: db::digests::totals(conn)?,
        },
        growth: Growth {
            days: GROWTH_DAYS,
            confirmed: per_day.iter().map(|d| d.confirmed).sum(),
            per_day,
        },
    })
}

/// Confirmations per day for the [`GROWTH_DAYS`] days ending with `today`,
/// oldest first (readers still confirmed).
pub fn growth(conn: &mut DbConnection, today: NaiveDate) -> QueryResult<Vec<(NaiveDate, i64)>> {
    let first = today - chrono::Duration::days(i64::from(GROWTH_DAYS - 1));
    let confirmed_at = db::subscribers::confirmed_since(conn, first.and_time(Default::default()))?;
    Ok(per_day(&confirmed_at, today, GROWTH_DAYS))
}

/// Confirmations per day for the `days` days ending with `today`, oldest first.
pub fn per_day(
    confirmed_at: &[NaiveDateTime],
    today: NaiveDate,
    days: u32,
) -> Vec<(NaiveDate, i64)> {
    let first = today - chrono::Duration::days(i64::from(days.saturating_sub(1)));
    let mut out: Vec<(NaiveDate, i64)> = first
        .iter_days()
        .take(days as usize)
        .map(|d| (d, 0))
        .collect();
    for at in confirmed_at {
        let day = at.date();
        if day < first || day > today {
            continue;
        }
        let index = (day - first).num_days() as usize;
        if let Some(slot) = out.get_mut(index) {
            slot.1 += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_by_day_and_ignores_older() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let at = |d: u32, h: u32| {
            NaiveDate::from_ymd_opt(2026, 11, d)
                .unwrap()
                .and_hms_opt(h, 0, 0)
                .unwrap()
        };
        let days = per_day(&[at(30, 1), at(30, 23), at(29, 5), at(1, 0)], today, 3);
        assert_eq!(days.len(), 3);
        assert_eq!(days[0].0, NaiveDate::from_ymd_opt(2026, 11, 28).unwrap());
        assert_eq!(days.iter().map(|d| d.1).collect::<Vec<_>>(), [0, 1, 2]);
    }
}
