//! One setting's raw text into its typed value: [`Raw`] reads the map
//! (trimmed, defaults filled in) and the functions below check one setting
//! each, so [`super::Settings::from_map`] reads like the list of keys.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use lettre::message::Mailbox;

use super::{bad, default_of, SettingError, SmtpUrl};

/// The raw settings: given values trimmed, absent keys their defaults.
pub(super) struct Raw<'a>(&'a BTreeMap<String, String>);

impl<'a> Raw<'a> {
    pub(super) fn new(map: &'a BTreeMap<String, String>) -> Self {
        Self(map)
    }

    pub(super) fn get(&self, key: &str) -> String {
        self.0
            .get(key)
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| default_of(key).to_string())
    }

    /// A whole number in `min..=max`.
    pub(super) fn number(&self, key: &str, min: u64, max: u64) -> Result<u64, SettingError> {
        let raw = self.get(key);
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
    }

    /// `true` or `false` (also 1/0, yes/no, on/off).
    pub(super) fn flag(&self, key: &str) -> Result<bool, SettingError> {
        match self.get(key).to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            other => Err(bad(key, format!("expected true or false, got \"{other}\""))),
        }
    }

    /// A six-field cron expression, kept as written.
    pub(super) fn cron(&self, key: &str) -> Result<String, SettingError> {
        let raw = self.get(key);
        crate::domain::cron::validate_cron(&raw).map_err(|e| bad(key, e))?;
        Ok(raw)
    }

    /// Comma-separated items, blanks dropped.
    fn list(&self, key: &str) -> Vec<String> {
        self.get(key)
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}

pub(super) fn listen(raw: &Raw) -> Result<String, SettingError> {
    let listen = raw.get("listen");
    if !is_host_port(&listen) {
        return Err(bad(
            "listen",
            format!("expected HOST:PORT, got \"{listen}\""),
        ));
    }
    Ok(listen)
}

/// `IP:PORT`, or a host name such as `localhost:8080`.
fn is_host_port(text: &str) -> bool {
    if text.parse::<SocketAddr>().is_ok() {
        return true;
    }
    matches!(
        text.rsplit_once(':'),
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok()
    )
}

/// An `http://` or `https://` URL.
pub(super) fn http_url(raw: &Raw, key: &str) -> Result<url::Url, SettingError> {
    let url =
        url::Url::parse(&raw.get(key)).map_err(|e| bad(key, format!("not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(key, "must start with http:// or https://"));
    }
    Ok(url)
}

/// Empty: no relay, emails go to the file outbox.
pub(super) fn smtp_url(raw: &Raw) -> Result<Option<SmtpUrl>, SettingError> {
    let smtp = raw.get("smtp_url");
    if smtp.is_empty() {
        return Ok(None);
    }
    SmtpUrl::parse(&smtp)
        .map(Some)
        .map_err(|e| bad("smtp_url", e))
}

pub(super) fn outbox_dir(raw: &Raw) -> Result<PathBuf, SettingError> {
    let dir = PathBuf::from(raw.get("outbox_dir"));
    if dir.as_os_str().is_empty() {
        return Err(bad("outbox_dir", "must not be empty"));
    }
    Ok(dir)
}

pub(super) fn mail_from(raw: &Raw) -> Result<Mailbox, SettingError> {
    Mailbox::from_str(&raw.get("mail_from"))
        .map_err(|e| bad("mail_from", format!("not an address: {e}")))
}

/// Empty: no feed is polled.
pub(super) fn feed_url(raw: &Raw) -> Result<Option<url::Url>, SettingError> {
    if raw.get("feed_url").is_empty() {
        return Ok(None);
    }
    http_url(raw, "feed_url").map(Some)
}

/// Empty: the key generated once and kept in the database is used.
pub(super) fn secret_key(raw: &Raw) -> Result<Option<String>, SettingError> {
    let secret = raw.get("secret_key");
    if secret.is_empty() {
        Ok(None)
    } else if secret.len() < 32 {
        Err(bad("secret_key", "must be at least 32 characters"))
    } else {
        Ok(Some(secret))
    }
}

pub(super) fn trusted_proxies(raw: &Raw) -> Result<Vec<IpAddr>, SettingError> {
    raw.list("trusted_proxies")
        .iter()
        .map(|s| {
            s.parse::<IpAddr>()
                .map_err(|_| bad("trusted_proxies", format!("\"{s}\" is not an IP address")))
        })
        .collect()
}

/// Origins only: scheme and host, no path.
pub(super) fn cors_origins(raw: &Raw) -> Result<Vec<String>, SettingError> {
    let origins = raw.list("cors_origins");
    for origin in &origins {
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
    Ok(origins)
}

/// Not empty, at most 2000 characters, no control characters but line breaks.
pub(super) fn consent_text(raw: &Raw) -> Result<String, SettingError> {
    let text = raw.get("consent_text");
    if text.is_empty() {
        return Err(bad("consent_text", "must not be empty"));
    }
    if text.chars().count() > 2000 {
        return Err(bad("consent_text", "is longer than 2000 characters"));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(bad("consent_text", "must not contain control characters"));
    }
    Ok(text)
}

/// Empty: the built-in templates only. Otherwise a folder that exists.
pub(super) fn templates_dir(raw: &Raw) -> Result<Option<PathBuf>, SettingError> {
    let dir = raw.get("templates_dir");
    if dir.is_empty() {
        return Ok(None);
    }
    let path = PathBuf::from(&dir);
    if !path.is_dir() {
        return Err(bad("templates_dir", format!("\"{dir}\" is not a folder")));
    }
    Ok(Some(path))
}
