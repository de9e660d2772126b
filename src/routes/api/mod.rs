//! The ops API: JSON only, `Authorization: Bearer <token>` on every route.
//! Its routes, under `/api`, are in [`crate::routes::configure`].

pub mod articles;
pub mod bounces;
pub mod digests;
pub mod stats;
pub mod subscribers;

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};

use super::web::ApiError;
use crate::db;
use crate::state::AppState;

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
