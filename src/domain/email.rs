//! A subscriber's address, parsed once at the edge.

use std::fmt;

/// A syntactically valid address, at most 254 characters, trimmed, with the
/// domain lower-cased (the local part keeps its case, as RFC 5321 allows
/// servers to care; uniqueness uses [`SubscriberEmail::key`]).
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
        let parsed = email_address::EmailAddress::parse_with_options(
            trimmed,
            email_address::Options::default().without_display_text(),
        )
        .map_err(|_| "is not a valid email address".to_string())?;
        let local = parsed.local_part();
        let domain = parsed.domain();
        if domain.starts_with('[') || !domain.contains('.') {
            return Err("needs a domain with a dot, like example.com".into());
        }
        // The RFC allows quoted local parts with odd characters; a mailing list
        // does not need them and they complicate every consumer downstream.
        if local.starts_with('"') {
            return Err("is not a valid email address".into());
        }
        Ok(Self(format!("{local}@{}", domain.to_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-insensitive identity of the address (unique in the database).
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
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
    fn internationalised_domain_is_accepted() {
        let e = SubscriberEmail::parse("reader@Bücher.example").unwrap();
        assert_eq!(e.as_str(), "reader@bücher.example");
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
