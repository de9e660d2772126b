//! Settings: an optional TOML file (`--config FILE` or `TIDINGS_CONFIG`) whose
//! every key is overridden by the environment variable `TIDINGS_<KEY>`.
//!
//! Everything is validated once, here; a bad value becomes one error line that
//! names the key, e.g. `setting database_url: unsupported scheme "nonsense"`.
//! When several are bad, the first in the list below is reported.
//!
//! The settings (the README has the full table; defaults in parentheses):
//! - `listen` (default 127.0.0.1:8080): `HOST:PORT` to bind.
//! - `base_url` (default `http://` and `listen`): the public URL in every link;
//!   its path is where the app is mounted ([`Settings::mount`]).
//! - `database_url` (default sqlite://data/tidings.db): `sqlite://PATH` or
//!   `postgres://…` ([`DatabaseUrl`]).
//! - `smtp_url` (default empty: file outbox): `smtp://` or `smtps://` ([`SmtpUrl`]).
//! - `outbox_dir` (default data/outbox): where the file outbox writes `.eml` files.
//! - `mail_from` (default `Newsletter <newsletter@localhost>`): From of every email.
//! - `digest_cron` (default 0 0 8 * * Mon): when digests go out.
//! - `feed_url` (default empty): RSS/Atom feed polled for new articles.
//! - `feed_cron` (default 0 */15 * * * *): when the feed is polled.
//! - `confirm_ttl_hours` (default 48): lifetime of a confirmation link.
//! - `send_concurrency` (default 8): SMTP connections in flight.
//! - `send_rate` (default 0: unlimited): emails per second ceiling.
//! - `lease_seconds` (default 20): how long a worker's claim lives unrenewed.
//! - `secret_key` (default generated, kept in the database): keys every HMAC.
//! - `resend_after_minutes` (default 5): how often a pending address gets a new link.
//! - `signup_rate_per_minute` (default 30): per-IP signup ceiling; 0 turns it off.
//! - `trusted_proxies` (default empty): IPs whose `X-Forwarded-For` is believed.
//! - `cors_origins` (default empty): origins allowed to POST the JSON signup.
//! - `dkim_domain`, `dkim_selector`, `dkim_private_key_file` (default empty: no
//!   signing): DKIM signing of every email ([`Dkim`]).
//! - `body_timeout_seconds` (default 10): longest wait for a whole request body.
//! - `bounce_address` (default empty: no inbound): the envelope sender of
//!   every email, VERP-tagged per email ([`BounceAddress`]); its domain is
//!   also the per-reader mailto unsubscribe address's.
//! - `inbound_listen` (default empty: off): `HOST:PORT` of the built-in
//!   SMTP/LMTP receiver for bounces and mailto unsubscribes (needs
//!   `bounce_address`).
//! - `webhook_secrets` (default empty): `postmark=USER:PASSWORD` (the basic
//!   auth Postmark's webhook sends), `mailgun=SIGNING_KEY`,
//!   `sendgrid=VERIFICATION_KEY`, `ses=CERTIFICATE_FOLDER`, comma-separated
//!   ([`WebhookSecrets`]).
//! - `soft_bounce_limit` (default 3): soft bounces within 30 days, none
//!   delivered between, after which a reader is `bounced`.
//! - `site_name`, `site_url`, `logo_url`, `accent_color`, `postal_address`,
//!   `privacy_url` (default: the host of base_url, empty, empty, #1a56db,
//!   empty, empty): the brand on pages and emails ([`Brand`]).
//! - `consent_text` (default the built-in wording): the consent text on the
//!   form; its version id is derived from the text.
//! - `templates_dir` (default empty: built-in): files overriding built-in
//!   templates of the same relative path.
//! - `digest_max_articles` (default 30): most articles in one digest.
//! - `archive_public` (default true): whether /archive shows sent digests.
//! - `digest_mode` (default send): `send` or `draft` ([`DigestMode`]).
//! - `welcome_email` (default false): a welcome email after confirmation.
//! - `smtp_ca_file` (default empty: Mozilla's roots only): PEM certificates
//!   trusted as roots for SMTP TLS besides them (a private relay's CA).
//!
//! Layout: this file holds [`Settings`] and loading; `urls` the database and
//! SMTP URL types, `dkim` the signing key, `values` how one raw value becomes
//! a typed one, and `masking` the printable view with secrets masked.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use lettre::message::Mailbox;

mod brand;
mod dkim;
mod masking;
mod urls;
mod values;

pub use brand::{Brand, DEFAULT_ACCENT};
pub use dkim::Dkim;
pub use urls::{DatabaseUrl, SmtpTls, SmtpUrl};
use values::Raw;

/// Every key the settings know, in the order of the README table.
pub const KEYS: &[&str] = &[
    "listen",
    "base_url",
    "database_url",
    "smtp_url",
    "outbox_dir",
    "mail_from",
    "digest_cron",
    "feed_url",
    "feed_cron",
    "confirm_ttl_hours",
    "send_concurrency",
    "send_rate",
    "lease_seconds",
    "secret_key",
    "resend_after_minutes",
    "signup_rate_per_minute",
    "trusted_proxies",
    "cors_origins",
    "dkim_domain",
    "dkim_selector",
    "dkim_private_key_file",
    "body_timeout_seconds",
    "bounce_address",
    "inbound_listen",
    "soft_bounce_limit",
    "webhook_secrets",
    "site_name",
    "site_url",
    "logo_url",
    "accent_color",
    "postal_address",
    "privacy_url",
    "consent_text",
    "templates_dir",
    "digest_max_articles",
    "archive_public",
    "digest_mode",
    "welcome_email",
    "smtp_ca_file",
];

/// A setting that could not be used. Displayed as `setting KEY: PROBLEM`.
#[derive(Debug, thiserror::Error)]
#[error("setting {key}: {problem}")]
pub struct SettingError {
    pub key: String,
    pub problem: String,
}

fn bad(key: &str, problem: impl Into<String>) -> SettingError {
    SettingError {
        key: key.to_string(),
        problem: problem.into(),
    }
}

/// Validated settings. Build with [`Settings::load`] or [`Settings::from_map`].
#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: String,
    pub base_url: url::Url,
    pub database_url: DatabaseUrl,
    pub smtp_url: Option<SmtpUrl>,
    pub outbox_dir: PathBuf,
    pub mail_from: Mailbox,
    pub digest_cron: String,
    pub feed_url: Option<url::Url>,
    pub feed_cron: String,
    pub confirm_ttl_hours: u32,
    pub send_concurrency: usize,
    pub send_rate: u32,
    /// How long a worker's claim on a chunk of a digest (or a batch of
    /// outbox rows) lives unrenewed: a crashed instance's work is taken
    /// over this long after it died. Live workers renew every quarter.
    pub lease_seconds: u32,
    /// From the settings if given; otherwise generated and kept in the database.
    pub secret_key: Option<String>,
    pub resend_after_minutes: u32,
    pub signup_rate_per_minute: u32,
    pub trusted_proxies: Vec<IpAddr>,
    pub cors_origins: Vec<String>,
    pub dkim: Option<Dkim>,
    /// Longest wait for a whole request body, from its head (408 past it).
    pub body_timeout_seconds: u32,
    /// Where bounces go; `None`: plain `mail_from` envelopes, no mailto.
    pub bounce_address: Option<BounceAddress>,
    /// Where the SMTP/LMTP receiver listens; `None`: no receiver.
    pub inbound_listen: Option<String>,
    pub soft_bounce_limit: u32,
    pub webhook_secrets: WebhookSecrets,
    pub brand: Brand,
    /// The consent text shown on the form (its version is derived from it).
    pub consent_text: String,
    /// Overrides of built-in templates (same relative path).
    pub templates_dir: Option<PathBuf>,
    /// Most articles in one digest (the newest; the rest wait for the next).
    pub digest_max_articles: u32,
    /// Whether /archive shows sent digests (and emails link to them).
    pub archive_public: bool,
    pub digest_mode: DigestMode,
    /// Send templates/emails/welcome after a reader confirms.
    pub welcome_email: bool,
    /// Extra roots for SMTP TLS, read and checked at start.
    pub smtp_ca: Option<SmtpCa>,
}

/// Credentials of the providers' webhooks; a provider without one has no
/// webhook (404).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebhookSecrets {
    /// Postmark: the user and password of its webhook's basic auth.
    pub postmark: Option<(String, String)>,
    /// Mailgun: the HTTP webhook signing key.
    pub mailgun: Option<String>,
    /// SendGrid: the Signed Event Webhook's verification key (base64 DER
    /// of a P-256 public key; [`sendgrid_key`] reads it).
    pub sendgrid: Option<String>,
    /// SES: the folder holding the SNS signing certificates, each under the
    /// file name of its `SigningCertURL`.
    pub ses: Option<std::path::PathBuf>,
}

/// SendGrid's verification key as a P-256 ECDSA key; None if it is not one.
pub fn sendgrid_key(base64_der: &str) -> Option<p256::ecdsa::VerifyingKey> {
    use base64::Engine;
    use p256::pkcs8::DecodePublicKey;
    let der = base64::engine::general_purpose::STANDARD
        .decode(base64_der.trim())
        .ok()?;
    p256::ecdsa::VerifyingKey::from_public_key_der(&der).ok()
}

/// `bounce_address`, split: `local@domain`, the local part without the
/// VERP delimiter `+`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BounceAddress {
    pub local: String,
    pub domain: String,
}

impl std::fmt::Display for BounceAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// What the digest cron does: compose and send, or compose a draft that an
/// editor reviews and sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestMode {
    Send,
    Draft,
}

/// `smtp_ca_file`: where the roots came from, and their PEM text.
#[derive(Clone, Debug)]
pub struct SmtpCa {
    pub file: PathBuf,
    pub pem: Vec<u8>,
}

fn default_of(key: &str) -> &'static str {
    match key {
        "listen" => "127.0.0.1:8080",
        "database_url" => "sqlite://data/tidings.db",
        "outbox_dir" => "data/outbox",
        "mail_from" => "Newsletter <newsletter@localhost>",
        "digest_cron" => "0 0 8 * * Mon",
        "feed_cron" => "0 */15 * * * *",
        "confirm_ttl_hours" => "48",
        "send_concurrency" => "8",
        "send_rate" => "0",
        "lease_seconds" => "20",
        "resend_after_minutes" => "5",
        "signup_rate_per_minute" => "30",
        "body_timeout_seconds" => "10",
        "soft_bounce_limit" => "3",
        "accent_color" => brand::DEFAULT_ACCENT,
        "consent_text" => crate::domain::CONSENT_TEXT,
        "digest_max_articles" => "30",
        "archive_public" => "true",
        "digest_mode" => "send",
        "welcome_email" => "false",
        _ => "",
    }
}

impl Settings {
    /// The path of `base_url` without its trailing slash: `""` at the root,
    /// `/newsletter` for `https://news.example/newsletter/`. Every link,
    /// form action, redirect and cookie path of the app starts with it.
    pub fn mount(&self) -> &str {
        self.base_url.path().trim_end_matches('/')
    }

    /// Reads the file (if any), overlays `TIDINGS_*` from the process
    /// environment and validates.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingError> {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        Self::load_with_env(file, &env)
    }

    pub fn load_with_env(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
    ) -> Result<Self, SettingError> {
        let mut map = match file {
            Some(path) => read_file(path)?,
            None => BTreeMap::new(),
        };
        if let Some(dir) = file.and_then(Path::parent) {
            anchor_paths(&mut map, dir);
        }
        for key in KEYS {
            if let Some(v) = env.get(&format!("TIDINGS_{}", key.to_uppercase())) {
                map.insert(key.to_string(), v.clone());
            }
        }
        Self::from_map(&map)
    }

    /// Validates raw string values; absent keys take their defaults. The
    /// settings are checked in the order of the list in the module doc.
    pub fn from_map(map: &BTreeMap<String, String>) -> Result<Self, SettingError> {
        let raw = Raw::new(map);
        let listen = values::listen(&raw)?;
        let base_url = values::base_url(&raw, &listen)?;
        let database_url =
            DatabaseUrl::parse(&raw.get("database_url")).map_err(|e| bad("database_url", e))?;
        let smtp_url = values::smtp_url(&raw)?;
        let outbox_dir = values::outbox_dir(&raw)?;
        let mail_from = values::mail_from(&raw)?;
        let feed_url = values::feed_url(&raw)?;
        let secret_key = values::secret_key(&raw)?;
        let trusted_proxies = values::trusted_proxies(&raw)?;
        let cors_origins = values::cors_origins(&raw)?;
        let dkim = Dkim::from_settings(
            raw.get("dkim_domain"),
            raw.get("dkim_selector"),
            raw.get("dkim_private_key_file"),
        )?;
        Ok(Self {
            listen,
            base_url: base_url.clone(),
            database_url,
            smtp_url,
            outbox_dir,
            mail_from,
            digest_cron: raw.cron("digest_cron")?,
            feed_url,
            feed_cron: raw.cron("feed_cron")?,
            confirm_ttl_hours: raw.number("confirm_ttl_hours", 1, 24 * 365)? as u32,
            send_concurrency: raw.number("send_concurrency", 1, 256)? as usize,
            send_rate: raw.number("send_rate", 0, 1_000_000)? as u32,
            lease_seconds: raw.number("lease_seconds", 2, 3600)? as u32,
            secret_key,
            resend_after_minutes: raw.number("resend_after_minutes", 0, 7 * 24 * 60)? as u32,
            signup_rate_per_minute: raw.number("signup_rate_per_minute", 0, 1_000_000)? as u32,
            trusted_proxies,
            cors_origins,
            dkim,
            body_timeout_seconds: raw.number("body_timeout_seconds", 1, 3600)? as u32,
            bounce_address: values::bounce_address(&raw)?,
            inbound_listen: values::inbound_listen(&raw)?,
            soft_bounce_limit: raw.number("soft_bounce_limit", 1, 100)? as u32,
            webhook_secrets: values::webhook_secrets(&raw)?,
            brand: Brand::from_raw(&raw, &base_url)?,
            consent_text: values::consent_text(&raw)?,
            templates_dir: values::templates_dir(&raw)?,
            digest_max_articles: raw.number("digest_max_articles", 1, 200)? as u32,
            archive_public: raw.flag("archive_public")?,
            digest_mode: match raw.get("digest_mode").as_str() {
                "send" => DigestMode::Send,
                "draft" => DigestMode::Draft,
                other => {
                    return Err(bad(
                        "digest_mode",
                        format!("expected send or draft, got \"{other}\""),
                    ))
                }
            },
            welcome_email: raw.flag("welcome_email")?,
            smtp_ca: values::smtp_ca_file(&raw)?,
        })
    }
}

/// Settings that name files, and their URL prefix.
const PATH_KEYS: &[(&str, &str)] = &[
    ("database_url", "sqlite://"),
    ("outbox_dir", ""),
    ("dkim_private_key_file", ""),
    ("smtp_ca_file", ""),
];

/// With a settings file, the relative paths it gives (or the defaults it
/// leaves) mean the file's folder, not wherever the command was run from;
/// the environment's, applied after this, stay relative to the current one.
fn anchor_paths(map: &mut BTreeMap<String, String>, dir: &Path) {
    for (key, prefix) in PATH_KEYS {
        let raw = map
            .get(*key)
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| default_of(key).to_string());
        let Some(path) = raw.strip_prefix(prefix).map(Path::new) else {
            continue;
        };
        if path.as_os_str().is_empty() || path.is_absolute() {
            continue;
        }
        map.insert(
            key.to_string(),
            format!("{prefix}{}", dir.join(path).display()),
        );
    }
}

/// Variables that are neither a setting nor one Tidings reads otherwise,
/// as warnings (a typo such as TIDINGS_SMPT_URL is otherwise ignored
/// without a word), with the nearest setting when one is close.
pub fn unknown_env_vars(env: &BTreeMap<String, String>) -> Vec<String> {
    const OTHERS: &[&str] = &["CONFIG", "ADMIN_PASSWORD", "TEST_DATABASE_URL"];
    env.keys()
        .filter_map(|k| k.strip_prefix("TIDINGS_").map(|rest| (k, rest)))
        .filter(|(_, rest)| {
            !OTHERS.contains(rest) && !KEYS.iter().any(|key| key.to_uppercase() == *rest)
        })
        .map(|(var, rest)| {
            let nearest = KEYS
                .iter()
                .map(|key| (edit_distance(&key.to_uppercase(), rest), key))
                .min()
                .filter(|(d, _)| *d <= 3)
                .map(|(_, key)| format!(" (did you mean TIDINGS_{}?)", key.to_uppercase()))
                .unwrap_or_default();
            format!("{var} is not a setting and is ignored{nearest}")
        })
        .collect()
}

/// Levenshtein distance, for suggesting the setting a typo meant.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
}

/// The TOML file's keys as raw strings (arrays joined with commas); an
/// unknown key is an error.
fn read_file(path: &Path) -> Result<BTreeMap<String, String>, SettingError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| bad("config", format!("cannot read {}: {e}", path.display())))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        bad("config", format!("{}: {}", path.display(), e.message()))
    })?;
    let mut map = BTreeMap::new();
    for (key, value) in table {
        if !KEYS.contains(&key.as_str()) {
            return Err(bad(&key, "unknown setting"));
        }
        map.insert(key, toml_text(value));
    }
    Ok(map)
}

/// A TOML value as the text an environment variable would hold.
fn toml_text(value: toml::Value) -> String {
    match value {
        toml::Value::String(s) => s,
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Settings, SettingError> {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_map(&map)
    }

    #[test]
    fn defaults_are_valid() {
        let s = with(&[]).expect("defaults");
        assert_eq!(s.listen, "127.0.0.1:8080");
        assert_eq!(
            s.database_url,
            DatabaseUrl::Sqlite("data/tidings.db".into())
        );
        assert!(s.smtp_url.is_none());
        assert_eq!(s.send_concurrency, 8);
    }

    #[test]
    fn bad_database_scheme_names_the_key() {
        let e = with(&[("database_url", "nonsense://x")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "setting database_url: unsupported scheme \"nonsense\""
        );
    }

    #[test]
    fn bad_numbers_and_crons() {
        assert!(with(&[("send_concurrency", "0")])
            .unwrap_err()
            .to_string()
            .starts_with("setting send_concurrency:"));
        assert!(with(&[("digest_cron", "0 8 * * Mon")])
            .unwrap_err()
            .to_string()
            .starts_with("setting digest_cron:"));
        assert!(with(&[("trusted_proxies", "nope")]).is_err());
        assert!(with(&[("cors_origins", "https://news.example/path")]).is_err());
        assert!(with(&[("secret_key", "short")]).is_err());
        assert!(with(&[("body_timeout_seconds", "0")])
            .unwrap_err()
            .to_string()
            .starts_with("setting body_timeout_seconds:"));
        assert!(with(&[("body_timeout_seconds", "soon")]).is_err());
        assert_eq!(with(&[]).unwrap().body_timeout_seconds, 10);
    }

    #[test]
    fn bounce_address_and_soft_limit() {
        let s = with(&[("bounce_address", "Bounces@News.Example")]).unwrap();
        let b = s.bounce_address.unwrap();
        assert_eq!(
            (b.local.as_str(), b.domain.as_str()),
            ("Bounces", "news.example")
        );
        assert_eq!(s.soft_bounce_limit, 3);
        assert!(with(&[]).unwrap().bounce_address.is_none());
        for bad in ["nope", "a+b@x.example", "@x.example", "a@", "a b@x.example"] {
            let e = with(&[("bounce_address", bad)]).unwrap_err();
            assert_eq!(e.key, "bounce_address", "{bad}");
        }
        assert!(with(&[("soft_bounce_limit", "101")]).is_err());
        let e = with(&[("inbound_listen", "127.0.0.1:2525")]).unwrap_err();
        assert_eq!(e.key, "inbound_listen");
        assert!(e.problem.contains("bounce_address"), "{e}");
        let s = with(&[
            ("bounce_address", "b@n.example"),
            ("inbound_listen", "127.0.0.1:2525"),
        ])
        .unwrap();
        assert_eq!(s.inbound_listen.as_deref(), Some("127.0.0.1:2525"));
        let s = with(&[("webhook_secrets", "postmark=hook:pa:ss, mailgun=key-1")]).unwrap();
        assert_eq!(
            s.webhook_secrets.postmark,
            Some(("hook".to_string(), "pa:ss".to_string()))
        );
        assert_eq!(s.webhook_secrets.mailgun.as_deref(), Some("key-1"));
        // SendGrid's own example key (sendgrid-nodejs' eventwebhook tests).
        let key = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==";
        let dir = std::env::temp_dir();
        let both = format!("sendgrid={key}, ses={}", dir.display());
        let s2 = with(&[("webhook_secrets", both.as_str())]).unwrap();
        assert_eq!(s2.webhook_secrets.sendgrid.as_deref(), Some(key));
        assert_eq!(s2.webhook_secrets.ses.as_deref(), Some(dir.as_path()));
        for bad in [
            "postmark=nocolon",
            "mailgun=",
            "nope=1",
            "sendgrid=k",
            "sendgrid=MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE",
            "ses=/nonexistent/certs",
            "mailgun",
        ] {
            let e = with(&[("webhook_secrets", bad)]).unwrap_err();
            assert_eq!(e.key, "webhook_secrets", "{bad}");
        }
        let masked = s.masked();
        assert!(masked
            .iter()
            .all(|(_, v)| !v.contains("pa:ss") && !v.contains("key-1")));
    }

    #[test]
    fn the_first_bad_setting_is_the_one_reported() {
        let bad_values = [
            ("listen", "nowhere"),
            ("base_url", "ftp://x"),
            ("database_url", "nonsense://x"),
            ("smtp_url", "http://h"),
            ("outbox_dir", " "),
            ("mail_from", "not an address"),
            ("feed_url", "ftp://x"),
            ("secret_key", "short"),
            ("trusted_proxies", "nope"),
            ("cors_origins", "nope"),
            ("dkim_domain", "example.com"),
            ("digest_cron", "nope"),
            ("feed_cron", "nope"),
            ("confirm_ttl_hours", "0"),
            ("send_concurrency", "0"),
            ("send_rate", "-1"),
            ("lease_seconds", "1"),
            ("resend_after_minutes", "-1"),
            ("signup_rate_per_minute", "-1"),
            ("body_timeout_seconds", "0"),
            ("bounce_address", "bounces+x@news.example"),
            ("inbound_listen", "nowhere"),
            ("soft_bounce_limit", "0"),
            ("webhook_secrets", "ses=x"),
            ("site_name", "a\u{7}b"),
            ("site_url", "ftp://x"),
            ("logo_url", "javascript:alert(1)"),
            ("accent_color", "red"),
            ("postal_address", "a\nb"),
            ("privacy_url", "nope"),
            ("consent_text", "a\u{0}b"),
            ("templates_dir", "/no/such/folder"),
            ("digest_max_articles", "0"),
            ("archive_public", "maybe"),
            ("digest_mode", "later"),
            ("welcome_email", "sure"),
        ];
        for (i, (key, _)) in bad_values.iter().enumerate() {
            let e = with(&bad_values[i..]).unwrap_err();
            assert_eq!(&e.key, key);
        }
    }

    #[test]
    fn masked_hides_secrets_and_lists_every_key() {
        let s = with(&[
            ("database_url", "postgres://app:hunter2@db.example/news"),
            ("smtp_url", "smtps://mailer:pw@mail.example"),
            ("secret_key", "0123456789abcdef0123456789abcdef"),
            ("trusted_proxies", "10.0.0.1, ::1"),
            ("cors_origins", "https://a.example,https://b.example"),
            ("feed_url", "https://blog.example/feed.xml"),
        ])
        .unwrap();
        let masked = s.masked();
        let keys: Vec<&str> = masked.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, KEYS);
        let value = |key: &str| {
            masked
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(
            value("database_url"),
            "postgres://app:********@db.example/news"
        );
        assert_eq!(
            value("smtp_url"),
            "smtps://mailer:********@mail.example:465"
        );
        assert_eq!(value("secret_key"), "********");
        assert_eq!(value("trusted_proxies"), "10.0.0.1,::1");
        assert_eq!(value("cors_origins"), "https://a.example,https://b.example");
        assert_eq!(value("feed_url"), "https://blog.example/feed.xml");
        assert_eq!(value("dkim_private_key_file"), "");
        assert_eq!(value("body_timeout_seconds"), "10");
        let plain = with(&[("smtp_url", "smtp://relay.local:25?tls=none")]).unwrap();
        let masked = plain.masked();
        assert_eq!(masked[2].1, "sqlite://data/tidings.db");
        assert_eq!(masked[3].1, "smtp://relay.local:25");
        assert_eq!(masked[13].1, "********");
    }

    #[test]
    fn base_url_follows_listen_and_gives_the_mount_point() {
        let s = with(&[("listen", "127.0.0.1:8081")]).unwrap();
        assert_eq!(s.base_url.as_str(), "http://127.0.0.1:8081/");
        assert_eq!(s.mount(), "");
        let s = with(&[("listen", "0.0.0.0:9000")]).unwrap();
        assert_eq!(s.base_url.as_str(), "http://127.0.0.1:9000/");
        let s = with(&[("base_url", "https://news.example/newsletter/")]).unwrap();
        assert_eq!(s.mount(), "/newsletter");
        assert!(with(&[("base_url", "https://news.example/?x=1")]).is_err());
    }

    #[test]
    fn relative_paths_in_a_settings_file_mean_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.toml");
        std::fs::write(&file, "outbox_dir = \"mail\"\n").unwrap();
        let s = Settings::load_with_env(Some(&file), &BTreeMap::new()).unwrap();
        assert_eq!(s.outbox_dir, dir.path().join("mail"));
        assert_eq!(
            s.database_url,
            DatabaseUrl::Sqlite(dir.path().join("data/tidings.db"))
        );
        let env = [(
            "TIDINGS_DATABASE_URL".to_string(),
            "sqlite://here.db".to_string(),
        )]
        .into();
        let s = Settings::load_with_env(Some(&file), &env).unwrap();
        assert_eq!(s.database_url, DatabaseUrl::Sqlite("here.db".into()));
        let s = Settings::load_with_env(None, &BTreeMap::new()).unwrap();
        assert_eq!(s.outbox_dir, PathBuf::from("data/outbox"));
    }

    #[test]
    fn unknown_tidings_variables_are_named_with_the_nearest_setting() {
        let env = [
            ("TIDINGS_SMPT_URL".to_string(), String::new()),
            ("TIDINGS_SMTP_URL".to_string(), String::new()),
            ("TIDINGS_ADMIN_PASSWORD".to_string(), String::new()),
            ("TIDINGS_WHATEVER_ELSE_ENTIRELY".to_string(), String::new()),
            ("HOME".to_string(), String::new()),
        ]
        .into();
        assert_eq!(
            unknown_env_vars(&env),
            [
                "TIDINGS_SMPT_URL is not a setting and is ignored (did you mean TIDINGS_SMTP_URL?)",
                "TIDINGS_WHATEVER_ELSE_ENTIRELY is not a setting and is ignored"
            ]
        );
    }

    #[test]
    fn env_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\nsend_rate = 5\n").unwrap();
        let env = [("TIDINGS_SEND_RATE".to_string(), "7".to_string())].into();
        let s = Settings::load_with_env(Some(&file), &env).unwrap();
        assert_eq!(s.listen, "127.0.0.1:9000");
        assert_eq!(s.send_rate, 7);
        std::fs::write(&file, "nope = 1\n").unwrap();
        assert_eq!(
            Settings::load_with_env(Some(&file), &BTreeMap::new())
                .unwrap_err()
                .to_string(),
            "setting nope: unknown setting"
        );
    }
}
