//! GET /admin/bounces: bounces and complaints as they came in, newest
//! first, filtered by kind and digest (the same rules as GET /api/bounces),
//! each naming its reader.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::auth::Admin;
use super::render;
use crate::db::{self, bounces::BounceRecord};
use crate::domain::BounceKind;
use crate::routes::web::{parse_bounce_list, query, AdminError, PER_PAGE};
use crate::state::AppState;

#[derive(Deserialize)]
struct ListQuery {
    kind: Option<String>,
    digest: Option<String>,
    subscriber: Option<String>,
    page: Option<String>,
}

/// A bounce with its reader's address (`None` once erased).
#[derive(Serialize)]
struct Row {
    #[serde(flatten)]
    bounce: BounceRecord,
    email: Option<String>,
}

#[derive(Serialize)]
struct ListPage {
    items: Vec<Row>,
    total: i64,
    page: i64,
    pages: i64,
    kind: String,
    digest: String,
    subscriber: String,
    kinds: &'static [BounceKind],
}

pub async fn list(
    admin: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let state = state.into_inner();
    let q: ListQuery = query(&req)?;
    let (filter, page) = parse_bounce_list(q.digest, q.subscriber, q.kind, q.page)?;
    let shown = (
        filter.kind.map(|k| k.to_string()).unwrap_or_default(),
        filter.digest_id.map(|d| d.to_string()).unwrap_or_default(),
        filter.subscriber_id.clone().unwrap_or_default(),
    );
    let (items, total) = db::run(&state.pool, move |c| {
        let (bounces, total) = db::bounces::list(c, &filter, page, PER_PAGE)?;
        let ids: Vec<String> = bounces.iter().map(|b| b.subscriber_id.clone()).collect();
        let addresses = db::subscribers::addresses(c, &ids)?;
        let rows = bounces
            .into_iter()
            .map(|bounce| Row {
                email: addresses.get(&bounce.subscriber_id).cloned().flatten(),
                bounce,
            })
            .collect::<Vec<_>>();
        Ok((rows, total))
    })
    .await?;
    render(
        &state,
        StatusCode::OK,
        "admin/bounces.html",
        &admin,
        "bounces",
        ListPage {
            items,
            total,
            page,
            pages: ((total + PER_PAGE - 1) / PER_PAGE).max(1),
            kind: shown.0,
            digest: shown.1,
            subscriber: shown.2,
            kinds: BounceKind::ALL,
        },
    )
}
