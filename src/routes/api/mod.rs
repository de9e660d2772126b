//! The ops API: JSON only, `Authorization: Bearer <token>` on every route.

pub mod articles;
mod digests;
mod stats;
pub mod subscribers;

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};

use super::ApiError;
use crate::db;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api")
            .configure(subscribers::configure)
            .configure(articles::configure)
            .configure(digests::configure)
            .configure(stats::configure)
            .default_service(web::to(|| async {
                Err::<actix_web::HttpResponse, _>(ApiError::NotFound("no such API route".into()))
            })),
    );
}

/// The query string, read in the handler after [`ApiToken`]: as an
/// argument beside it, a malformed query would answer 400 before the token
/// was even checked (401).
pub fn query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// Proof that the request carried a valid API token.
pub struct ApiToken {
    pub name: String,
}

impl FromRequest for ApiToken {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let header = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_string());
        Box::pin(async move {
            let (Some(state), Some(token)) = (state, header) else {
                return Err(ApiError::Unauthorized);
            };
            if token.is_empty() || token.len() > 256 {
                return Err(ApiError::Unauthorized);
            }
            let hash = crate::domain::token::hash(&token);
            let name =
                db::run(&state.pool, move |c| db::api_tokens::find_by_hash(c, &hash)).await?;
            name.map(|name| ApiToken { name })
                .ok_or(ApiError::Unauthorized)
        })
    }
}
