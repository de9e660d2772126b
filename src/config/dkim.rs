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

/// The headers signed besides the body: the usual ones and the list headers.
const SIGNED_HEADERS: [&str; 8] = [
    "From",
    "Subject",
    "To",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Id",
];

/// The signing domain and selector, and the checked key every email is
/// signed with.
#[derive(Clone, Debug)]
pub struct Dkim {
    pub domain: String,
    pub selector: String,
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

    /// RSA keys in PKCS#1 PEM, Ed25519 keys as base64 of the 32-byte seed.
    /// Signs the list headers too.
    fn parse(domain: String, selector: String, pem: &str) -> Result<Self, String> {
        let pem = pem.trim();
        let algorithm = if pem.contains("BEGIN RSA PRIVATE KEY") {
            DkimSigningAlgorithm::Rsa
        } else {
            DkimSigningAlgorithm::Ed25519
        };
        let key = DkimSigningKey::new(pem, algorithm)
            .map_err(|e| format!("not a PKCS#1 RSA PEM or base64 Ed25519 key: {e}"))?;
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
            signing: Arc::new(signing),
        })
    }
}
