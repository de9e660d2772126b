//! The newsletter's brand: `site_name`, `site_url`, `logo_url`,
//! `accent_color`, `postal_address` and `privacy_url`, given to every
//! template as `brand` (pages, emails, the console, the archive). Unset
//! values are empty strings, so a template tests them with `{% if %}`.

use serde::Serialize;

use super::values::Raw;
use super::{bad, SettingError};

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Brand {
    /// Default: the host of `base_url`.
    pub site_name: String,
    pub site_url: String,
    pub logo_url: String,
    /// `#rgb` or `#rrggbb` (only these reach a style attribute).
    pub accent_color: String,
    /// The sender's postal address, in every digest's footer (CAN-SPAM).
    pub postal_address: String,
    pub privacy_url: String,
}

pub const DEFAULT_ACCENT: &str = "#1a56db";

impl Brand {
    pub(super) fn from_raw(raw: &Raw, base_url: &url::Url) -> Result<Self, SettingError> {
        let site_name = match raw.get("site_name") {
            s if s.is_empty() => base_url.host_str().unwrap_or("Newsletter").to_string(),
            s => line(&s, "site_name", 100)?,
        };
        Ok(Self {
            site_name,
            site_url: optional_url(raw, "site_url")?,
            logo_url: optional_url(raw, "logo_url")?,
            accent_color: color(&raw.get("accent_color"))?,
            postal_address: line(&raw.get("postal_address"), "postal_address", 300)?,
            privacy_url: optional_url(raw, "privacy_url")?,
        })
    }
}

/// One line of at most `max` characters.
fn line(text: &str, key: &str, max: usize) -> Result<String, SettingError> {
    if text.chars().count() > max {
        return Err(bad(key, format!("is longer than {max} characters")));
    }
    if text.chars().any(char::is_control) {
        return Err(bad(key, "must be one line without control characters"));
    }
    Ok(text.to_string())
}

/// Empty, or an http(s) URL.
fn optional_url(raw: &Raw, key: &str) -> Result<String, SettingError> {
    if raw.get(key).is_empty() {
        return Ok(String::new());
    }
    super::values::http_url(raw, key).map(|u| u.to_string())
}

fn color(text: &str) -> Result<String, SettingError> {
    let hex = text.strip_prefix('#').unwrap_or("");
    if matches!(hex.len(), 3 | 6) && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(bad(
            "accent_color",
            format!("expected a colour like #1a56db, got \"{text}\""),
        ))
    }
}
