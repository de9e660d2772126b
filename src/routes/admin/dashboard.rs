//! GET /admin: counts by status, the growth chart, recent digests.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::auth::Admin;
use super::digests::{rows, DigestRow};
use super::{chart, render, AdminError};
use crate::db;
use crate::state::AppState;

/// Days in the growth chart.
const CHART_DAYS: u32 = 30;

pub async fn show(admin: Admin, state: web::Data<AppState>) -> Result<HttpResponse, AdminError> {
    let state = state.into_inner();
    let today = db::now().date();
    let since = (today - chrono::Duration::days(i64::from(CHART_DAYS - 1)))
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default();
    let (counts, confirmed_at, digests) = db::run(&state.pool, move |c| {
        let counts = db::subscribers::count_by_status(c)?;
        let confirmed_at = db::subscribers::confirmed_since(c, since)?;
        let digests = rows(c, 5)?;
        Ok((counts, confirmed_at, digests))
    })
    .await?;
    let days = chart::per_day(&confirmed_at, today, CHART_DAYS);
    let new_confirmed: i64 = days.iter().map(|(_, n)| n).sum();
    let confirmed = counts
        .iter()
        .find(|(s, _)| s == crate::domain::status::CONFIRMED)
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
            chart_days => CHART_DAYS,
            chart => minijinja::Value::from_safe_string(chart::svg(&days)),
            digests => minijinja::Value::from(minijinja::value::Serde(&digests)),
        },
    )
}
