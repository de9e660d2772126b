//! One setting's raw text into its typed value: [`Raw`] reads the map
//! (trimmed, defaults filled in) and the functions below check one setting
//! each, so [`super::Settings::from_map`] reads like the list of keys.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use lettre::message::Mailbox;

use super::{bad, default_of, BounceAddress, SettingError, SmtpUrl, WebhookSecrets};

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

/// Absent or empty: `http://` and `listen` (an unspecified address as
/// 127.0.0.1, so the links work from the machine itself). A query or
/// fragment has no place in a mount point.
pub(super) fn base_url(raw: &Raw, listen: &str) -> Result<url::Url, SettingError> {
    if raw.get("base_url").is_empty() {
        let local = listen
            .replacen("0.0.0.0:", "127.0.0.1:", 1)
            .replacen("[::]:", "127.0.0.1:", 1);
        return url::Url::parse(&format!("http://{local}"))
            .map_err(|e| bad("listen", format!("cannot make base_url from it: {e}")));
    }
    let url = http_url(raw, "base_url")?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("base_url", "must not have a query or fragment"));
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

/// Empty: no extra roots. Otherwise a readable PEM file with at least one
/// certificate, checked the way the SMTP client will load it.
pub(super) fn smtp_ca_file(raw: &Raw) -> Result<Option<super::SmtpCa>, SettingError> {
    let file = raw.get("smtp_ca_file");
    if file.is_empty() {
        return Ok(None);
    }
    let pem = std::fs::read(&file)
        .map_err(|e| bad("smtp_ca_file", format!("cannot read {file}: {e}")))?;
    let has_certificate = String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----");
    if !has_certificate || lettre::transport::smtp::client::Certificate::from_pem(&pem).is_err() {
        return Err(bad(
            "smtp_ca_file",
            format!("{file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
        ));
    }
    Ok(Some(super::SmtpCa {
        file: PathBuf::from(file),
        pem,
    }))
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

/// Empty: no VERP envelope, no mailto unsubscribe, no inbound.
pub(super) fn bounce_address(raw: &Raw) -> Result<Option<BounceAddress>, SettingError> {
    let text = raw.get("bounce_address");
    if text.is_empty() {
        return Ok(None);
    }
    let problem = |why: &str| bad("bounce_address", format!("\"{text}\" {why}"));
    let (local, domain) = text
        .rsplit_once('@')
        .filter(|(l, d)| !l.is_empty() && !d.is_empty())
        .ok_or_else(|| problem("is not an address like bounces@news.example"))?;
    if local.contains('+') {
        return Err(problem("must not contain '+': it starts the VERP tag"));
    }
    if local.len() > 20 {
        return Err(problem(
            "has a local part over 20 characters (the tag needs room)",
        ));
    }
    if lettre::Address::new(local, domain).is_err() {
        return Err(problem("is not an address like bounces@news.example"));
    }
    Ok(Some(BounceAddress {
        local: local.to_string(),
        domain: domain.to_ascii_lowercase(),
    }))
}

/// Empty: no receiver. Needs `bounce_address` (what it accepts mail for).
pub(super) fn inbound_listen(raw: &Raw) -> Result<Option<String>, SettingError> {
    let listen = raw.get("inbound_listen");
    if listen.is_empty() {
        return Ok(None);
    }
    if !is_host_port(&listen) {
        return Err(bad(
            "inbound_listen",
            format!("expected HOST:PORT, got \"{listen}\""),
        ));
    }
    if raw.get("bounce_address").is_empty() {
        return Err(bad(
            "inbound_listen",
            "needs bounce_address (the address it takes mail for)",
        ));
    }
    Ok(Some(listen))
}

/// `provider=credential` pairs, each checked now so a wrong one stops
/// start-up rather than every webhook call.
pub(super) fn webhook_secrets(raw: &Raw) -> Result<WebhookSecrets, SettingError> {
    let mut secrets = WebhookSecrets::default();
    for item in raw.list("webhook_secrets") {
        let problem = |why: &str| bad("webhook_secrets", why.to_string());
        let (provider, value) = item
            .split_once('=')
            .map(|(p, v)| (p.trim(), v.trim()))
            .filter(|(_, v)| !v.is_empty())
            .ok_or_else(|| problem("expected provider=credential, e.g. mailgun=KEY"))?;
        match provider {
            "postmark" => {
                let (user, password) = value
                    .split_once(':')
                    .ok_or_else(|| problem("postmark needs USER:PASSWORD"))?;
                secrets.postmark = Some((user.to_string(), password.to_string()));
            }
            "mailgun" => secrets.mailgun = Some(value.to_string()),
            "sendgrid" => {
                if super::sendgrid_key(value).is_none() {
                    return Err(problem(
                        "sendgrid needs the Signed Event Webhook's verification key \
                         (base64, as SendGrid shows it: MFkw…)",
                    ));
                }
                secrets.sendgrid = Some(value.to_string());
            }
            "ses" => {
                let dir = std::path::PathBuf::from(value);
                if !dir.is_dir() {
                    return Err(problem(&format!(
                        "ses needs a folder of SNS signing certificates; {value} is not one"
                    )));
                }
                secrets.ses = Some(dir);
            }
            other => return Err(problem(&format!("unknown provider \"{other}\""))),
        }
    }
    Ok(secrets)
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
