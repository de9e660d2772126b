//! What every handler and worker shares: settings, the pool, the secret key,
//! templates, the mailer and the wake-up signals of the workers.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::Notify;

use crate::config::Settings;
use crate::db::{self, Pool};
use crate::mail::Mailer;
use crate::metrics::Metrics;

pub struct AppState {
    pub settings: Settings,
    pub pool: Pool,
    /// What the mail workers settle through ([`db::connect_settling`]).
    pub settle_pool: Pool,
    /// Keys unsubscribe links, confirmation tokens, suppression hashes, CSRF.
    pub secret: String,
    pub templates: minijinja::Environment<'static>,
    pub mailer: Mailer,
    /// Wakes the outbox worker; hands it rows signups leased to it.
    pub outbox: Arc<crate::subscriptions::handoff::Handoff>,
    /// Poked after a digest was fanned out.
    pub wake_deliveries: Notify,
    /// When the workers last failed to reach the database: they take over
    /// expired leases only a grace after it.
    pub db_reach: db::faults::Reach,
    pub signup_limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Per-IP ceiling on the preferences page (GET and POST).
    pub preferences_limiter: DefaultKeyedRateLimiter<IpAddr>,
    /// Console login throttles and the bound on concurrent argon2 work.
    pub login_guard: crate::limits::LoginGuard,
    /// The per-IP budget of feedback votes.
    pub vote_limiter: crate::limits::VoteLimiter,
    pub metrics: Metrics,
    /// Group commit of signups.
    pub signups: crate::subscriptions::batch::Batcher,
    pub dkim: Option<Arc<lettre::message::dkim::DkimConfig>>,
    /// The version id of `consent_text`; its wording is kept in the database.
    pub consent_version: String,
}

pub type SharedState = Arc<AppState>;

/// Requests a minute from one address to /preferences (a reader needs a
/// handful); past it, 429.
pub const PREFERENCES_PER_MINUTE: u32 = 30;

impl AppState {
    /// Connects, migrates and loads the secret key: everything a command
    /// needs before it can do work. Errors are one line for the operator.
    pub async fn open(settings: Settings) -> anyhow::Result<SharedState> {
        let url = settings.database_url.clone();
        let pool = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let pool = db::connect(&url)?;
            let mut conn = pool
                .get()
                .map_err(|e| anyhow::anyhow!("database unreachable: {e}"))?;
            db::migrate(&mut conn)?;
            Ok(pool)
        })
        .await??;
        let secret = match &settings.secret_key {
            Some(s) => s.clone(),
            None => db::run(&pool, db::app_state::secret_key)
                .await
                .map_err(|e| anyhow::anyhow!("loading secret_key: {e}"))?,
        };
        let consent_version = crate::domain::consent_text_version(&settings.consent_text);
        let (v, text) = (consent_version.clone(), settings.consent_text.clone());
        db::run(&pool, move |c| {
            db::consent::save_text(c, &v, &text, db::now())
        })
        .await
        .map_err(|e| anyhow::anyhow!("keeping the consent text: {e}"))?;
        let signup_limiter = NonZeroU32::new(settings.signup_rate_per_minute)
            .map(|n| RateLimiter::keyed(Quota::per_minute(n)));
        let metrics = Metrics::new(pool.clone())?;
        let settle_pool = db::connect_settling(&settings.database_url, &pool);
        let settings_dkim = settings.dkim.as_ref().map(|d| d.signing.clone());
        let outbox = Arc::new(crate::subscriptions::handoff::Handoff::default());
        let signups = crate::subscriptions::batch::Batcher::start(
            pool.clone(),
            outbox.clone(),
            crate::subscriptions::SignupPolicy::new(&settings, &secret),
            metrics.signup_group_size.clone(),
            if settings.database_url.is_postgres() {
                2
            } else {
                1
            },
        );
        Ok(Arc::new(AppState {
            signups,
            mailer: Mailer::from_settings(&settings)?,
            templates: crate::mail::templates::environment(&settings)?,
            settings,
            settle_pool,
            pool,
            secret,
            outbox,
            wake_deliveries: Notify::new(),
            db_reach: Default::default(),
            signup_limiter,
            preferences_limiter: RateLimiter::keyed(Quota::per_minute(
                NonZeroU32::new(PREFERENCES_PER_MINUTE).unwrap_or(NonZeroU32::MIN),
            )),
            login_guard: Default::default(),
            vote_limiter: Default::default(),
            metrics,
            dkim: settings_dkim,
            consent_version,
        }))
    }

    /// The message's bytes, DKIM-signed when signing is configured.
    pub fn sign_and_format(&self, mut msg: lettre::Message) -> Vec<u8> {
        if let Some(dkim) = &self.dkim {
            msg.sign(dkim);
        }
        msg.formatted()
    }

    /// The envelope sender naming one email and its reader
    /// (`bounces+TAG@domain`); `None` without `bounce_address`.
    pub fn verp_address(&self, tag: &crate::domain::verp::Tag) -> Option<lettre::Address> {
        let bounce = self.settings.bounce_address.as_ref()?;
        let tag = tag.encode(&self.secret)?;
        let local = format!("{}{}{tag}", bounce.local, crate::domain::verp::DELIMITER);
        lettre::Address::new(local, &bounce.domain).ok()
    }

    /// The reader's List-Unsubscribe mailto
    /// (`mailto:unsubscribe+TOKEN@domain?subject=unsubscribe`); `None`
    /// without `bounce_address`, as nothing would read it.
    pub fn mailto_unsubscribe(&self, subscriber_id: &str) -> Option<String> {
        let bounce = self.settings.bounce_address.as_ref()?;
        let token = crate::domain::verp::unsubscribe_token(&self.secret, subscriber_id)?;
        Some(format!(
            "mailto:{}{}{token}@{}?subject=unsubscribe",
            crate::domain::verp::UNSUBSCRIBE_LOCAL,
            crate::domain::verp::DELIMITER,
            bounce.domain
        ))
    }

    /// Absolute link under `base_url`.
    pub fn link(&self, path_and_query: &str) -> String {
        let base = self.settings.base_url.as_str().trim_end_matches('/');
        format!("{base}{path_and_query}")
    }
}
