//! The service's vocabulary: statuses, consent events and mail kinds as
//! enums, each stored as the same lower-case TEXT it always was (no
//! migration), the way crates.io's `pg_enum!` and lemmy's `DbEnum` keep
//! theirs. One macro gives every enum its text, parsing, display, serde
//! (the same strings, so JSON and templates see no change) and a ToSql /
//! FromSql pair generic over the backend, so it works on PostgreSQL, SQLite
//! and the multi-backend connection alike. A stored string that is not one
//! of an enum's is a deserialization error, never a panic.

use std::fmt;

/// A string that is none of an enum's values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownValue {
    /// The enum it was read as.
    pub of: &'static str,
    pub value: String,
}

impl fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not a {}", self.value, self.of)
    }
}

impl std::error::Error for UnknownValue {}

/// An enum stored as TEXT: `Variant = "text"` per value.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];
            /// Every value's text, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The text stored, shown and sent for this value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            pub fn parse(text: &str) -> Result<Self, UnknownValue> {
                text.parse()
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownValue;
            fn from_str(text: &str) -> Result<Self, UnknownValue> {
                match text {
                    $($text => Ok(Self::$variant),)+
                    other => Err(UnknownValue {
                        of: stringify!($name),
                        value: other.to_string(),
                    }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl<DB> diesel::serialize::ToSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
        {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, DB>,
            ) -> diesel::serialize::Result {
                self.as_str().to_sql(out)
            }
        }

        impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                let text = String::from_sql(bytes)?;
                Ok(text.parse::<Self>()?)
            }
        }
    };
}

text_enum! {
    /// A reader's standing (DESIGN.md). `Erased` marks a GDPR-erased
    /// skeleton.
    pub enum SubscriberStatus {
        Pending = "pending",
        Confirmed = "confirmed",
        Unsubscribed = "unsubscribed",
        Bounced = "bounced",
        Erased = "erased",
    }
}

text_enum! {
    /// What a consent log row records (DESIGN.md invariant 1).
    pub enum ConsentEvent {
        Requested = "requested",
        Confirmed = "confirmed",
        Unsubscribed = "unsubscribed",
        Bounced = "bounced",
        /// A spam complaint (an ARF report or a provider's event): the
        /// reader is unsubscribed and suppressed.
        Complained = "complained",
        Imported = "imported",
        Erased = "erased",
        /// The reader changed their own settings on /preferences (pause,
        /// frequency, sections, name, a new address asked for).
        Preferences = "preferences",
    }
}

text_enum! {
    /// How often a reader wants the digest: every one, or at most one in
    /// seven days.
    pub enum Frequency {
        Every = "every",
        Weekly = "weekly",
    }
}

text_enum! {
    /// A digest's state (DESIGN.md). It is `Sending` from its fan-out until
    /// every chunk is done (`Sent`); `Paused` (by an operator, or by the
    /// breaker after repeated refusals of the sender or content) stops new
    /// sends until resumed; `Cancelled` stops it for good.
    pub enum DigestStatus {
        Draft = "draft",
        Scheduled = "scheduled",
        Sending = "sending",
        Paused = "paused",
        Cancelled = "cancelled",
        Sent = "sent",
    }
}

text_enum! {
    /// An outbox row's state: `Sending` while a worker holds its lease.
    pub enum WorkStatus {
        Queued = "queued",
        Sending = "sending",
        Sent = "sent",
        Failed = "failed",
    }
}

text_enum! {
    /// A delivery's state: queued at fan-out, settled once after the send
    /// (`Skipped`: its reader was no longer confirmed).
    pub enum DeliveryStatus {
        Queued = "queued",
        Sent = "sent",
        Failed = "failed",
        Skipped = "skipped",
    }
}

text_enum! {
    /// Which email an outbox row sends.
    pub enum MailKind {
        Confirm = "confirm",
        /// After a reader confirmed, when `welcome_email` is on.
        Welcome = "welcome",
    }
}

text_enum! {
    /// Why an address hash is on the suppression list.
    pub enum SuppressionReason {
        Erased = "erased",
        /// The reader marked an email as spam: never mailed again by import
        /// or API signup.
        Complained = "complained",
    }
}

text_enum! {
    /// What an inbound report said about an email (DESIGN.md): the mailbox
    /// or domain does not exist (`Hard`), a failure that may pass
    /// (`Soft`), or the reader marked it as spam (`Complaint`).
    pub enum BounceKind {
        Hard = "hard",
        Soft = "soft",
        Complaint = "complaint",
    }
}

text_enum! {
    /// How a bounce came in: the built-in SMTP/LMTP receiver, `tidings
    /// inbound` on a pipe, or a provider's webhook.
    pub enum BounceSource {
        Smtp = "smtp",
        Pipe = "pipe",
        Webhook = "webhook",
    }
}

text_enum! {
    /// A reader's answer to "Enjoyed this article?" / "Useful?".
    pub enum Vote {
        Yes = "yes",
        No = "no",
    }
}

text_enum! {
    /// Where a vote was cast: the widget on the site (one per browser) or
    /// a digest's per-story links (one per reader).
    pub enum VoteSource {
        Site = "site",
        Digest = "digest",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_through_parse_display_and_serde() {
        for s in SubscriberStatus::ALL {
            assert_eq!(SubscriberStatus::parse(s.as_str()), Ok(*s));
            assert_eq!(s.to_string(), s.as_str());
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<SubscriberStatus>(&json).unwrap(), *s);
        }
        assert_eq!(DigestStatus::Paused.as_str(), "paused");
        assert_eq!(
            DeliveryStatus::NAMES,
            ["queued", "sent", "failed", "skipped"]
        );
        assert_eq!(MailKind::Confirm.to_string(), "confirm");
    }

    #[test]
    fn unknown_text_is_an_error() {
        let err = WorkStatus::parse("Queued").unwrap_err();
        assert_eq!(err.to_string(), "\"Queued\" is not a WorkStatus");
        assert!(serde_json::from_str::<ConsentEvent>("\"nope\"").is_err());
    }
}
