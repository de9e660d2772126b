//! Each provider's verification and payload, into [`ProviderEvent`]s.

use actix_web::HttpRequest;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::bounces::ProviderEvent;
use crate::domain::token::constant_time_eq;
use crate::domain::BounceKind;

/// Why a request was not taken.
pub enum Refused {
    Unauthenticated(String),
    Malformed(String),
}

/// How far a Mailgun timestamp may be from now, in seconds.
const MAILGUN_SKEW: i64 = 15 * 60;

/// Postmark: `Authorization: Basic` with the webhook's user and password;
/// one event per request (RecordType Bounce or SpamComplaint).
pub fn postmark(
    req: &HttpRequest,
    user: &str,
    password: &str,
    body: &[u8],
) -> Result<Vec<ProviderEvent>, Refused> {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    );
    let given = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Err(Refused::Unauthenticated(
            "wrong or missing basic auth".into(),
        ));
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Event {
        record_type: String,
        #[serde(rename = "Type")]
        kind: Option<String>,
        email: String,
        details: Option<String>,
        description: Option<String>,
    }
    let e: Event = serde_json::from_slice(body)
        .map_err(|e| Refused::Malformed(format!("not a Postmark event: {e}")))?;
    let kind = match (e.record_type.as_str(), e.kind.as_deref().unwrap_or("")) {
        ("SpamComplaint", _) | (_, "SpamComplaint") => BounceKind::Complaint,
        ("Bounce", "HardBounce" | "BadEmailAddress") => BounceKind::Hard,
        ("Bounce", "Transient" | "SoftBounce" | "DnsError" | "Blocked" | "Undeliverable") => {
            BounceKind::Soft
        }
        // Auto-responders, subscribe/unsubscribe requests, address changes,
        // challenge verifications and the like are not bounces.
        _ => return Ok(Vec::new()),
    };
    let diagnostic = e.details.filter(|d| !d.is_empty()).or(e.description);
    Ok(vec![ProviderEvent {
        status: diagnostic
            .as_deref()
            .and_then(crate::mail::inbound::status_in),
        recipient: e.email,
        kind,
        diagnostic,
    }])
}

/// Mailgun: `{signature: {timestamp, token, signature}, "event-data": {…}}`,
/// the signature the hex HMAC-SHA256 of timestamp + token.
pub fn mailgun(key: &str, body: &[u8], now: i64) -> Result<Vec<ProviderEvent>, Refused> {
    #[derive(Deserialize)]
    struct Signed {
        signature: Signature,
        #[serde(rename = "event-data")]
        event: serde_json::Value,
    }
    #[derive(Deserialize)]
    struct Signature {
        timestamp: String,
        token: String,
        signature: String,
    }
    let signed: Signed = serde_json::from_slice(body)
        .map_err(|e| Refused::Malformed(format!("not a Mailgun event: {e}")))?;
    let s = &signed.signature;
    let fresh = s
        .timestamp
        .parse::<i64>()
        .is_ok_and(|t| (now - t).abs() <= MAILGUN_SKEW);
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes())
        .map_err(|_| Refused::Unauthenticated("bad signing key".into()))?;
    mac.update(s.timestamp.as_bytes());
    mac.update(s.token.as_bytes());
    let expected = hex::encode(mac.finalize().into_bytes());
    if !fresh
        || !constant_time_eq(
            expected.as_bytes(),
            s.signature.to_ascii_lowercase().as_bytes(),
        )
    {
        return Err(Refused::Unauthenticated("bad or stale signature".into()));
    }
    Ok(mailgun_event(&signed.event).into_iter().collect())
}

fn mailgun_event(e: &serde_json::Value) -> Option<ProviderEvent> {
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    let recipient = text(&e["recipient"])?;
    let status = &e["delivery-status"];
    let message = text(&status["message"])
        .filter(|m| !m.is_empty())
        .or_else(|| text(&status["description"]));
    let code = status["enhanced-code"]
        .as_str()
        .map(str::to_string)
        .or_else(|| message.as_deref().and_then(crate::mail::inbound::status_in));
    let kind = match (e["event"].as_str()?, e["severity"].as_str().unwrap_or("")) {
        ("complained", _) => BounceKind::Complaint,
        ("failed", "permanent") => {
            // Mailgun's "permanent" covers refusals of the sender or the
            // content too: the reply decides hard or soft.
            let reply = format!("{} {}", status["code"], message.as_deref().unwrap_or(""));
            match crate::mail::inbound::classify(code.as_deref(), &reply) {
                crate::mail::inbound::Verdict::Hard => BounceKind::Hard,
                _ => BounceKind::Soft,
            }
        }
        ("failed", _) => BounceKind::Soft,
        _ => return None,
    };
    Some(ProviderEvent {
        recipient,
        kind,
        status: code,
        diagnostic: message,
    })
}
