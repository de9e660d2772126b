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

/// How far a Mailgun or SendGrid timestamp may be from now, in seconds.
const SKEW: i64 = 15 * 60;

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

/// A failure a provider reports without saying whether the address is
/// gone: hard when the reply says so (the inbound classifier's rule), else
/// soft.
fn hard_or_soft(status: Option<&str>, reply: &str) -> BounceKind {
    match crate::mail::inbound::classify(status, reply) {
        crate::mail::inbound::Verdict::Hard => BounceKind::Hard,
        _ => BounceKind::Soft,
    }
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
        .is_ok_and(|t| (now - t).abs() <= SKEW);
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
            hard_or_soft(code.as_deref(), &reply)
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

/// SendGrid's signed Event Webhook: `X-Twilio-Email-Event-Webhook-Signature`
/// is a base64 DER ECDSA P-256 signature, over SHA-256, of
/// `X-Twilio-Email-Event-Webhook-Timestamp` followed by the raw body, under
/// the verification key; the timestamp must be within 15 minutes. The body
/// is an array of events.
pub fn sendgrid(
    req: &HttpRequest,
    key: &str,
    body: &[u8],
    now: i64,
) -> Result<Vec<ProviderEvent>, Refused> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let timestamp = header("X-Twilio-Email-Event-Webhook-Timestamp");
    let fresh = timestamp
        .parse::<i64>()
        .is_ok_and(|t| (now - t).abs() <= SKEW);
    let signature = header("X-Twilio-Email-Event-Webhook-Signature");
    if !fresh || !sendgrid_signed(key, &timestamp, &signature, body) {
        return Err(Refused::Unauthenticated("bad or stale signature".into()));
    }
    let events: Vec<serde_json::Value> = serde_json::from_slice(body)
        .map_err(|e| Refused::Malformed(format!("not SendGrid events: {e}")))?;
    Ok(events.iter().filter_map(sendgrid_event).collect())
}

/// Whether `signature` (base64 DER) signs `timestamp` + `body` under the
/// verification key `key` (base64 DER).
fn sendgrid_signed(key: &str, timestamp: &str, signature: &str, body: &[u8]) -> bool {
    use p256::ecdsa::signature::Verifier;
    let Some(key) = crate::config::sendgrid_key(key) else {
        return false;
    };
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature)
        .ok()
        .and_then(|der| p256::ecdsa::Signature::from_der(&der).ok());
    let signed = [timestamp.as_bytes(), body].concat();
    signature.is_some_and(|sig| key.verify(&signed, &sig).is_ok())
}

/// One SendGrid event: `spamreport` is a complaint; `bounce` hard or soft
/// by its reply (`type: blocked`, a refusal of the message rather than the
/// address, is soft); `dropped` because SendGrid's own lists hold the
/// address as bounced or invalid is hard, as a spam reporter a complaint.
/// Deferrals (delays never bounce), deliveries, opens, clicks and the rest
/// are not bounces.
fn sendgrid_event(e: &serde_json::Value) -> Option<ProviderEvent> {
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    let recipient = text(&e["email"])?;
    let reason = text(&e["reason"]).filter(|r| !r.is_empty());
    let status = text(&e["status"])
        .as_deref()
        .and_then(crate::mail::inbound::status_in)
        .or_else(|| reason.as_deref().and_then(crate::mail::inbound::status_in));
    let kind = match (e["event"].as_str()?, reason.as_deref().unwrap_or("")) {
        ("spamreport", _) | ("dropped", "Spam Reporting Address") => BounceKind::Complaint,
        ("dropped", "Bounced Address" | "Invalid") => BounceKind::Hard,
        ("bounce", _) if e["type"] == "blocked" => BounceKind::Soft,
        ("bounce", reply) => hard_or_soft(status.as_deref(), reply),
        _ => return None,
    };
    Some(ProviderEvent {
        recipient,
        kind,
        status,
        diagnostic: reason,
    })
}

/// Amazon SES through SNS: the message's signature checked with a
/// certificate from `folder` ([`super::sns`]), then its `Message` read as
/// an SES notification the way a notification by email is
/// ([`crate::mail::inbound::read_ses`]: `Permanent` hard, `Transient` and
/// `Undetermined` soft, complaints but authentication-failure reports).
/// A subscription confirmation is logged with the URL that confirms it
/// (Tidings fetches nothing) and records nothing.
pub fn ses(body: &[u8], folder: &std::path::Path, now: i64) -> Result<Vec<ProviderEvent>, Refused> {
    use crate::mail::inbound::{read_ses, Report, Verdict};
    let envelope: super::sns::Envelope = serde_json::from_slice(body)
        .map_err(|e| Refused::Malformed(format!("not an SNS message: {e}")))?;
    super::sns::verify(&envelope, folder, now).map_err(Refused::Unauthenticated)?;
    match envelope.kind.as_str() {
        "Notification" => {}
        "SubscriptionConfirmation" => {
            tracing::warn!(
                topic = %envelope.topic_arn,
                confirm = envelope.subscribe_url.as_deref().unwrap_or_default(),
                "an SNS topic asks to deliver SES notifications here: open the confirm URL once to start them"
            );
            return Ok(Vec::new());
        }
        _ => return Ok(Vec::new()),
    }
    let mut report = Report::default();
    if !read_ses(&envelope.message, &mut report) {
        return Err(Refused::Malformed(
            "the SNS message holds no SES notification".into(),
        ));
    }
    let kind = match report.verdict() {
        Verdict::Hard => BounceKind::Hard,
        Verdict::Soft => BounceKind::Soft,
        Verdict::Complaint => BounceKind::Complaint,
        Verdict::Ignored(_) => return Ok(Vec::new()),
    };
    Ok(report
        .final_recipient
        .map(|recipient| ProviderEvent {
            recipient,
            kind,
            status: report.status,
            diagnostic: report.diagnostic,
        })
        .into_iter()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SendGrid's own signed example: the key, signature, timestamp and
    /// payload of sendgrid-nodejs' eventwebhook tests.
    #[test]
    fn sendgrids_signed_example_verifies_and_nothing_else_does() {
        const KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==";
        const OTHER_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA==";
        const SIGNATURE: &str = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=";
        const TAMPERED: &str = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH3j/0=";
        const TIMESTAMP: &str = "1588788367";
        let payload =
            br#"{"category":"example_payload","event":"test_event","message_id":"message_id"}"#;
        assert!(sendgrid_signed(KEY, TIMESTAMP, SIGNATURE, payload));
        assert!(!sendgrid_signed(OTHER_KEY, TIMESTAMP, SIGNATURE, payload));
        assert!(!sendgrid_signed(KEY, TIMESTAMP, SIGNATURE, b"payload"));
        assert!(!sendgrid_signed(KEY, TIMESTAMP, TAMPERED, payload));
        assert!(!sendgrid_signed(KEY, "timestamp", SIGNATURE, payload));
        assert!(!sendgrid_signed(KEY, TIMESTAMP, "not base64!", payload));
    }

    #[test]
    fn sendgrid_events_are_classified_by_event_and_reply() {
        let kind = |e: serde_json::Value| sendgrid_event(&e).map(|e| e.kind);
        let email = "r@example.com";
        assert_eq!(
            kind(
                serde_json::json!({"email": email, "event": "bounce", "type": "bounce",
                "status": "5.0.0", "reason": "500 unknown recipient"})
            ),
            Some(BounceKind::Hard)
        );
        assert_eq!(
            kind(
                serde_json::json!({"email": email, "event": "bounce", "type": "bounce",
                "status": "5.2.2", "reason": "552 5.2.2 mailbox full"})
            ),
            Some(BounceKind::Soft)
        );
        assert_eq!(
            kind(
                serde_json::json!({"email": email, "event": "bounce", "type": "blocked",
                "status": "5.1.1", "reason": "550 5.1.1 unknown"})
            ),
            Some(BounceKind::Soft),
            "blocked is a refusal of the message"
        );
        assert_eq!(
            kind(serde_json::json!({"email": email, "event": "spamreport"})),
            Some(BounceKind::Complaint)
        );
        assert_eq!(
            kind(
                serde_json::json!({"email": email, "event": "dropped", "reason": "Bounced Address"})
            ),
            Some(BounceKind::Hard)
        );
        for ignored in [
            "deferred",
            "delivered",
            "open",
            "click",
            "processed",
            "unsubscribe",
        ] {
            assert_eq!(
                kind(serde_json::json!({"email": email, "event": ignored, "reason": "400 later"})),
                None,
                "{ignored}"
            );
        }
        assert_eq!(
            kind(
                serde_json::json!({"email": email, "event": "dropped", "reason": "Invalid SMTPAPI header"})
            ),
            None
        );
    }
}
