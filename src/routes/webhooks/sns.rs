//! Amazon SNS, how SES's bounce and complaint notifications reach an HTTPS
//! endpoint: each message is signed (RSA PKCS#1 v1.5, SHA-1 for
//! `SignatureVersion` 1, SHA-256 for 2) over its fields in a fixed order,
//! with the key of the X.509 certificate at `SigningCertURL`.
//!
//! Tidings fetches nothing: the certificates live in the folder named by
//! `webhook_secrets` (`ses=FOLDER`), each under the file name its URL ends
//! with (`SimpleNotificationService-….pem`), so the endpoint cannot be
//! made to fetch a URL and a certificate is trusted because an operator
//! put it there. The URL must still be an SNS one (https, `sns.REGION.
//! amazonaws.com`), so a message naming another host is refused before any
//! file is looked up.

use std::path::Path;

use base64::Engine;
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use serde::Deserialize;
use x509_cert::der::{DecodePem, Encode};

/// An SNS message as it is POSTed.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "MessageId")]
    message_id: String,
    #[serde(rename = "TopicArn")]
    pub topic_arn: String,
    #[serde(rename = "Message")]
    pub message: String,
    #[serde(rename = "Timestamp")]
    timestamp: String,
    #[serde(rename = "Subject")]
    subject: Option<String>,
    #[serde(rename = "SubscribeURL")]
    pub subscribe_url: Option<String>,
    #[serde(rename = "Token")]
    token: Option<String>,
    #[serde(rename = "SignatureVersion")]
    signature_version: String,
    #[serde(rename = "Signature")]
    signature: String,
    #[serde(rename = "SigningCertURL")]
    signing_cert_url: String,
}

impl Envelope {
    /// The text SNS signs: `Name\nvalue\n` for each signed field, in
    /// order; a notification's Subject only when it has one.
    fn string_to_sign(&self) -> Result<String, String> {
        let fields: Vec<(&str, Option<&str>)> = match self.kind.as_str() {
            "Notification" => vec![
                ("Message", Some(&self.message)),
                ("MessageId", Some(&self.message_id)),
                ("Subject", self.subject.as_deref()),
                ("Timestamp", Some(&self.timestamp)),
                ("TopicArn", Some(&self.topic_arn)),
                ("Type", Some(&self.kind)),
            ],
            "SubscriptionConfirmation" | "UnsubscribeConfirmation" => vec![
                ("Message", Some(&self.message)),
                ("MessageId", Some(&self.message_id)),
                ("SubscribeURL", self.subscribe_url.as_deref()),
                ("Timestamp", Some(&self.timestamp)),
                ("Token", self.token.as_deref()),
                ("TopicArn", Some(&self.topic_arn)),
                ("Type", Some(&self.kind)),
            ],
            other => return Err(format!("unknown SNS message type {other:?}")),
        };
        Ok(fields
            .into_iter()
            .filter_map(|(name, value)| value.map(|v| format!("{name}\n{v}\n")))
            .collect())
    }
}

/// Checks `envelope`'s signature with the certificate its URL names, from
/// `folder`; `now` (Unix seconds) must be within the certificate's
/// validity. The error says why, for the 401 and the log.
pub fn verify(envelope: &Envelope, folder: &Path, now: i64) -> Result<(), String> {
    let name = certificate_name(&envelope.signing_cert_url)?;
    let pem = std::fs::read(folder.join(&name)).map_err(|_| {
        format!(
            "no SNS signing certificate {name} in the ses folder: download {} there",
            envelope.signing_cert_url
        )
    })?;
    let cert = x509_cert::Certificate::from_pem(&pem)
        .map_err(|e| format!("{name} is not a PEM certificate: {e}"))?;
    let validity = &cert.tbs_certificate.validity;
    let within = |t: &x509_cert::time::Time| t.to_unix_duration().as_secs() as i64;
    if now < within(&validity.not_before) || now > within(&validity.not_after) {
        return Err(format!(
            "the SNS signing certificate {name} is not valid now"
        ));
    }
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| format!("{name}: {e}"))?;
    let key = rsa::RsaPublicKey::from_public_key_der(&spki)
        .map_err(|_| format!("{name} does not hold an RSA key"))?;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(envelope.signature.trim())
        .ok()
        .and_then(|b| rsa::pkcs1v15::Signature::try_from(b.as_slice()).ok())
        .ok_or("the Signature is not base64")?;
    let signed = envelope.string_to_sign()?;
    let checked = match envelope.signature_version.as_str() {
        "1" => rsa::pkcs1v15::VerifyingKey::<sha1::Sha1>::new(key)
            .verify(signed.as_bytes(), &signature),
        "2" => rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key)
            .verify(signed.as_bytes(), &signature),
        other => return Err(format!("unknown SignatureVersion {other:?}")),
    };
    checked.map_err(|_| "bad signature".to_string())
}

/// The file name of an SNS signing certificate's URL; an error for any URL
/// that is not one (another scheme, host, port, a query, a path with more
/// than a file name).
fn certificate_name(url: &str) -> Result<String, String> {
    let refuse = || format!("SigningCertURL {url:?} is not an SNS certificate URL");
    let parsed = url::Url::parse(url).map_err(|_| refuse())?;
    let host = parsed.host_str().unwrap_or_default();
    let sns_host = host.starts_with("sns.")
        && (host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn"));
    let name = parsed.path().strip_prefix('/').unwrap_or_default();
    let file_name = name.starts_with("SimpleNotificationService-")
        && name.ends_with(".pem")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if parsed.scheme() != "https"
        || !sns_host
        || parsed.port().is_some()
        || parsed.query().is_some()
        || !parsed.username().is_empty()
        || !file_name
    {
        return Err(refuse());
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sns_certificate_urls_name_a_file() {
        assert_eq!(
            certificate_name(
                "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem"
            )
            .as_deref(),
            Ok("SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem")
        );
        for bad in [
            "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-a.pem",
            "https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-a.pem",
            "https://evil.example/SimpleNotificationService-a.pem",
            "https://sns.us-east-1.amazonaws.com/../etc/SimpleNotificationService-a.pem",
            "https://sns.us-east-1.amazonaws.com/x/SimpleNotificationService-a.pem",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-a.pem?x=1",
            "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-a.pem",
            "https://sns.us-east-1.amazonaws.com/other.pem",
            "not a url",
        ] {
            assert!(certificate_name(bad).is_err(), "{bad}");
        }
    }
}
