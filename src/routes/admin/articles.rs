//! GET /admin/articles (newest first) and POST /admin/articles (the add
//! form, with the same rules as POST /api/articles).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::auth::Admin;
use super::render;
use crate::db::{self, articles::Article};
use crate::routes::web::{field, form, validate_article, AdminError, ArticleInput, FieldError};
use crate::state::{AppState, SharedState};

const LISTED: i64 = 100;

/// What the add form shows again after a mistake.
#[derive(Serialize, Default)]
struct FormValues {
    url: String,
    title: String,
    summary: String,
    published_at: String,
}

/// A row of the list: the article and its votes from both sources.
#[derive(Serialize)]
struct Row {
    #[serde(flatten)]
    article: Article,
    feedback: db::feedback::Counts,
}

/// The list with the add form: what it shows again after a mistake, the
/// mistake, and whether an article was just added.
#[derive(Serialize)]
struct ListPage {
    items: Vec<Row>,
    form: FormValues,
    error: Option<String>,
    error_field: Option<String>,
    added: bool,
}

async fn page(
    state: &SharedState,
    admin: &Admin,
    status: StatusCode,
    values: FormValues,
    error: Option<(String, String)>,
    added: bool,
) -> Result<HttpResponse, AdminError> {
    let items = db::run(&state.pool, |c| {
        let articles = db::articles::list(c, None, LISTED)?;
        let urls: Vec<String> = articles.iter().map(|a| a.url.clone()).collect();
        let mut counts = db::feedback::counts_for(c, &urls)?;
        Ok(articles
            .into_iter()
            .map(|article| Row {
                feedback: counts.remove(&article.url).unwrap_or_default(),
                article,
            })
            .collect::<Vec<_>>())
    })
    .await?;
    render(
        state,
        status,
        "admin/articles.html",
        admin,
        "articles",
        ListPage {
            items,
            form: values,
            error: error.as_ref().map(|e| e.1.clone()),
            error_field: error.map(|e| e.0),
            added,
        },
    )
}

pub async fn list(
    admin: Admin,
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let state = state.into_inner();
    let added = req.query_string().contains("added=1");
    page(
        &state,
        &admin,
        StatusCode::OK,
        FormValues::default(),
        None,
        added,
    )
    .await
}

pub async fn add(
    admin: Admin,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let state = state.into_inner();
    let pairs = form(&body)?;
    admin.check_csrf(&pairs)?;
    let text = |name: &str| field(&pairs, name).unwrap_or_default().to_string();
    let values = FormValues {
        url: text("url"),
        title: text("title"),
        summary: text("summary"),
        published_at: text("published_at"),
    };
    let input = ArticleInput {
        url: Some(values.url.clone()),
        title: Some(values.title.clone()),
        summary: Some(values.summary.clone()),
        published_at: Some(values.published_at.clone()),
        ..Default::default()
    };
    let article = match validate_article(input) {
        Ok(a) => a,
        Err(FieldError { field, reason }) => {
            let label = match field.as_str() {
                "url" => "URL",
                "title" => "Title",
                "summary" => "Summary",
                "published_at" => "Published at",
                other => other,
            };
            let message = format!("{label} {reason}.");
            return page(
                &state,
                &admin,
                StatusCode::UNPROCESSABLE_ENTITY,
                values,
                Some((field, message)),
                false,
            )
            .await;
        }
    };
    let (id, created) = db::run(&state.pool, move |c| db::articles::upsert(c, &article)).await?;
    tracing::info!(
        admin_id = admin.id,
        article_id = id,
        created,
        "article saved from the console"
    );
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/admin/articles?added=1"))
        .finish())
}
