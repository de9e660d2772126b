//! Settings: an optional TOML file (`--config FILE` or `TIDINGS_CONFIG`) whose
//! every key is overridden by the environment variable `TIDINGS_<KEY>`.
//!
//! Keys (see README for the table): listen, base_url, database_url, smtp_url,
//! outbox_dir, mail_from, digest_cron, feed_url, feed_cron, confirm_ttl_hours,
//! send_concurrency, send_rate, lease_seconds, secret_key, resend_after_minutes,
//! signup_rate_per_minute, trusted_proxies, cors_origins, dkim_domain,
//! dkim_selector, dkim_private_key_file, body_timeout_seconds.
//!
//! Everything is validated once, here; a bad value becomes one error line that
//! names the key, e.g. `setting database_url: unsupported scheme "nonsense"`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use lettre::message::Mailbox;

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

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let scheme = raw.split_once("://").map(|(s, _)| s).unwrap_or(raw);
        match scheme {
            "sqlite" => {
                let path = raw.trim_start_matches("sqlite://");
                if path.is_empty() {
                    return Err("sqlite:// needs a file path".into());
                }
                Ok(Self::Sqlite(PathBuf::from(path)))
            }
            "postgres" | "postgresql" => {
                url::Url::parse(raw).map_err(|e| format!("not a valid URL: {e}"))?;
                Ok(Self::Postgres(raw.to_string()))
            }
            other => Err(format!("unsupported scheme \"{other}\"")),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }
}

/// How SMTP connections are secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text (local relays, tests).
    None,
    /// STARTTLS if offered, plain otherwise.
    Opportunistic,
    /// STARTTLS, refusing servers that do not offer it.
    Required,
    /// Implicit TLS from the first byte (`smtps://`).
    Wrapper,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpUrl {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl SmtpUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = url::Url::parse(raw).map_err(|e| format!("not a valid URL: {e}"))?;
        let (default_port, mut tls) = match url.scheme() {
            "smtp" => (587, SmtpTls::Opportunistic),
            "smtps" => (465, SmtpTls::Wrapper),
            other => return Err(format!("unsupported scheme \"{other}\"")),
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("missing host")?
            .trim_matches(|c| c == '[' || c == ']')
            .to_string();
        for (k, v) in url.query_pairs() {
            match (&*k, &*v) {
                ("tls", "none") if tls != SmtpTls::Wrapper => tls = SmtpTls::None,
                ("tls", "starttls") if tls != SmtpTls::Wrapper => tls = SmtpTls::Opportunistic,
                ("tls", "required") if tls != SmtpTls::Wrapper => tls = SmtpTls::Required,
                ("tls", other) => {
                    return Err(format!(
                        "tls={other}: expected none, starttls or required (smtp:// only)"
                    ))
                }
                (other, _) => return Err(format!("unknown parameter \"{other}\"")),
            }
        }
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let user = (!url.username().is_empty()).then(|| decode(url.username()));
        let password = url.password().map(decode);
        Ok(Self {
            host,
            port: url.port().unwrap_or(default_port),
            tls,
            user,
            password,
        })
    }
}

/// DKIM signing, parsed once at start: the key is read and checked here,
/// and every email is signed with [`Dkim::signing`].
#[derive(Clone, Debug)]
pub struct Dkim {
    pub domain: String,
    pub selector: String,
    pub signing: std::sync::Arc<lettre::message::dkim::DkimConfig>,
}

impl Dkim {
    /// RSA keys in PKCS#1 PEM, Ed25519 keys as base64 of the 32-byte seed.
    /// Signs the list headers too.
    fn parse(domain: String, selector: String, pem: &str) -> Result<Self, String> {
        use lettre::message::dkim::{
            DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
            DkimSigningKey,
        };
        use lettre::message::header::HeaderName;
        let pem = pem.trim();
        let algorithm = if pem.contains("BEGIN RSA PRIVATE KEY") {
            DkimSigningAlgorithm::Rsa
        } else {
            DkimSigningAlgorithm::Ed25519
        };
        let key = DkimSigningKey::new(pem, algorithm)
            .map_err(|e| format!("not a PKCS#1 RSA PEM or base64 Ed25519 key: {e}"))?;
        let headers = [
            "From",
            "Subject",
            "To",
            "Date",
            "Message-ID",
            "List-Unsubscribe",
            "List-Unsubscribe-Post",
            "List-Id",
        ]
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
            signing: std::sync::Arc::new(signing),
        })
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
}

fn default_of(key: &str) -> &'static str {
    match key {
        "listen" => "127.0.0.1:8080",
        "base_url" => "http://127.0.0.1:8080",
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
        _ => "",
    }
}

impl Settings {
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
        let mut map = BTreeMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| bad("config", format!("cannot read {}: {e}", path.display())))?;
            let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
                bad("config", format!("{}: {}", path.display(), e.message()))
            })?;
            for (key, value) in table {
                if !KEYS.contains(&key.as_str()) {
                    return Err(bad(&key, "unknown setting"));
                }
                let value = match value {
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
                };
                map.insert(key, value);
            }
        }
        for key in KEYS {
            if let Some(v) = env.get(&format!("TIDINGS_{}", key.to_uppercase())) {
                map.insert(key.to_string(), v.clone());
            }
        }
        Self::from_map(&map)
    }

    /// Validates raw string values; absent keys take their defaults.
    pub fn from_map(map: &BTreeMap<String, String>) -> Result<Self, SettingError> {
        let get = |key: &str| -> String {
            map.get(key)
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| default_of(key).to_string())
        };
        let number = |key: &str, min: u64, max: u64| -> Result<u64, SettingError> {
            let raw = get(key);
            let n: u64 = raw
                .parse()
                .map_err(|_| bad(key, format!("expected a whole number, got \"{raw}\"")))?;
            if n < min || n > max {
                return Err(bad(
                    key,
                    format!("must be between {min} and {max}, got {n}"),
                ));
            }
            Ok(n)
        };
        let cron = |key: &str| -> Result<String, SettingError> {
            let raw = get(key);
            crate::domain::cron::validate_cron(&raw).map_err(|e| bad(key, e))?;
            Ok(raw)
        };
        let list = |key: &str| -> Vec<String> {
            get(key)
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };

        let listen = get("listen");
        if listen.to_socket_addrs_checked().is_err() {
            return Err(bad(
                "listen",
                format!("expected HOST:PORT, got \"{listen}\""),
            ));
        }
        let base_url = url::Url::parse(&get("base_url"))
            .map_err(|e| bad("base_url", format!("not a valid URL: {e}")))?;
        if !matches!(base_url.scheme(), "http" | "https") {
            return Err(bad("base_url", "must start with http:// or https://"));
        }
        let database_url =
            DatabaseUrl::parse(&get("database_url")).map_err(|e| bad("database_url", e))?;
        let smtp_raw = get("smtp_url");
        let smtp_url = if smtp_raw.is_empty() {
            None
        } else {
            Some(SmtpUrl::parse(&smtp_raw).map_err(|e| bad("smtp_url", e))?)
        };
        let outbox_dir = PathBuf::from(get("outbox_dir"));
        if outbox_dir.as_os_str().is_empty() {
            return Err(bad("outbox_dir", "must not be empty"));
        }
        let mail_from = Mailbox::from_str(&get("mail_from"))
            .map_err(|e| bad("mail_from", format!("not an address: {e}")))?;
        let feed_raw = get("feed_url");
        let feed_url = if feed_raw.is_empty() {
            None
        } else {
            let u = url::Url::parse(&feed_raw)
                .map_err(|e| bad("feed_url", format!("not a valid URL: {e}")))?;
            if !matches!(u.scheme(), "http" | "https") {
                return Err(bad("feed_url", "must start with http:// or https://"));
            }
            Some(u)
        };
        let secret = get("secret_key");
        let secret_key = if secret.is_empty() {
            None
        } else if secret.len() < 32 {
            return Err(bad("secret_key", "must be at least 32 characters"));
        } else {
            Some(secret)
        };
        let trusted_proxies = list("trusted_proxies")
            .iter()
            .map(|s| {
                s.parse::<IpAddr>()
                    .map_err(|_| bad("trusted_proxies", format!("\"{s}\" is not an IP address")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cors_origins = list("cors_origins");
        for origin in &cors_origins {
            let ok = url::Url::parse(origin)
                .map(|u| matches!(u.scheme(), "http" | "https") && u.path() == "/")
                .unwrap_or(false);
            if !ok {
                return Err(bad(
                    "cors_origins",
                    format!("\"{origin}\" is not an origin like https://news.example"),
                ));
            }
        }
        let dkim = match (
            get("dkim_domain"),
            get("dkim_selector"),
            get("dkim_private_key_file"),
        ) {
            (d, s, f) if d.is_empty() && s.is_empty() && f.is_empty() => None,
            (d, s, f) if !d.is_empty() && !s.is_empty() && !f.is_empty() => {
                let pem = std::fs::read_to_string(&f)
                    .map_err(|e| bad("dkim_private_key_file", format!("cannot read {f}: {e}")))?;
                Some(Dkim::parse(d, s, &pem).map_err(|e| bad("dkim_private_key_file", e))?)
            }
            _ => {
                return Err(bad(
                    "dkim_domain",
                    "dkim_domain, dkim_selector and dkim_private_key_file go together",
                ))
            }
        };
        let settings = Self {
            listen,
            base_url,
            database_url,
            smtp_url,
            outbox_dir,
            mail_from,
            digest_cron: cron("digest_cron")?,
            feed_url,
            feed_cron: cron("feed_cron")?,
            confirm_ttl_hours: number("confirm_ttl_hours", 1, 24 * 365)? as u32,
            send_concurrency: number("send_concurrency", 1, 256)? as usize,
            send_rate: number("send_rate", 0, 1_000_000)? as u32,
            lease_seconds: number("lease_seconds", 2, 3600)? as u32,
            secret_key,
            resend_after_minutes: number("resend_after_minutes", 0, 7 * 24 * 60)? as u32,
            signup_rate_per_minute: number("signup_rate_per_minute", 0, 1_000_000)? as u32,
            trusted_proxies,
            cors_origins,
            dkim,
            body_timeout_seconds: number("body_timeout_seconds", 1, 3600)? as u32,
        };
        Ok(settings)
    }

    /// A printable view with secrets masked (admin console, start-up).
    pub fn masked(&self) -> Vec<(&'static str, String)> {
        let mask = |present: bool| {
            if present {
                "********".to_string()
            } else {
                String::new()
            }
        };
        let smtp = self.smtp_url.as_ref().map(|s| {
            let scheme = if s.tls == SmtpTls::Wrapper {
                "smtps"
            } else {
                "smtp"
            };
            let user = s
                .user
                .as_ref()
                .map(|u| format!("{u}:********@"))
                .unwrap_or_default();
            format!("{scheme}://{user}{}:{}", s.host, s.port)
        });
        let db = match &self.database_url {
            DatabaseUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
            DatabaseUrl::Postgres(u) => url::Url::parse(u)
                .map(|mut u| {
                    if u.password().is_some() {
                        let _ = u.set_password(Some("********"));
                    }
                    u.to_string()
                })
                .unwrap_or_default(),
        };
        vec![
            ("listen", self.listen.clone()),
            ("base_url", self.base_url.to_string()),
            ("database_url", db),
            ("smtp_url", smtp.unwrap_or_default()),
            ("outbox_dir", self.outbox_dir.display().to_string()),
            ("mail_from", self.mail_from.to_string()),
            ("digest_cron", self.digest_cron.clone()),
            (
                "feed_url",
                self.feed_url
                    .as_ref()
                    .map(|u| u.to_string())
                    .unwrap_or_default(),
            ),
            ("feed_cron", self.feed_cron.clone()),
            ("confirm_ttl_hours", self.confirm_ttl_hours.to_string()),
            ("send_concurrency", self.send_concurrency.to_string()),
            ("send_rate", self.send_rate.to_string()),
            ("lease_seconds", self.lease_seconds.to_string()),
            ("secret_key", mask(true)),
            (
                "resend_after_minutes",
                self.resend_after_minutes.to_string(),
            ),
            (
                "signup_rate_per_minute",
                self.signup_rate_per_minute.to_string(),
            ),
            (
                "trusted_proxies",
                self.trusted_proxies
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("cors_origins", self.cors_origins.join(",")),
            (
                "dkim_domain",
                self.dkim
                    .as_ref()
                    .map(|d| d.domain.clone())
                    .unwrap_or_default(),
            ),
            (
                "dkim_selector",
                self.dkim
                    .as_ref()
                    .map(|d| d.selector.clone())
                    .unwrap_or_default(),
            ),
            ("dkim_private_key_file", mask(self.dkim.is_some())),
            (
                "body_timeout_seconds",
                self.body_timeout_seconds.to_string(),
            ),
        ]
    }
}

trait SocketAddrCheck {
    fn to_socket_addrs_checked(&self) -> Result<(), ()>;
}

impl SocketAddrCheck for String {
    fn to_socket_addrs_checked(&self) -> Result<(), ()> {
        if self.parse::<SocketAddr>().is_ok() {
            return Ok(());
        }
        // host names such as localhost:8080
        match self.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
            _ => Err(()),
        }
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
    fn smtp_urls() {
        let s = SmtpUrl::parse("smtp://u%40x:p%3Aw@mail.example:2525?tls=required").unwrap();
        assert_eq!(s.host, "mail.example");
        assert_eq!(s.port, 2525);
        assert_eq!(s.tls, SmtpTls::Required);
        assert_eq!(s.user.as_deref(), Some("u@x"));
        assert_eq!(s.password.as_deref(), Some("p:w"));
        assert_eq!(SmtpUrl::parse("smtps://h").unwrap().tls, SmtpTls::Wrapper);
        assert!(SmtpUrl::parse("smtp://h?tls=maybe").is_err());
        assert!(SmtpUrl::parse("http://h").is_err());
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
