//! VERP tags and mailto unsubscribe tokens: short, signed names for one
//! email and its reader that ride in an address's local part.
//!
//! With `bounce_address = bounces@news.example`, a digest to a reader
//! leaves with the envelope sender `bounces+d42.<reader>.<mac>@news.example`,
//! so the bounce that comes back names its email and reader even when the
//! report itself names no recipient, or an alias. The same reader's
//! List-Unsubscribe mailto is `unsubscribe+<reader>.<mac>@news.example`.
//!
//! An email is named by what stays true whatever the delivery bookkeeping
//! does: a digest by (digest id, reader), a confirmation by (outbox row,
//! reader). The reader's UUID is written in 26 characters of base32 and
//! the MAC (HMAC-SHA256 under `secret_key`, cut to 48 bits) in 10, all
//! lower case (some MTAs fold local parts), so a tag fits in the 64
//! octets of a local part with room for the base address's.

use super::token::{constant_time_eq, mac_hex};

/// The delimiter between the base local part and the tag (Postfix's
/// `recipient_delimiter`, Exim's `local_part_suffix`).
pub const DELIMITER: char = '+';
/// The local part of the per-reader mailto unsubscribe address.
pub const UNSUBSCRIBE_LOCAL: &str = "unsubscribe";

/// Which email a bounce is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Email {
    Digest(i64),
    /// A confirmation email: its outbox row.
    Confirmation(i64),
}

/// A verified VERP tag: the email and its reader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag {
    pub email: Email,
    pub subscriber_id: String,
}

impl Tag {
    /// The tag's text, or `None` when the reader's id is not a UUID.
    pub fn encode(&self, key: &str) -> Option<String> {
        let reader = uuid_base32(&self.subscriber_id)?;
        let head = match self.email {
            Email::Digest(id) => format!("d{id}"),
            Email::Confirmation(id) => format!("c{id}"),
        };
        let mac = short_mac(key, &format!("verp:{head}:{reader}"));
        Some(format!("{head}.{reader}.{mac}"))
    }

    /// The tag inside a local part's suffix, if it is genuine.
    pub fn verify(key: &str, text: &str) -> Option<Tag> {
        let text = text.to_ascii_lowercase();
        let mut parts = text.split('.');
        let (head, reader, mac) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || head.len() > 20 {
            return None;
        }
        let expected = short_mac(key, &format!("verp:{head}:{reader}"));
        if !constant_time_eq(expected.as_bytes(), mac.as_bytes()) {
            return None;
        }
        let id: i64 = head.get(1..)?.parse().ok()?;
        let email = match head.as_bytes().first()? {
            b'd' => Email::Digest(id),
            b'c' => Email::Confirmation(id),
            _ => return None,
        };
        Some(Tag {
            email,
            subscriber_id: base32_uuid(reader)?,
        })
    }
}

/// The mailto unsubscribe token of a reader (`<reader>.<mac>`).
pub fn unsubscribe_token(key: &str, subscriber_id: &str) -> Option<String> {
    let reader = uuid_base32(subscriber_id)?;
    let mac = short_mac(key, &format!("mailto-unsubscribe:{reader}"));
    Some(format!("{reader}.{mac}"))
}

/// The reader a genuine mailto unsubscribe token names.
pub fn verify_unsubscribe_token(key: &str, token: &str) -> Option<String> {
    let token = token.to_ascii_lowercase();
    let (reader, mac) = token.split_once('.')?;
    let expected = short_mac(key, &format!("mailto-unsubscribe:{reader}"));
    constant_time_eq(expected.as_bytes(), mac.as_bytes())
        .then(|| base32_uuid(reader))
        .flatten()
}

/// An address of ours, read back: the base local part's tag, or the
/// unsubscribe token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ours {
    Bounce(Tag),
    Unsubscribe(String),
}

/// What `address` (any case) says, when it is a tagged address at
/// `domain` whose tag is genuine: `bounce_local+TAG@domain` or
/// `unsubscribe+TOKEN@domain`.
pub fn read_address(key: &str, bounce_local: &str, domain: &str, address: &str) -> Option<Ours> {
    let address = address.trim().trim_matches(|c| c == '<' || c == '>');
    let (local, at) = address.rsplit_once('@')?;
    if !at.eq_ignore_ascii_case(domain) {
        return None;
    }
    let (base, suffix) = local.split_once(DELIMITER)?;
    if base.eq_ignore_ascii_case(bounce_local) {
        return Tag::verify(key, suffix).map(Ours::Bounce);
    }
    if base.eq_ignore_ascii_case(UNSUBSCRIBE_LOCAL) {
        return verify_unsubscribe_token(key, suffix).map(Ours::Unsubscribe);
    }
    None
}

fn short_mac(key: &str, message: &str) -> String {
    // 6 bytes of the hex MAC's 32: 48 bits, 10 base32 characters.
    let hex = mac_hex(key, message);
    let bytes: Vec<u8> = (0..6)
        .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    base32(&bytes)
}

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// RFC 4648 base32, lower case, no padding.
fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn unbase32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let value = ALPHABET.iter().position(|&a| a == c)? as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
        buffer &= (1 << bits) - 1;
    }
    Some(out)
}

fn uuid_base32(id: &str) -> Option<String> {
    uuid::Uuid::try_parse(id).ok().map(|u| base32(u.as_bytes()))
}

fn base32_uuid(text: &str) -> Option<String> {
    if text.len() != 26 {
        return None;
    }
    let bytes = unbase32(text)?;
    uuid::Uuid::from_slice(&bytes).ok().map(|u| u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const READER: &str = "0190b3a2-7c4e-7d1a-9f00-123456789abc";

    #[test]
    fn tags_round_trip_and_refuse_forgeries() {
        let tag = Tag {
            email: Email::Digest(42),
            subscriber_id: READER.into(),
        };
        let text = tag.encode("key").unwrap();
        assert!(text.starts_with("d42."), "{text}");
        assert_eq!(text.len(), 4 + 26 + 1 + 10);
        assert_eq!(Tag::verify("key", &text), Some(tag.clone()));
        assert_eq!(Tag::verify("key", &text.to_uppercase()), Some(tag));
        assert_eq!(Tag::verify("other", &text), None);
        let forged = text.replacen("d42", "d43", 1);
        assert_eq!(Tag::verify("key", &forged), None);
        assert_eq!(Tag::verify("key", "d1.x.y"), None);
        let c = Tag {
            email: Email::Confirmation(7),
            subscriber_id: READER.into(),
        };
        assert_eq!(Tag::verify("key", &c.encode("key").unwrap()), Some(c));
    }

    #[test]
    fn addresses_are_read_back() {
        let tag = Tag {
            email: Email::Digest(5),
            subscriber_id: READER.into(),
        };
        let addr = format!("bounces+{}@News.Example", tag.encode("k").unwrap());
        assert_eq!(
            read_address("k", "bounces", "news.example", &addr),
            Some(Ours::Bounce(tag))
        );
        let token = unsubscribe_token("k", READER).unwrap();
        let mailto = format!("<Unsubscribe+{token}@news.example>");
        assert_eq!(
            read_address("k", "bounces", "news.example", &mailto),
            Some(Ours::Unsubscribe(READER.into()))
        );
        assert_eq!(read_address("k", "bounces", "other.example", &mailto), None);
        assert_eq!(read_address("k2", "bounces", "news.example", &mailto), None);
        assert_eq!(unsubscribe_token("k", "not-a-uuid"), None);
    }

    #[test]
    fn base32_round_trips() {
        for n in 0..20u8 {
            let bytes: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(unbase32(&base32(&bytes)).unwrap(), bytes);
        }
    }
}
