//! The two connection URLs a setting holds: `database_url` ([`DatabaseUrl`])
//! and `smtp_url` ([`SmtpUrl`], with its [`SmtpTls`] mode), parsed once at
//! start. Problems come back as text; [`super::Settings::from_map`] puts the
//! key in front.

use std::path::PathBuf;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
