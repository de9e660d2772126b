//! A subscriber's address, parsed once at the edge.

use std::fmt;

/// A syntactically valid address, at most 254 characters, trimmed, with the
/// domain mapped by UTS-46 (IDNA: case folded, full-width and other
/// compatibility forms mapped, Unicode labels in punycode) and stored in
/// that ASCII form: `a@ＥＸＡＭＰＬＥ.com` and `a@example.com` are one reader,
/// and `leser@bücher.example` is kept as `leser@xn--bcher-kva.example`,
/// which every SMTP server accepts (a Unicode domain needs SMTPUTF8). The
/// local part keeps its case, as RFC 5321 allows servers to care;
/// uniqueness uses [`SubscriberEmail::key`]. Signups, imports and the API
/// all parse with this one function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriberEmail(String);

impl SubscriberEmail {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("is required".into());
        }
        if trimmed.chars().count() > 254 {
            return Err("is longer than 254 characters".into());
        }
        if trimmed.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("must not contain spaces or control characters".into());
        }
        let (local, domain) = trimmed
            .rsplit_once('@')
            .ok_or_else(|| "is not a valid email address".to_string())?;
        let domain = ascii_domain(domain)?;
        let address = format!("{local}@{domain}");
        if address.len() > 254 {
            return Err("is longer than 254 characters".into());
        }
        let parsed = email_address::EmailAddress::parse_with_options(
            &address,
            email_address::Options::default().without_display_text(),
        )
        .map_err(|_| "is not a valid email address".to_string())?;
        // The RFC allows quoted local parts with odd characters; a mailing list
        // does not need them and they complicate every consumer downstream.
        if parsed.local_part().starts_with('"') {
            return Err("is not a valid email address".into());
        }
        Ok(Self(address))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-insensitive identity of the address (unique in the database).
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }

    /// Every key this address may have been recorded under: [`Self::key`]
    /// and, for an internationalised domain, the key with the domain in
    /// Unicode, as addresses were kept before domains were stored in ASCII
    /// (a suppression hash made then must still hold).
    pub fn keys(&self) -> Vec<String> {
        let key = self.key();
        let legacy = key
            .rsplit_once('@')
            .filter(|(_, d)| d.contains("xn--"))
            .and_then(|(local, domain)| {
                let (unicode, result) = idna::domain_to_unicode(domain);
                (result.is_ok() && unicode != domain).then(|| format!("{local}@{unicode}"))
            });
        std::iter::once(key).chain(legacy).collect()
    }
}

/// The domain as UTS-46 maps it, in ASCII, checked against the rules for
/// host names (letters, digits and hyphens; labels of at most 63 octets).
fn ascii_domain(domain: &str) -> Result<String, String> {
    const NO_DOT: &str = "needs a domain with a dot, like example.com";
    if domain.is_empty() {
        return Err("is not a valid email address".into());
    }
    if domain.starts_with('[') {
        return Err(NO_DOT.into());
    }
    let ascii = idna::domain_to_ascii_strict(domain)
        .map_err(|_| "has a domain that is not a valid domain name".to_string())?;
    if !ascii.contains('.') || ascii.ends_with('.') {
        return Err(NO_DOT.into());
    }
    Ok(ascii)
}

impl AsRef<str> for SubscriberEmail {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubscriberEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Masks an address for logs: `j***@e***.com`.
pub fn mask(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let first = |s: &str| s.chars().next().map(String::from).unwrap_or_default();
            let tld = domain.rsplit_once('.').map(|(_, t)| t).unwrap_or("");
            format!("{}***@{}***.{}", first(local), first(domain), tld)
        }
        None => "***".into(),
    }
}

/// Masks every address inside free text (an SMTP server's reply often
/// quotes the recipient: `550 5.1.1 <ann@example.com>: User unknown`).
/// An address here is a run of characters that may appear in one, with an
/// `@` that has something on both sides.
pub fn mask_in(text: &str) -> String {
    let part = |c: char| c.is_alphanumeric() || "._%+-@!#$&'*/=?^`{|}~".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(part) {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(|c: char| !part(c)).unwrap_or(rest.len());
        let word = &rest[..end];
        match word.split_once('@') {
            Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {
                out.push_str(&mask(word))
            }
            _ => out.push_str(word),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_addresses_inside_text() {
        assert_eq!(
            mask_in("550 5.1.1 <Ann.Lee@example.com>: Recipient address rejected"),
            "550 5.1.1 <A***@e***.com>: Recipient address rejected"
        );
        assert_eq!(
            mask_in("a@b.org, c@d.net; no address @ here"),
            "a***@b***.org, c***@d***.net; no address @ here"
        );
        assert_eq!(mask_in("451 4.3.0 try later"), "451 4.3.0 try later");
        assert_eq!(mask_in("Zoë@exämple.de ok"), "Z***@e***.de ok");
    }

    #[test]
    fn normalises() {
        let e = SubscriberEmail::parse("  Ann.Lee@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "Ann.Lee@example.com");
        assert_eq!(e.key(), "ann.lee@example.com");
    }

    #[test]
    fn internationalised_domain_is_kept_in_ascii() {
        let e = SubscriberEmail::parse("reader@Bücher.example").unwrap();
        assert_eq!(e.as_str(), "reader@xn--bcher-kva.example");
        assert_eq!(
            e.keys(),
            ["reader@xn--bcher-kva.example", "reader@bücher.example"]
        );
        let same = SubscriberEmail::parse("reader@xn--BCHER-kva.example").unwrap();
        assert_eq!(same, e);
        assert_eq!(
            SubscriberEmail::parse("ann@example.com").unwrap().keys(),
            ["ann@example.com"]
        );
    }

    #[test]
    fn uts46_maps_full_width_and_other_compatibility_forms() {
        for spelling in [
            "a@ｅｘａｍｐｌｅ.com",
            "a@ＥＸＡＭＰＬＥ．ＣＯＭ",
            "a@example。com",
            "a@EXAMPLE.com",
            "a@e\u{ad}xample.com",
        ] {
            let e = SubscriberEmail::parse(spelling).unwrap_or_else(|r| panic!("{spelling}: {r}"));
            assert_eq!(e.as_str(), "a@example.com", "{spelling}");
        }
        // The local part is not a domain: nothing there is mapped.
        assert_ne!(
            SubscriberEmail::parse("Ａnn@example.com").unwrap().key(),
            "ann@example.com"
        );
    }

    #[test]
    fn rejects_domains_uts46_refuses() {
        for bad in [
            "a@exa_mple.com",
            "a@-example.com",
            "a@example.com.",
            "a@[127.0.0.1]",
            "a@",
            "a@xn--zz.example",
            &format!("a@{}.com", "x".repeat(64)),
        ] {
            assert!(SubscriberEmail::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "plain",
            "a@b",
            "a b@example.com",
            "a@example.com\r\nBcc: x@y.z",
            "<a@example.com>",
            "Name <a@example.com>",
        ] {
            assert!(SubscriberEmail::parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(SubscriberEmail::parse(&long).is_err());
    }

    #[test]
    fn masks() {
        assert_eq!(mask("ann@example.com"), "a***@e***.com");
        assert!(!mask("ann@example.com").contains("ann"));
    }
}
