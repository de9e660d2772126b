//! A subscriber's optional display name.

/// At most 100 characters, no control characters (so no CR/LF reaches a
/// header), trimmed. Empty means no name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriberName(String);

impl SubscriberName {
    pub fn parse(raw: &str) -> Result<Option<Self>, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        if trimmed.chars().count() > 100 {
            return Err("is longer than 100 characters".into());
        }
        if trimmed.chars().any(char::is_control) {
            return Err("must not contain control characters or line breaks".into());
        }
        Ok(Some(Self(trimmed.to_string())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(SubscriberName::parse("  ").unwrap(), None);
        assert_eq!(
            SubscriberName::parse(" Zoë ").unwrap().unwrap().as_str(),
            "Zoë"
        );
        assert!(SubscriberName::parse("a\r\nBcc: x").is_err());
        assert!(SubscriberName::parse(&"x".repeat(101)).is_err());
        assert!(SubscriberName::parse(&"é".repeat(100)).is_ok());
    }
}
