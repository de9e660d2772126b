//! Random tokens, their stored hashes, and keyed MACs.
//!
//! Secrets at rest are hashes: a confirmation or API token is stored as its
//! SHA-256. Links that must work forever (unsubscribe) carry a MAC keyed by
//! `secret_key`, so nothing about them needs storing.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// 256 random bits, URL-safe base64 (43 characters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Hex SHA-256 of a token: what the database keeps.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// HMAC-SHA256 of `message` under `key`, hex-encoded.
pub fn mac_hex(key: &str, message: &str) -> String {
    hex::encode(mac_bytes(key, message))
}

fn mac_bytes(key: &str, message: &str) -> Vec<u8> {
    // new_from_slice accepts keys of any length for HMAC.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(message.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// A confirmation token derived from a nonce: the outbox row keeps the nonce,
/// the token table keeps the token's hash, the raw token exists only in the
/// email.
pub fn confirmation_token(key: &str, nonce: &str) -> String {
    URL_SAFE_NO_PAD.encode(&mac_bytes(key, &format!("confirm:{nonce}"))[..24])
}

/// Per-reader unsubscribe token: `<subscriber id>.<mac>`; never expires.
pub fn unsubscribe_token(key: &str, subscriber_id: &str) -> String {
    let mac =
        URL_SAFE_NO_PAD.encode(&mac_bytes(key, &format!("unsubscribe:{subscriber_id}"))[..16]);
    format!("{subscriber_id}.{mac}")
}

/// The subscriber id inside a genuine unsubscribe token.
pub fn verify_unsubscribe_token(key: &str, token: &str) -> Option<String> {
    let (id, _) = token.split_once('.')?;
    if id.len() > 64 {
        return None;
    }
    let expected = unsubscribe_token(key, id);
    constant_time_eq(expected.as_bytes(), token.as_bytes()).then(|| id.to_string())
}

/// Per-reader token of a digest's "Useful? Yes · No" links:
/// `<digest id>.<subscriber id>.<mac>`, signed like the unsubscribe token.
/// The digest fixes its articles, so the token lets one reader vote on
/// that digest's stories and nothing else; the article and the vote ride
/// beside it in the link. One token per email keeps the per-reader part of
/// a send to one MAC, however many stories the digest has.
pub fn feedback_token(key: &str, digest_id: i64, subscriber_id: &str) -> String {
    let message = format!("feedback:{digest_id}:{subscriber_id}");
    let mac = URL_SAFE_NO_PAD.encode(&mac_bytes(key, &message)[..16]);
    format!("{digest_id}.{subscriber_id}.{mac}")
}

/// The digest and subscriber inside a genuine feedback token.
pub fn verify_feedback_token(key: &str, token: &str) -> Option<(i64, String)> {
    let (digest, rest) = token.split_once('.')?;
    let (id, _) = rest.split_once('.')?;
    if digest.len() > 19 || id.len() > 64 {
        return None;
    }
    let digest_id: i64 = digest.parse().ok()?;
    let expected = feedback_token(key, digest_id, id);
    constant_time_eq(expected.as_bytes(), token.as_bytes()).then(|| (digest_id, id.to_string()))
}

/// A new browser id for the site's feedback widget, as its signed cookie
/// value `<id>.<mac>`: `(cookie value, id)`.
pub fn new_voter_cookie(key: &str) -> (String, String) {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    let id = URL_SAFE_NO_PAD.encode(bytes);
    (voter_cookie(key, &id), id)
}

fn voter_cookie(key: &str, id: &str) -> String {
    let mac = URL_SAFE_NO_PAD.encode(&mac_bytes(key, &format!("voter:{id}"))[..16]);
    format!("{id}.{mac}")
}

/// The browser id inside a genuine voter cookie.
pub fn verify_voter_cookie(key: &str, value: &str) -> Option<String> {
    let (id, _) = value.split_once('.')?;
    if id.len() != 22 {
        return None;
    }
    let expected = voter_cookie(key, id);
    constant_time_eq(expected.as_bytes(), value.as_bytes()).then(|| id.to_string())
}

/// How long a preferences link works after its email was sent.
pub const PREFERENCES_DAYS: i64 = 90;

/// Why a preferences token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    /// Not one we made (or mangled).
    Forged,
    /// Ours, but older than [`PREFERENCES_DAYS`].
    Expired,
}

/// Per-reader preferences token, signed like the unsubscribe token:
/// `<subscriber id>.<day issued>.<mac>`, the day counted from 1970-01-01
/// (UTC), so a link stops working [`PREFERENCES_DAYS`] after its email.
pub fn preferences_token(key: &str, subscriber_id: &str, day: i64) -> String {
    let message = format!("preferences:{subscriber_id}:{day}");
    let mac = URL_SAFE_NO_PAD.encode(&mac_bytes(key, &message)[..16]);
    format!("{subscriber_id}.{day}.{mac}")
}

/// Today's day number for [`preferences_token`].
pub fn day_of(at: chrono::NaiveDateTime) -> i64 {
    at.and_utc().timestamp().div_euclid(86_400)
}

/// The subscriber id inside a genuine, unexpired preferences token.
pub fn verify_preferences_token(
    key: &str,
    token: &str,
    today: i64,
) -> Result<String, TokenProblem> {
    let mut parts = token.splitn(3, '.');
    let (Some(id), Some(day), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(TokenProblem::Forged);
    };
    if id.len() > 64 || day.len() > 8 {
        return Err(TokenProblem::Forged);
    }
    let day: i64 = day.parse().map_err(|_| TokenProblem::Forged)?;
    let expected = preferences_token(key, id, day);
    if !constant_time_eq(expected.as_bytes(), token.as_bytes()) {
        return Err(TokenProblem::Forged);
    }
    if today - day > PREFERENCES_DAYS || day > today + 1 {
        return Err(TokenProblem::Expired);
    }
    Ok(id.to_string())
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let t = random_token();
        assert_eq!(t.len(), 43);
        assert_ne!(t, random_token());
        assert_eq!(hash("a").len(), 64);
        let c = confirmation_token("k", "n");
        assert_eq!(c, confirmation_token("k", "n"));
        assert_eq!(c.len(), 32);
        assert_ne!(c, confirmation_token("k2", "n"));
    }

    #[test]
    fn preferences_round_trip_and_expiry() {
        let t = preferences_token("key", "abc-123", 20_000);
        assert_eq!(
            verify_preferences_token("key", &t, 20_000).as_deref(),
            Ok("abc-123")
        );
        assert_eq!(
            verify_preferences_token("key", &t, 20_000 + PREFERENCES_DAYS + 1),
            Err(TokenProblem::Expired)
        );
        assert_eq!(
            verify_preferences_token("other", &t, 20_000),
            Err(TokenProblem::Forged)
        );
        let later = t.replace(".20000.", ".20050.");
        assert_eq!(
            verify_preferences_token("key", &later, 20_050),
            Err(TokenProblem::Forged)
        );
        assert_eq!(
            verify_preferences_token("key", "x.y", 1),
            Err(TokenProblem::Forged)
        );
    }

    #[test]
    fn unsubscribe_round_trip() {
        let t = unsubscribe_token("key", "abc-123");
        assert_eq!(
            verify_unsubscribe_token("key", &t).as_deref(),
            Some("abc-123")
        );
        assert_eq!(verify_unsubscribe_token("other", &t), None);
        assert_eq!(verify_unsubscribe_token("key", "abc-123.forged"), None);
        assert_eq!(verify_unsubscribe_token("key", "nodot"), None);
    }

    #[test]
    fn feedback_and_voter_tokens_round_trip_and_refuse_forgeries() {
        let t = feedback_token("key", 42, "abc-123");
        assert_eq!(
            verify_feedback_token("key", &t),
            Some((42, "abc-123".to_string()))
        );
        assert_eq!(verify_feedback_token("other", &t), None);
        let other_digest = t.replacen("42.", "43.", 1);
        assert_eq!(verify_feedback_token("key", &other_digest), None);
        assert_eq!(verify_feedback_token("key", "42.abc-123.forged"), None);
        assert_eq!(verify_feedback_token("key", "x.y"), None);
        let (cookie, id) = new_voter_cookie("key");
        assert_eq!(verify_voter_cookie("key", &cookie), Some(id));
        assert_eq!(verify_voter_cookie("other", &cookie), None);
        assert_eq!(verify_voter_cookie("key", "short.mac"), None);
    }
}
