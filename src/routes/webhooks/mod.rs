//! POST /webhooks/{provider}: bounce and complaint events from email
//! providers, each checked its provider's way before anything is read:
//! Postmark by the basic auth its webhook is configured with, Mailgun by
//! the HMAC-SHA256 of `timestamp + token` under the signing key (and a
//! timestamp within 15 minutes, so an old request cannot be replayed much
//! later), SendGrid by the ECDSA P-256 signature of timestamp + body under
//! its verification key (the same 15 minutes), SES by the SNS message
//! signature with a certificate from the configured folder ([`sns`]). A
//! bad or missing credential is 401 and changes nothing; a provider with no
//! secret in `webhook_secrets` has no webhook (404).

mod providers;
mod sns;

use actix_web::{web, HttpRequest, HttpResponse};

use super::web::{ApiError, ErrorBody};
use crate::state::AppState;

#[utoipa::path(post, path = "/webhooks/{provider}", operation_id = "webhook", tag = "webhooks",
    params(("provider" = String, Path, description = "ses, postmark, sendgrid or mailgun")),
    request_body(content = Object, description = "the provider's event, as it sends it"),
    responses(
        (status = 200, description = "{\"recorded\": N}", body = Object),
        (status = 400, description = "not an event of that provider", body = ErrorBody),
        (status = 401, description = "the provider's credential is missing or wrong", body = ErrorBody),
        (status = 404, description = "no such webhook, or none configured", body = ErrorBody),
    ))]
pub async fn receive(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let secrets = &state.settings.webhook_secrets;
    let parsed = match path.as_str() {
        "postmark" => match &secrets.postmark {
            Some((user, password)) => providers::postmark(&req, user, password, &body),
            None => return Err(not_configured()),
        },
        "mailgun" => match &secrets.mailgun {
            Some(key) => providers::mailgun(key, &body, chrono::Utc::now().timestamp()),
            None => return Err(not_configured()),
        },
        "sendgrid" => match &secrets.sendgrid {
            Some(key) => providers::sendgrid(&req, key, &body, chrono::Utc::now().timestamp()),
            None => return Err(not_configured()),
        },
        "ses" => match &secrets.ses {
            Some(folder) => providers::ses(&body, folder, chrono::Utc::now().timestamp()),
            None => return Err(not_configured()),
        },
        _ => return Err(ApiError::NotFound("no such webhook".into())),
    };
    let events = match parsed {
        Ok(events) => events,
        Err(providers::Refused::Unauthenticated(why)) => {
            // Says which check failed (a missing SNS certificate names the
            // file to download); never an address.
            tracing::warn!(provider = path.as_str(), error = %why, "webhook call refused");
            return Ok(HttpResponse::Unauthorized().json(serde_json::json!({ "error": why })));
        }
        Err(providers::Refused::Malformed(why)) => return Err(ApiError::BadRequest(why)),
    };
    let recorded = crate::bounces::record_events(&state, events).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "recorded": recorded })))
}

fn not_configured() -> ApiError {
    ApiError::NotFound("this webhook is not configured (webhook_secrets)".into())
}
