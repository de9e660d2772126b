//! Where mail goes: an SMTP server, or `.eml` files in `outbox_dir`.
//!
//! The SMTP side opens its own TCP connections (with TCP_NODELAY: released
//! lettre never sets it and each message then waits on a delayed ACK, ~23
//! messages/s per connection) and hands them to lettre's
//! `AsyncSmtpConnection`. Idle connections are kept for reuse; a semaphore
//! bounds how many are in flight (`send_concurrency`) and a governor bucket
//! the rate (`send_rate`).
//!
//! Where the server offers PIPELINING (RFC 2920), MAIL, RCPT and DATA go in
//! one write and their replies are read after it: a message costs two round
//! trips instead of four (lettre sends one command per round trip).

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, MailBodyParameter, MailParameter};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Semaphore;

use crate::config::{Settings, SmtpTls, SmtpUrl};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_IDLE: usize = 64;

/// Why a message did not leave, judged by the command that failed and the
/// reply's enhanced status code (RFC 3463), so that only a refusal of the
/// recipient itself ever touches a reader.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// Try again later: a 4xx reply, connection or TLS trouble, a timeout.
    #[error("transient: {0}")]
    Transient(String),
    /// The recipient's mailbox or domain does not exist (5xx to RCPT, or an
    /// X.1.x / X.2.1 mailbox code anywhere): bounces the reader.
    #[error("recipient refused: {0}")]
    Recipient(String),
    /// A permanent refusal of the sender, the content or the session (5xx to
    /// MAIL FROM, to DATA or the message, at the greeting or login). The
    /// reader is untouched and the send is retried; repeated refusals pause
    /// a digest.
    #[error("refused: {0}")]
    Refused(String),
}

/// The SMTP command a reply answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Greeting, EHLO, STARTTLS, AUTH.
    Session,
    Mail,
    Rcpt,
    /// The DATA command or the message after it.
    Data,
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
            Some(url) => Transport::Smtp(SmtpConnector::new(
                url.clone(),
                settings.smtp_ca.as_ref().map(|ca| ca.pem.as_slice()),
            )?),
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

    /// Connects as a send would (EHLO, STARTTLS, login) and hangs up:
    /// what `tidings doctor` checks. Says how the session was secured.
    pub async fn probe(&self) -> Result<String, SendError> {
        match &self.transport {
            Transport::File(dir) => {
                let probe = dir.join(".tidings-doctor-probe");
                std::fs::write(&probe, b"")
                    .and_then(|()| std::fs::remove_file(&probe))
                    .map_err(|e| {
                        SendError::Transient(format!("cannot write in {}: {e}", dir.display()))
                    })?;
                Ok(format!(".eml files in {}, writable", dir.display()))
            }
            Transport::Smtp(c) => {
                let session = c.connect().await?;
                let how = match session.conn.is_encrypted() {
                    true => "over TLS",
                    false => "unencrypted",
                };
                Ok(format!(
                    "SMTP {}:{} answers EHLO, {how}",
                    c.url.host, c.url.port
                ))
            }
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
    idle: Mutex<Vec<Session>>,
    /// Mozilla's roots, and `smtp_ca_file`'s when set.
    tls: TlsParameters,
    /// When a TLS failure was last logged, and how many since: one warning
    /// per burst, not one per retry.
    tls_failures: Mutex<(Option<std::time::Instant>, u64)>,
}

/// How long TLS failures after a logged one are only counted.
const TLS_WARNING_EVERY: Duration = Duration::from_secs(60);

/// A connection and whether its server takes pipelined commands.
struct Session {
    conn: AsyncSmtpConnection,
    pipelining: bool,
}

impl Session {
    /// One message: pipelined where the server allows it, else command by
    /// command. A failure carries the command it answered.
    async fn send(
        &mut self,
        envelope: &Envelope,
        raw: &[u8],
    ) -> Result<(), (Stage, lettre::transport::smtp::Error)> {
        let ascii_address = |a: &lettre::Address| AsRef::<str>::as_ref(a).is_ascii();
        let mut params = Vec::new();
        let ascii_addresses =
            envelope.from().is_none_or(ascii_address) && envelope.to().iter().all(ascii_address);
        if !ascii_addresses {
            params.push(MailParameter::SmtpUtfEight);
        }
        if !raw.is_ascii() {
            params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let mail = Mail::new(envelope.from().cloned(), params);
        let at = |stage| move |e| (stage, e);
        if self.pipelining {
            let mut commands = mail.to_string();
            for to in envelope.to() {
                commands.push_str(&Rcpt::new(to.clone(), vec![]).to_string());
            }
            commands.push_str(&Data.to_string());
            // The first reply is MAIL's; then one per RCPT, then DATA's 354.
            // A refusal ends here (the caller drops the session with its
            // replies unread), classified by the command it answered.
            self.conn.command(commands).await.map_err(at(Stage::Mail))?;
            for _ in envelope.to() {
                self.conn.read_response().await.map_err(at(Stage::Rcpt))?;
            }
            self.conn.read_response().await.map_err(at(Stage::Data))?;
        } else {
            self.conn.command(mail).await.map_err(at(Stage::Mail))?;
            for to in envelope.to() {
                let rcpt = Rcpt::new(to.clone(), vec![]);
                self.conn.command(rcpt).await.map_err(at(Stage::Rcpt))?;
            }
            self.conn.command(Data).await.map_err(at(Stage::Data))?;
        }
        self.conn
            .message(raw)
            .await
            .map(drop)
            .map_err(at(Stage::Data))
    }
}

impl SmtpConnector {
    fn new(url: SmtpUrl, extra_roots: Option<&[u8]>) -> anyhow::Result<Self> {
        let mut tls = TlsParameters::builder(url.host.clone());
        if let Some(pem) = extra_roots {
            let roots = Certificate::from_pem(pem)
                .map_err(|e| anyhow::anyhow!("setting smtp_ca_file: {e}"))?;
            tls = tls.add_root_certificate(roots);
        }
        let tls = tls
            .build()
            .map_err(|e| anyhow::anyhow!("setting smtp_url: TLS: {e}"))?;
        if url.tls == SmtpTls::None && url.user.is_some() && !is_loopback_name(&url.host) {
            tracing::warn!(
                host = %url.host,
                "smtp_url has tls=none: the SMTP password goes to this relay unencrypted"
            );
        }
        Ok(Self {
            url,
            hello: ClientId::default(),
            idle: Mutex::new(Vec::new()),
            tls,
            tls_failures: Mutex::new((None, 0)),
        })
    }

    /// A TLS failure, logged at warn with its cause once per burst (the
    /// retries that follow would otherwise log it at info, many times).
    fn tls_failed(&self, e: lettre::transport::smtp::Error) -> SendError {
        let now = std::time::Instant::now();
        if let Ok(mut seen) = self.tls_failures.lock() {
            let (last, count) = &mut *seen;
            *count += 1;
            if last.is_none_or(|t| now.duration_since(t) >= TLS_WARNING_EVERY) {
                tracing::warn!(
                    host = %self.url.host,
                    failures = *count,
                    cause = %error_chain(&e),
                    "SMTP TLS failed (check the relay's certificate, or trust its CA with smtp_ca_file)"
                );
                *last = Some(now);
                *count = 0;
            }
        }
        at_session(e)
    }

    fn take_idle(&self) -> Option<Session> {
        self.idle.lock().ok()?.pop()
    }

    fn put_idle(&self, session: Session) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE {
                idle.push(session);
            }
        }
    }

    async fn connect(&self) -> Result<Session, SendError> {
        let url = &self.url;
        let tls = || self.tls.clone();
        // lettre reports a refused certificate as a connection error: on
        // an implicit-TLS connect, tell it from a refused TCP connection by
        // its text.
        let fail = |e: lettre::transport::smtp::Error| {
            let chain = error_chain(&e).to_ascii_lowercase();
            match e.is_tls() || chain.contains("certificate") || chain.contains("handshake") {
                true => self.tls_failed(e),
                false => at_session(e),
            }
        };
        let mut loopback = is_loopback_name(&url.host);
        let mut conn = if url.tls == SmtpTls::Wrapper {
            // Implicit TLS: lettre opens this socket itself (no TCP_NODELAY).
            AsyncSmtpConnection::connect_tokio1(
                (url.host.as_str(), url.port),
                Some(CONNECT_TIMEOUT),
                &self.hello,
                Some(tls()),
                None,
            )
            .await
            .map_err(fail)?
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
            loopback |= stream.peer_addr().is_ok_and(|a| a.ip().is_loopback());
            let stream = DotLineWithBody::new(stream);
            let mut conn =
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
                    .await
                    .map_err(at_session)?;
            let upgrade = match url.tls {
                SmtpTls::Required => true,
                SmtpTls::Opportunistic => conn.can_starttls(),
                _ => false,
            };
            if upgrade {
                conn.starttls(tls(), &self.hello)
                    .await
                    .map_err(|e| self.tls_failed(e))?;
            }
            conn
        };
        // lettre keeps no note of PIPELINING: ask again (EHLO may be
        // repeated; it only resets the mail transaction) and read the list.
        // Before AUTH, so the repeat cannot disturb a login.
        let pipelining = conn
            .command(Ehlo::new(self.hello.clone()))
            .await
            .map_err(at_session)?
            .message()
            .any(|line| line.eq_ignore_ascii_case("PIPELINING"));
        if let (Some(user), Some(password)) = (&url.user, &url.password) {
            if !conn.is_encrypted() && !loopback && url.tls != SmtpTls::None {
                return Err(SendError::Refused(format!(
                    "not sending the SMTP password unencrypted to {}: it offers no STARTTLS \
                     (use smtps://, or tls=none in smtp_url to allow it)",
                    url.host
                )));
            }
            conn.auth(
                &[Mechanism::Plain, Mechanism::Login],
                &Credentials::new(user.clone(), password.clone()),
            )
            .await
            .map_err(at_session)?;
        }
        Ok(Session { conn, pipelining })
    }

    async fn send(&self, envelope: &Envelope, raw: &[u8]) -> Result<(), SendError> {
        let mut session = match self.take_idle() {
            Some(session) if !session.conn.has_broken() => session,
            _ => self.connect().await?,
        };
        match tokio::time::timeout(SEND_TIMEOUT, session.send(envelope, raw)).await {
            Ok(Ok(())) => {
                self.put_idle(session);
                Ok(())
            }
            Ok(Err((stage, e))) => {
                // After a refusal the session is still usable once reset;
                // simpler and safe to drop it.
                session.conn.abort().await;
                Err(classify(stage, &e))
            }
            Err(_) => {
                session.conn.abort().await;
                Err(SendError::Transient("SMTP send timed out".into()))
            }
        }
    }
}

/// The SMTP socket, sending a message body and its final dot line as one
/// write. lettre writes and flushes them one after the other; with
/// TCP_NODELAY that is two packets (and two trips through the kernel on both
/// ends) where one does. After a `DATA` command, flushes are held until the
/// buffered bytes end with the dot line; everything else passes at once.
/// Under TLS the bytes here are encrypted, no `DATA` is seen and nothing is
/// held.
#[derive(Debug)]
struct DotLineWithBody<S> {
    inner: S,
    pending: Vec<u8>,
    written: usize,
    in_data: bool,
}

const DATA_COMMAND: &[u8] = b"DATA\r\n";
const END_OF_DATA: &[u8] = b"\r\n.\r\n";

impl<S> DotLineWithBody<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            written: 0,
            in_data: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for DotLineWithBody<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for DotLineWithBody<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().pending.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let ends_data = this.pending.ends_with(END_OF_DATA);
        if this.in_data && !ends_data {
            return Poll::Ready(Ok(()));
        }
        while this.written < this.pending.len() {
            let n =
                ready!(Pin::new(&mut this.inner).poll_write(cx, &this.pending[this.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            this.written += n;
        }
        // DATA alone, or last of a pipelined group (MAIL, RCPT, DATA).
        if this.pending == DATA_COMMAND || this.pending.ends_with(b"\r\nDATA\r\n") {
            this.in_data = true;
        } else if ends_data {
            this.in_data = false;
        }
        this.pending.clear();
        this.written = 0;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.in_data = false;
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for DotLineWithBody<tokio::net::TcpStream> {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.inner.peer_addr()
    }
}

/// `localhost` or a loopback address: a relay on this machine, where a
/// password in clear crosses no network.
fn is_loopback_name(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An error and its causes, `: `-separated (TLS errors keep the useful
/// part, such as "UnknownIssuer", in their source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    out
}

fn at_session(e: lettre::transport::smtp::Error) -> SendError {
    classify(Stage::Session, &e)
}

/// Maps a failed command onto what it means for the reader (RFC 5321
/// reply codes, RFC 3463 enhanced codes). 4xx and anything without a reply
/// (connection, TLS, timeouts) are transient. A 5xx bounces the reader
/// only when it is about the recipient: an answer to RCPT (whose enhanced
/// code, if any, is an addressing or mailbox one), or an X.1.x / X.2.1
/// mailbox code in answer to the message (a server that checks recipients
/// after DATA; every message has one recipient). Everything else permanent is a refusal
/// of the sender, the content or the session.
fn classify(stage: Stage, e: &lettre::transport::smtp::Error) -> SendError {
    judge(stage, e.is_permanent(), e.to_string())
}

fn judge(stage: Stage, permanent: bool, reason: String) -> SendError {
    if !permanent {
        return SendError::Transient(reason);
    }
    let recipient = match (stage, enhanced_code(&reason)) {
        (Stage::Rcpt, None) => true,
        (Stage::Rcpt | Stage::Data, Some((5, subject, detail))) => is_mailbox_code(subject, detail),
        _ => false,
    };
    if recipient {
        SendError::Recipient(reason)
    } else {
        SendError::Refused(reason)
    }
}

/// X.1.0–X.1.3, X.1.6, X.1.10 (bad mailbox, domain, syntax; moved; null
/// MX) and X.2.1 (mailbox disabled): the address itself is no good.
/// X.1.7/X.1.8 are about the sender, X.2.2 (full) passes.
fn is_mailbox_code(subject: u16, detail: u16) -> bool {
    matches!((subject, detail), (1, 0..=3 | 6 | 10) | (2, 1))
}

/// The first RFC 3463 code (`class.subject.detail`) in a reply's text.
fn enhanced_code(text: &str) -> Option<(u16, u16, u16)> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find_map(|word| {
            let mut parts = word.split('.');
            let class = parts.next()?.parse::<u16>().ok()?;
            let subject = parts.next()?.parse::<u16>().ok()?;
            let detail = parts.next()?.parse::<u16>().ok()?;
            let fits = matches!(class, 2 | 4 | 5) && subject < 1000 && detail < 1000;
            (fits && parts.next().is_none()).then_some((class, subject, detail))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn received(peer: &mut tokio::io::DuplexStream) -> Vec<u8> {
        let mut buf = vec![0; 4096];
        match tokio::time::timeout(Duration::from_millis(50), peer.read(&mut buf)).await {
            Ok(Ok(n)) => buf[..n].to_vec(),
            _ => Vec::new(),
        }
    }

    fn judged(stage: Stage, reply: &str) -> &'static str {
        let permanent = reply.starts_with('5');
        match judge(
            stage,
            permanent,
            format!("error ({}): {}", &reply[..3], &reply[4..]),
        ) {
            SendError::Transient(_) => "transient",
            SendError::Recipient(_) => "recipient",
            SendError::Refused(_) => "refused",
        }
    }

    #[test]
    fn only_a_refusal_of_the_recipient_bounces() {
        let cases = [
            (
                Stage::Rcpt,
                "550 5.1.1 <a@b.example>: Recipient address rejected",
                "recipient",
            ),
            (
                Stage::Rcpt,
                "550 Requested action not taken: mailbox unavailable",
                "recipient",
            ),
            (
                Stage::Rcpt,
                "553 5.1.3 Bad recipient address syntax",
                "recipient",
            ),
            (
                Stage::Rcpt,
                "550 5.1.10 Recipient address rejected: null MX",
                "recipient",
            ),
            (
                Stage::Rcpt,
                "550 5.2.1 The email account that you tried to reach is disabled",
                "recipient",
            ),
            (Stage::Rcpt, "552 5.2.2 Mailbox full", "refused"),
            (
                Stage::Rcpt,
                "554 5.7.1 <a@b.example>: Relay access denied",
                "refused",
            ),
            (Stage::Rcpt, "450 4.2.1 Mailbox busy", "transient"),
            (Stage::Mail, "550 5.7.1 Sender not authorized", "refused"),
            (
                Stage::Mail,
                "553 5.1.8 <news@x.example>: Sender address rejected: Domain not found",
                "refused",
            ),
            (Stage::Mail, "550 5.1.0 Sender rejected", "refused"),
            (Stage::Mail, "451 4.3.0 Temporary failure", "transient"),
            (Stage::Data, "550 5.7.1 Message rejected as spam", "refused"),
            (Stage::Data, "554 5.6.0 Message content rejected", "refused"),
            (Stage::Data, "552 5.3.4 Message too big", "refused"),
            (
                Stage::Data,
                "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found",
                "recipient",
            ),
            (Stage::Data, "554 Transaction failed", "refused"),
            (
                Stage::Session,
                "535 5.7.8 Authentication credentials invalid",
                "refused",
            ),
            (Stage::Session, "554 5.7.1 Access denied", "refused"),
            (
                Stage::Session,
                "421 4.7.0 Try again later, closing connection",
                "transient",
            ),
        ];
        for (stage, reply, want) in cases {
            assert_eq!(judged(stage, reply), want, "{stage:?} {reply}");
        }
    }

    #[test]
    fn enhanced_codes_are_found_in_reply_text() {
        assert_eq!(
            enhanced_code("permanent error (550): 5.1.1 <a@b.c>"),
            Some((5, 1, 1))
        );
        assert_eq!(enhanced_code("(550): 5.1.10 null MX"), Some((5, 1, 10)));
        assert_eq!(enhanced_code("(550): mailbox 1.2 unavailable"), None);
        assert_eq!(enhanced_code("(550): see 192.168.0.1"), None);
    }

    #[tokio::test]
    async fn body_and_dot_line_leave_together_commands_at_once() {
        let (ours, mut peer) = tokio::io::duplex(4096);
        let mut stream = DotLineWithBody::new(ours);
        stream.write_all(b"MAIL FROM:<a@b>\r\n").await.unwrap();
        stream.flush().await.unwrap();
        assert_eq!(received(&mut peer).await, b"MAIL FROM:<a@b>\r\n");
        stream.write_all(DATA_COMMAND).await.unwrap();
        stream.flush().await.unwrap();
        assert_eq!(received(&mut peer).await, DATA_COMMAND);
        stream.write_all(b"Subject: x\r\n\r\nbody").await.unwrap();
        stream.flush().await.unwrap();
        assert_eq!(
            received(&mut peer).await,
            b"",
            "the body waits for its dot line"
        );
        stream.write_all(END_OF_DATA).await.unwrap();
        stream.flush().await.unwrap();
        assert_eq!(
            received(&mut peer).await,
            b"Subject: x\r\n\r\nbody\r\n.\r\n"
        );
        stream.write_all(b"QUIT\r\n").await.unwrap();
        stream.flush().await.unwrap();
        assert_eq!(received(&mut peer).await, b"QUIT\r\n");
    }
}
