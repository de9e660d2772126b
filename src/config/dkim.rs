//! DKIM signing, parsed once at start from `dkim_domain`, `dkim_selector`
//! and `dkim_private_key_file` (all three or none): the key is read and
//! checked here, and every email is signed with [`Dkim::signing`].

use std::sync::Arc;

use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::HeaderName;

use super::{bad, SettingError};

/// The headers signed besides the body: the usual ones, the MIME ones (so
/// a changed Content-Type does not verify) and the list headers.
const SIGNED_HEADERS: [&str; 10] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// What a key that cannot be read is told.
const KEY_FORMATS: &str = "expected an RSA key as PKCS#1 PEM (BEGIN RSA PRIVATE KEY) or \
     PKCS#8 PEM (BEGIN PRIVATE KEY), or an Ed25519 key as PKCS#8 PEM or the base64 of its \
     32-byte seed; make one with `openssl genpkey -algorithm RSA -pkeyopt \
     rsa_keygen_bits:2048 -out dkim.pem` or `openssl genpkey -algorithm ed25519 -out dkim.pem`";

/// The DER of an Ed25519 PKCS#8 key (RFC 8410) up to its 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The signing domain and selector, and the checked key every email is
/// signed with.
#[derive(Clone, Debug)]
pub struct Dkim {
    pub domain: String,
    pub selector: String,
    /// The public key as the selector's DNS record gives it (`p=`).
    pub public_key: String,
    pub signing: Arc<DkimConfig>,
}

impl Dkim {
    /// From the three settings: none set is no signing, all three set reads
    /// the key file, anything in between is an error.
    pub(super) fn from_settings(
        domain: String,
        selector: String,
        key_file: String,
    ) -> Result<Option<Self>, SettingError> {
        match (domain, selector, key_file) {
            (d, s, f) if d.is_empty() && s.is_empty() && f.is_empty() => Ok(None),
            (d, s, f) if !d.is_empty() && !s.is_empty() && !f.is_empty() => {
                let pem = std::fs::read_to_string(&f)
                    .map_err(|e| bad("dkim_private_key_file", format!("cannot read {f}: {e}")))?;
                Self::parse(d, s, &pem)
                    .map(Some)
                    .map_err(|e| bad("dkim_private_key_file", e))
            }
            _ => Err(bad(
                "dkim_domain",
                "dkim_domain, dkim_selector and dkim_private_key_file go together",
            )),
        }
    }

    /// RSA keys in PKCS#1 or PKCS#8 PEM, Ed25519 keys in PKCS#8 PEM or as
    /// base64 of the 32-byte seed. Signs [`SIGNED_HEADERS`].
    fn parse(domain: String, selector: String, pem: &str) -> Result<Self, String> {
        let (key, algorithm) = signing_key(pem.trim())?;
        let public_key = public_key(&key, algorithm)?;
        let key =
            DkimSigningKey::new(&key, algorithm).map_err(|e| format!("{e}: {KEY_FORMATS}"))?;
        let headers = SIGNED_HEADERS
            .into_iter()
            .map(HeaderName::new_from_ascii_str)
            .collect();
        let canonical = DkimCanonicalization {
            header: DkimCanonicalizationType::Relaxed,
            body: DkimCanonicalizationType::Relaxed,
        };
        let signing = DkimConfig::new(selector.clone(), domain.clone(), key, headers, canonical);
        Ok(Self {
            domain,
            selector,
            public_key,
            signing: Arc::new(signing),
        })
    }
}

/// The key in the form lettre reads (PKCS#1 PEM for RSA, base64 seed for
/// Ed25519) and its algorithm.
fn signing_key(text: &str) -> Result<(String, DkimSigningAlgorithm), String> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    if text.contains("BEGIN RSA PRIVATE KEY") {
        return Ok((text.to_string(), DkimSigningAlgorithm::Rsa));
    }
    if !text.contains("BEGIN PRIVATE KEY") {
        return Ok((text.to_string(), DkimSigningAlgorithm::Ed25519));
    }
    if let Ok(rsa) = rsa::RsaPrivateKey::from_pkcs8_pem(text) {
        let pkcs1 = rsa
            .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
            .map_err(|e| format!("{e}: {KEY_FORMATS}"))?;
        return Ok((pkcs1.to_string(), DkimSigningAlgorithm::Rsa));
    }
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body.trim())
        .map_err(|_| format!("not a PEM key: {KEY_FORMATS}"))?;
    match der.strip_prefix(&ED25519_PKCS8_PREFIX[..]) {
        Some(seed) if seed.len() == 32 => Ok((
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, seed),
            DkimSigningAlgorithm::Ed25519,
        )),
        _ => Err(format!("neither an RSA nor an Ed25519 key: {KEY_FORMATS}")),
    }
}

/// The base64 `p=` value of the selector's record: the RSA key's
/// SubjectPublicKeyInfo, or the raw 32-byte Ed25519 public key (RFC 8463).
fn public_key(key: &str, algorithm: DkimSigningAlgorithm) -> Result<String, String> {
    use base64::Engine;
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::EncodePublicKey;
    let b64 = base64::engine::general_purpose::STANDARD;
    let unreadable = |e: String| format!("{e}: {KEY_FORMATS}");
    match algorithm {
        DkimSigningAlgorithm::Rsa => {
            let private =
                rsa::RsaPrivateKey::from_pkcs1_pem(key).map_err(|e| unreadable(e.to_string()))?;
            let der = private
                .to_public_key()
                .to_public_key_der()
                .map_err(|e| unreadable(e.to_string()))?;
            Ok(b64.encode(der.as_bytes()))
        }
        DkimSigningAlgorithm::Ed25519 => {
            let seed: [u8; 32] = b64
                .decode(key.trim())
                .ok()
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| unreadable("not a 32-byte Ed25519 seed".into()))?;
            let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
            Ok(b64.encode(signing.verifying_key().to_bytes()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_key_names_the_formats_and_the_openssl_command() {
        let e = Dkim::parse("d.example".into(), "s".into(), "nonsense").unwrap_err();
        assert!(e.contains("PKCS#8") && e.contains("openssl genpkey"), "{e}");
        let pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----";
        let e = Dkim::parse("d.example".into(), "s".into(), pem).unwrap_err();
        assert!(e.contains("openssl genpkey"), "{e}");
    }
}
