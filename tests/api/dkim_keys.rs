//! DKIM keys as openssl makes them: RSA in PKCS#1 and PKCS#8 PEM, Ed25519
//! in PKCS#8 PEM; every email signed over the headers a reader's client
//! shows or acts on, the MIME ones included; an unreadable key stops
//! start-up with one line naming the formats and the command to make one.

use crate::helpers::{spawn_app_with, tidings};

fn fixture(name: &str) -> String {
    format!("{}/tests/api/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

const SIGNED: [&str; 10] = [
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
];

async fn signed_confirmation(key: &str) -> String {
    let key = fixture(key);
    let app = spawn_app_with(|s| {
        s.insert("dkim_domain".into(), "tidings.test".into());
        s.insert("dkim_selector".into(), "mail".into());
        s.insert("dkim_private_key_file".into(), key);
    })
    .await;
    app.signup("signed@example.com").await;
    let mail = app.wait_mail_to("signed@example.com", 1).await;
    let sig = mail.header("DKIM-Signature").expect("DKIM-Signature");
    sig.split_whitespace().collect()
}

fn signed_headers(sig: &str) -> Vec<String> {
    sig.split(';')
        .find_map(|p| p.strip_prefix("h="))
        .unwrap()
        .to_ascii_lowercase()
        .split(':')
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn rsa_pkcs8_pkcs1_and_ed25519_pem_keys_sign_the_mime_headers_too() {
    for (key, algorithm) in [
        ("dkim_rsa_pkcs8.pem", "a=rsa-sha256"),
        ("dkim_rsa_pkcs1.pem", "a=rsa-sha256"),
        ("dkim_ed25519.pem", "a=ed25519-sha256"),
    ] {
        let sig = signed_confirmation(key).await;
        assert!(
            sig.contains(algorithm) && sig.contains("d=tidings.test"),
            "{key}: {sig}"
        );
        let signed = signed_headers(&sig);
        for h in [
            "from",
            "to",
            "subject",
            "date",
            "message-id",
            "mime-version",
            "content-type",
        ] {
            assert!(
                signed.iter().any(|x| x == h),
                "{key}: {h} not in {signed:?}"
            );
        }
        assert!(SIGNED.iter().all(|h| h.len() > 1));
    }
}

#[test]
fn an_unreadable_key_is_one_line_naming_the_formats_and_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("dkim.pem");
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let out = tidings()
        .current_dir(dir.path())
        .env("TIDINGS_DKIM_DOMAIN", "tidings.test")
        .env("TIDINGS_DKIM_SELECTOR", "mail")
        .env("TIDINGS_DKIM_PRIVATE_KEY_FILE", &key)
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: setting dkim_private_key_file:")
            && stderr.contains("PKCS#8")
            && stderr.contains("openssl genpkey"),
        "{stderr}"
    );
}

/// Relaxed canonicalization (RFC 6376 3.4.2): runs of whitespace as one
/// space, trimmed.
fn relaxed(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether the signature holds for the mail as given (RSA-SHA256,
/// relaxed/relaxed): the body hash and the signature over the signed
/// headers, verified with the key's public half.
fn verifies(headers: &[(String, String)], body: &str, public: &rsa::RsaPublicKey) -> bool {
    use sha2::{Digest, Sha256};
    let find = |name: &str| {
        headers
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let sig = relaxed(&find("DKIM-Signature").unwrap());
    let tag = |t: &str| {
        sig.split(';')
            .find_map(|p| p.trim().strip_prefix(&format!("{t}=")))
            .unwrap()
            .replace(' ', "")
    };
    let mut lines: Vec<String> = body
        .split("\r\n")
        .map(|l| {
            let mut out = String::new();
            for (i, word) in l.split([' ', '\t']).enumerate() {
                if i > 0 && !out.ends_with(' ') {
                    out.push(' ');
                }
                out.push_str(word);
            }
            out.trim_end().to_string()
        })
        .collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let canonical_body: String = lines.iter().map(|l| format!("{l}\r\n")).collect();
    let bh = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        Sha256::digest(canonical_body.as_bytes()),
    );
    if bh != tag("bh") {
        return false;
    }
    let mut signed = String::new();
    for name in tag("h").split(':') {
        if let Some(v) = find(name) {
            signed.push_str(&format!(
                "{}:{}\r\n",
                name.to_ascii_lowercase(),
                relaxed(&v)
            ));
        }
    }
    let without_b: Vec<String> = sig
        .split(';')
        .map(|p| match p.trim_start().strip_prefix("b=") {
            Some(_) => format!("{}b=", &p[..p.len() - p.trim_start().len()]),
            None => p.to_string(),
        })
        .collect();
    signed.push_str(&format!("dkim-signature:{}", without_b.join(";")));
    let b = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, tag("b")).unwrap();
    public
        .verify(
            rsa::Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(signed.as_bytes()),
            &b,
        )
        .is_ok()
}

#[tokio::test]
async fn a_changed_content_type_breaks_the_signature() {
    use rsa::pkcs8::DecodePrivateKey;
    let pem = std::fs::read_to_string(fixture("dkim_rsa_pkcs8.pem")).unwrap();
    let public = rsa::RsaPrivateKey::from_pkcs8_pem(&pem)
        .unwrap()
        .to_public_key();
    let key = fixture("dkim_rsa_pkcs8.pem");
    let app = spawn_app_with(|s| {
        s.insert("dkim_domain".into(), "tidings.test".into());
        s.insert("dkim_selector".into(), "mail".into());
        s.insert("dkim_private_key_file".into(), key);
    })
    .await;
    app.signup("signed@example.com").await;
    let mail = app.wait_mail_to("signed@example.com", 1).await;
    let headers = mail.all_headers();

    assert!(
        verifies(&headers, mail.raw_body(), &public),
        "{}",
        mail.header_section()
    );
    let tampered: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| match n.eq_ignore_ascii_case("Content-Type") {
            true => (
                n.clone(),
                v.replace("multipart/alternative", "multipart/mixed"),
            ),
            false => (n.clone(), v.clone()),
        })
        .collect();
    assert_ne!(tampered, headers);
    assert!(!verifies(&tampered, mail.raw_body(), &public));
}
