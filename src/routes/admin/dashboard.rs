//! GET /admin: counts by status, the growth chart, recent digests, the
//! articles readers liked most this week.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::auth::Admin;
use super::digests::{rows, DigestRow};
use super::{chart, render};
use crate::db;
use crate::routes::web::AdminError;
use crate::state::AppState;

/// Articles in "most liked this week".
const LIKED: i64 = 5;

pub async fn show(admin: Admin, state: web::Data<AppState>) -> Result<HttpResponse, AdminError> {
    let state = state.into_inner();
    let today = db::now().date();
    let week_ago = db::now() - chrono::Duration::days(7);
    let (counts, days, digests, liked) = db::run(&state.pool, move |c| {
        let counts = db::subscribers::count_by_status(c)?;
        let days = crate::stats::growth(c, today)?;
        let digests = rows(c, 5)?;
        let liked = db::feedback::most_liked(c, week_ago, LIKED)?;
        Ok((counts, days, digests, liked))
    })
    .await?;
    let new_confirmed: i64 = days.iter().map(|(_, n)| n).sum();
    let confirmed = counts
        .iter()
        .find(|(s, _)| *s == crate::domain::SubscriberStatus::Confirmed)
        .map(|(_, n)| *n)
        .unwrap_or(0);
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let digests: Vec<DigestRow> = digests;
    render(
        &state,
        StatusCode::OK,
        "admin/dashboard.html",
        &admin,
        "dashboard",
        minijinja::context! {
            counts => minijinja::Value::from(minijinja::value::Serde(&counts)),
            total => total,
            confirmed => confirmed,
            new_confirmed => new_confirmed,
            chart_days => crate::stats::GROWTH_DAYS,
            chart => minijinja::Value::from_safe_string(chart::svg(&days)),
            digests => minijinja::Value::from(minijinja::value::Serde(&digests)),
            liked => minijinja::Value::from(minijinja::value::Serde(&liked)),
        },
    )
}
