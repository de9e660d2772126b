//! Where mail goes: an SMTP server, or `.eml` files in `outbox_dir`.
//!
//! The SMTP side opens its own TCP connections (with TCP_NODELAY: released
//! lettre never sets it and each message then waits on a delayed ACK, ~23
//! messages/s per connection) and hands them to lettre's
//! `AsyncSmtpConnection`. Idle connections are kept for reuse; a semaphore
//! bounds how many are in flight (`send_concurrency`) and a governor bucket
//! the rate (`send_rate`).

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use tokio::sync::Semaphore;

use crate::config::{Settings, SmtpTls, SmtpUrl};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_IDLE: usize = 64;

/// Why a message did not leave. Transient ones are retried with backoff.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    #[error("transient: {0}")]
    Transient(String),
    /// The server refused for good (5xx); `recipient` when it refused the
    /// address itself, which bounces the reader.
    #[error("permanent: {reason}")]
    Permanent { reason: String, recipient: bool },
}

enum Transport {
    Smtp(SmtpConnector),
    File(PathBuf),
}

/// Sends raw messages through the configured transport.
pub struct Mailer {
    transport: Transport,
    in_flight: Arc<Semaphore>,
    rate: Option<DefaultDirectRateLimiter>,
    concurrency: usize,
}

impl Mailer {
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let transport = match &settings.smtp_url {
            Some(url) => Transport::Smtp(SmtpConnector::new(url.clone())),
            None => {
                std::fs::create_dir_all(&settings.outbox_dir).map_err(|e| {
                    anyhow::anyhow!(
                        "setting outbox_dir: cannot create {}: {e}",
                        settings.outbox_dir.display()
                    )
                })?;
                Transport::File(settings.outbox_dir.clone())
            }
        };
        let rate =
            NonZeroU32::new(settings.send_rate).map(|n| RateLimiter::direct(Quota::per_second(n)));
        Ok(Self {
            transport,
            in_flight: Arc::new(Semaphore::new(settings.send_concurrency)),
            rate,
            concurrency: settings.send_concurrency,
        })
    }

    /// How many sends may be in flight at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// A one-line description for start-up output (no credentials).
    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Smtp(c) => format!("SMTP {}:{}", c.url.host, c.url.port),
            Transport::File(dir) => format!(".eml files in {}", dir.display()),
        }
    }

    pub async fn send(&self, envelope: &Envelope, raw: &[u8]) -> Result<(), SendError> {
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| SendError::Transient("mailer shut down".into()))?;
        if let Some(rate) = &self.rate {
            rate.until_ready().await;
        }
        match &self.transport {
            Transport::File(dir) => write_eml(dir, raw).await,
            Transport::Smtp(connector) => connector.send(envelope, raw).await,
        }
    }
}

async fn write_eml(dir: &std::path::Path, raw: &[u8]) -> Result<(), SendError> {
    let name = format!(
        "{}-{}.eml",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.6f"),
        uuid::Uuid::new_v4().simple()
    );
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let io = |e: std::io::Error| SendError::Transient(format!("writing outbox file: {e}"));
    tokio::fs::write(&tmp, raw).await.map_err(io)?;
    tokio::fs::rename(&tmp, &path).await.map_err(io)
}

struct SmtpConnector {
    url: SmtpUrl,
    hello: ClientId,
    idle: Mutex<Vec<AsyncSmtpConnection>>,
}

impl SmtpConnector {
    fn new(url: SmtpUrl) -> Self {
        Self {
            url,
            hello: ClientId::default(),
            idle: Mutex::new(Vec::new()),
        }
    }

    fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        self.idle.lock().ok()?.pop()
    }

    fn put_idle(&self, conn: AsyncSmtpConnection) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let url = &self.url;
        let tls = || TlsParameters::new(url.host.clone()).map_err(classify);
        let mut conn = if url.tls == SmtpTls::Wrapper {
            // Implicit TLS: lettre opens this socket itself (no TCP_NODELAY).
            AsyncSmtpConnection::connect_tokio1(
                (url.host.as_str(), url.port),
                Some(CONNECT_TIMEOUT),
                &self.hello,
                Some(tls()?),
                None,
            )
            .await
            .map_err(classify)?
        } else {
            let stream = tokio::time::timeout(
                CONNECT_TIMEOUT,
                tokio::net::TcpStream::connect((url.host.as_str(), url.port)),
            )
            .await
            .map_err(|_| SendError::Transient("SMTP connect timed out".into()))?
            .map_err(|e| SendError::Transient(format!("SMTP connect: {e}")))?;
            stream
                .set_nodelay(true)
                .map_err(|e| SendError::Transient(format!("SMTP socket: {e}")))?;
            let mut conn =
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
                    .await
                    .map_err(classify)?;
            let upgrade = match url.tls {
                SmtpTls::Required => true,
                SmtpTls::Opportunistic => conn.can_starttls(),
                _ => false,
            };
            if upgrade {
                conn.starttls(tls()?, &self.hello).await.map_err(classify)?;
            }
            conn
        };
        if let (Some(user), Some(password)) = (&url.user, &url.password) {
            conn.auth(
                &[Mechanism::Plain, Mechanism::Login],
                &Credentials::new(user.clone(), password.clone()),
            )
            .await
            .map_err(classify)?;
        }
        Ok(conn)
    }

    async fn send(&self, envelope: &Envelope, raw: &[u8]) -> Result<(), SendError> {
        let mut conn = match self.take_idle() {
            Some(conn) if !conn.has_broken() => conn,
            // A refusal while connecting (bad credentials, 5xx greeting) is
            // about the server, not this message: retry it later.
            _ => self.connect().await.map_err(|e| match e {
                SendError::Permanent { reason, .. } => SendError::Transient(reason),
                other => other,
            })?,
        };
        match tokio::time::timeout(SEND_TIMEOUT, conn.send(envelope, raw)).await {
            Ok(Ok(_)) => {
                self.put_idle(conn);
                Ok(())
            }
            Ok(Err(e)) => {
                // After a refusal the session is still usable once reset;
                // simpler and safe to drop it.
                conn.abort().await;
                Err(classify(e))
            }
            Err(_) => {
                conn.abort().await;
                Err(SendError::Transient("SMTP send timed out".into()))
            }
        }
    }
}

/// Maps lettre's error onto retry policy: 5xx is permanent, everything else
/// (4xx, connection trouble, timeouts, TLS hiccups) transient.
fn classify(e: lettre::transport::smtp::Error) -> SendError {
    if e.is_permanent() {
        let reason = e.to_string();
        let code = e.status().map(|c| c.to_string()).unwrap_or_default();
        // 550/551/553 and enhanced 5.1.x are recipient refusals.
        let recipient = code.starts_with("550")
            || code.starts_with("551")
            || code.starts_with("553")
            || reason.contains("5.1.");
        SendError::Permanent { reason, recipient }
    } else {
        SendError::Transient(e.to_string())
    }
}
