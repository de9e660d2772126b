//! The settings as the admin console and the start-up log print them:
//! passwords in URLs, the secret key and the DKIM key file are masked.

use super::{DatabaseUrl, Settings, SmtpTls, SmtpUrl};

/// What a secret prints as.
const MASK: &str = "********";

impl Settings {
    /// A printable view with secrets masked (admin console, start-up), one
    /// entry per key in [`super::KEYS`] order.
    pub fn masked(&self) -> Vec<(&'static str, String)> {
        let dkim = |field: fn(&super::Dkim) -> &String| {
            self.dkim.as_ref().map(field).cloned().unwrap_or_default()
        };
        let mut entries = vec![
            ("listen", self.listen.clone()),
            ("base_url", self.base_url.to_string()),
            ("database_url", masked_database_url(&self.database_url)),
            (
                "smtp_url",
                self.smtp_url
                    .as_ref()
                    .map(masked_smtp_url)
                    .unwrap_or_default(),
            ),
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
            // Masked even when generated: it never leaves the process.
            ("secret_key", MASK.to_string()),
            (
                "resend_after_minutes",
                self.resend_after_minutes.to_string(),
            ),
            (
                "signup_rate_per_minute",
                self.signup_rate_per_minute.to_string(),
            ),
            ("trusted_proxies", joined(&self.trusted_proxies)),
            ("cors_origins", self.cors_origins.join(",")),
            ("dkim_domain", dkim(|d| &d.domain)),
            ("dkim_selector", dkim(|d| &d.selector)),
            ("dkim_private_key_file", masked_if(self.dkim.is_some())),
            (
                "body_timeout_seconds",
                self.body_timeout_seconds.to_string(),
            ),
            (
                "bounce_address",
                self.bounce_address
                    .as_ref()
                    .map(|b| b.to_string())
                    .unwrap_or_default(),
            ),
            (
                "inbound_listen",
                self.inbound_listen.clone().unwrap_or_default(),
            ),
            ("soft_bounce_limit", self.soft_bounce_limit.to_string()),
            ("webhook_secrets", self.masked_webhook_secrets()),
        ];
        entries.extend(self.masked_brand_and_digest());
        entries
    }

    /// The brand, template and digest settings of [`Settings::masked`].
    fn masked_brand_and_digest(&self) -> Vec<(&'static str, String)> {
        vec![
            ("site_name", self.brand.site_name.clone()),
            ("site_url", self.brand.site_url.clone()),
            ("logo_url", self.brand.logo_url.clone()),
            ("accent_color", self.brand.accent_color.clone()),
            ("postal_address", self.brand.postal_address.clone()),
            ("privacy_url", self.brand.privacy_url.clone()),
            ("consent_text", self.consent_text.clone()),
            (
                "templates_dir",
                self.templates_dir
                    .as_ref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default(),
            ),
            ("digest_max_articles", self.digest_max_articles.to_string()),
            ("archive_public", self.archive_public.to_string()),
            (
                "digest_mode",
                match self.digest_mode {
                    super::DigestMode::Send => "send",
                    super::DigestMode::Draft => "draft",
                }
                .to_string(),
            ),
            ("welcome_email", self.welcome_email.to_string()),
            (
                "smtp_ca_file",
                self.smtp_ca
                    .as_ref()
                    .map(|ca| ca.file.display().to_string())
                    .unwrap_or_default(),
            ),
        ]
    }
}

impl Settings {
    /// Which providers have a secret, the secrets masked.
    fn masked_webhook_secrets(&self) -> String {
        let w = &self.webhook_secrets;
        let mut out = Vec::new();
        if w.postmark.is_some() {
            out.push(format!("postmark={MASK}"));
        }
        if w.mailgun.is_some() {
            out.push(format!("mailgun={MASK}"));
        }
        if w.sendgrid.is_some() {
            out.push(format!("sendgrid={MASK}"));
        }
        if let Some(dir) = &w.ses {
            // A folder of public certificates: nothing secret to mask.
            out.push(format!("ses={}", dir.display()));
        }
        out.join(",")
    }
}

fn masked_if(present: bool) -> String {
    if present {
        MASK.to_string()
    } else {
        String::new()
    }
}

fn joined<T: ToString>(items: &[T]) -> String {
    items.iter().map(T::to_string).collect::<Vec<_>>().join(",")
}

/// Scheme, user, host and port; the password masked, TLS options left out.
fn masked_smtp_url(smtp: &SmtpUrl) -> String {
    let scheme = if smtp.tls == SmtpTls::Wrapper {
        "smtps"
    } else {
        "smtp"
    };
    let user = smtp
        .user
        .as_ref()
        .map(|u| format!("{u}:{MASK}@"))
        .unwrap_or_default();
    format!("{scheme}://{user}{}:{}", smtp.host, smtp.port)
}

impl Settings {
    /// The database as a command names it: the SQLite file's absolute
    /// path, or the PostgreSQL URL with its password masked.
    pub fn database_label(&self) -> String {
        match &self.database_url {
            DatabaseUrl::Sqlite(p) => std::path::absolute(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string(),
            db => masked_database_url(db),
        }
    }
}

/// The URL with its password (if any) masked.
fn masked_database_url(db: &DatabaseUrl) -> String {
    match db {
        DatabaseUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
        DatabaseUrl::Postgres(u) => url::Url::parse(u)
            .map(|mut u| {
                if u.password().is_some() {
                    let _ = u.set_password(Some(MASK));
                }
                u.to_string()
            })
            .unwrap_or_default(),
    }
}
