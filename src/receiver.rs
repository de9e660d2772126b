//! The built-in SMTP/LMTP receiver (`inbound_listen`): a small server that
//! takes mail only for the bounce address (any VERP tag) and the mailto
//! unsubscribe addresses, and hands each message to the same path as
//! `tidings inbound` ([`crate::bounces::receive`], source `smtp`).
//!
//! Bounded: at most [`CONNECTIONS`] sessions at once (more are told 421
//! and closed), lines of at most [`LINE_MAX`] octets, messages of at most
//! [`crate::bounces::INBOUND_MAX`] (552 past it), [`IDLE`] to send each
//! command. A database fault answers 451, so the sending MTA retries; a
//! message that is not a bounce is accepted and dropped (refusing it would
//! only make a bounce of a bounce).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::config::BounceAddress;
use crate::domain::BounceSource;
use crate::state::SharedState;

/// Sessions served at once.
pub const CONNECTIONS: usize = 32;
/// Longest command line (RFC 5321 says 512 with its CRLF; some send more).
pub const LINE_MAX: usize = 1000;
/// Longest wait for the next command or line of data.
pub const IDLE: Duration = Duration::from_secs(60);
/// Recipients of one message.
const RECIPIENTS_MAX: usize = 20;

/// Binds `inbound_listen`; `None` when it is not set.
pub async fn bind(state: &SharedState) -> anyhow::Result<Option<TcpListener>> {
    let Some(addr) = state.settings.inbound_listen.as_deref() else {
        return Ok(None);
    };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("setting inbound_listen: cannot bind {addr}: {e}"))?;
    Ok(Some(listener))
}

/// Accepts sessions until `shutdown`.
pub async fn run(state: SharedState, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    let places = Arc::new(Semaphore::new(CONNECTIONS));
    loop {
        let (mut stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "inbound receiver: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let Ok(place) = places.clone().try_acquire_owned() else {
            let _ = stream
                .write_all(b"421 4.3.2 too many connections, try again later\r\n")
                .await;
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(e) = session(&state, stream).await {
                tracing::debug!(error = %e, "inbound session ended");
            }
            drop(place);
        });
    }
}

/// One envelope being received.
#[derive(Default)]
struct Envelope {
    from: Option<String>,
    to: Vec<String>,
}

async fn session(state: &SharedState, stream: TcpStream) -> anyhow::Result<()> {
    let Some(bounce) = state.settings.bounce_address.clone() else {
        return Ok(());
    };
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let host = state
        .settings
        .base_url
        .host_str()
        .unwrap_or("localhost")
        .to_string();
    write
        .write_all(format!("220 {host} Tidings inbound\r\n").as_bytes())
        .await?;
    let mut lmtp = false;
    let mut env = Envelope::default();
    loop {
        let Some(line) = read_line(&mut read).await? else {
            return Ok(());
        };
        let upper = line.to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or("");
        let reply: String = match verb {
            "EHLO" | "LHLO" => {
                lmtp = verb == "LHLO";
                format!(
                    "250-{host}\r\n250-8BITMIME\r\n250-SIZE {}\r\n250 ENHANCEDSTATUSCODES\r\n",
                    crate::bounces::INBOUND_MAX
                )
            }
            "HELO" => format!("250 {host}\r\n"),
            "MAIL" => match path_of(&line, "FROM:") {
                Some(from) => {
                    env = Envelope {
                        from: Some(from),
                        to: Vec::new(),
                    };
                    "250 2.1.0 ok\r\n".into()
                }
                None => "501 5.5.4 syntax: MAIL FROM:<address>\r\n".into(),
            },
            "RCPT" => rcpt(&mut env, &line, &bounce),
            "DATA" if env.from.is_none() || env.to.is_empty() => {
                "503 5.5.1 MAIL and RCPT first\r\n".into()
            }
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let outcome = data(state, &mut read, std::mem::take(&mut env)).await?;
                let times = if lmtp { outcome.1 } else { 1 };
                outcome.0.repeat(times)
            }
            "RSET" => {
                env = Envelope::default();
                "250 2.0.0 ok\r\n".into()
            }
            "NOOP" => "250 2.0.0 ok\r\n".into(),
            "QUIT" => {
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => "502 5.5.2 command not implemented\r\n".into(),
        };
        write.write_all(reply.as_bytes()).await?;
    }
}

/// RCPT TO: only our addresses.
fn rcpt(env: &mut Envelope, line: &str, bounce: &BounceAddress) -> String {
    if env.from.is_none() {
        return "503 5.5.1 MAIL first\r\n".into();
    }
    let Some(to) = path_of(line, "TO:") else {
        return "501 5.5.4 syntax: RCPT TO:<address>\r\n".into();
    };
    if env.to.len() >= RECIPIENTS_MAX {
        return "452 4.5.3 too many recipients\r\n".into();
    }
    if !is_ours(&to, bounce) {
        return "550 5.1.1 no such mailbox here\r\n".into();
    }
    env.to.push(to);
    "250 2.1.5 ok\r\n".into()
}

/// The bounce address (tagged or not) or an unsubscribe address, at the
/// bounce domain.
fn is_ours(address: &str, bounce: &BounceAddress) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    if !domain.eq_ignore_ascii_case(&bounce.domain) {
        return false;
    }
    let base = local
        .split_once(crate::domain::verp::DELIMITER)
        .map_or(local, |(b, _)| b);
    base.eq_ignore_ascii_case(&bounce.local)
        || (local.contains(crate::domain::verp::DELIMITER)
            && base.eq_ignore_ascii_case(crate::domain::verp::UNSUBSCRIBE_LOCAL))
}

/// `<address>` after `MAIL FROM:` / `RCPT TO:` (the null path is "").
fn path_of(line: &str, keyword: &str) -> Option<String> {
    let rest = line.get(5..)?.trim_start();
    if !rest.to_ascii_uppercase().starts_with(keyword) {
        return None;
    }
    let rest = rest.get(keyword.len()..)?.trim_start();
    let inner = rest.strip_prefix('<')?.split_once('>')?.0;
    Some(inner.to_string())
}

/// Reads the message and processes it; the reply and how many times to
/// send it (LMTP answers once per recipient).
async fn data<R: AsyncBufReadExt + Unpin>(
    state: &SharedState,
    read: &mut R,
    env: Envelope,
) -> anyhow::Result<(String, usize)> {
    let n = env.to.len();
    let Some(raw) = read_data(read).await? else {
        return Ok(("552 5.3.4 message too big\r\n".into(), n));
    };
    let reply = match crate::bounces::receive(state, raw, env.to, BounceSource::Smtp).await {
        Ok(_) => "250 2.0.0 accepted\r\n".to_string(),
        Err(e) => {
            tracing::warn!(error = %e, "inbound message not processed; the sender will retry");
            "451 4.3.0 try again later\r\n".to_string()
        }
    };
    Ok((reply, n))
}

/// The message up to the lone dot, dot-unstuffed; `None` when it is over
/// the cap (the rest is read and dropped).
async fn read_data<R: AsyncBufReadExt + Unpin>(read: &mut R) -> anyhow::Result<Option<Vec<u8>>> {
    let mut raw = Vec::new();
    let mut too_big = false;
    loop {
        let mut line = Vec::new();
        let got = tokio::time::timeout(
            IDLE,
            (&mut *read).take(64 * 1024).read_until(b'\n', &mut line),
        )
        .await??;
        if got == 0 {
            anyhow::bail!("connection closed in DATA");
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok((!too_big).then_some(raw));
        }
        let line = line.strip_prefix(b".").unwrap_or(&line);
        if raw.len() + line.len() > crate::bounces::INBOUND_MAX {
            too_big = true;
            raw = Vec::new();
        }
        if !too_big {
            raw.extend_from_slice(line);
        }
    }
}

/// One command line, or `None` at the end of the connection. A line over
/// [`LINE_MAX`] ends the session.
async fn read_line<R: AsyncBufReadExt + Unpin>(read: &mut R) -> anyhow::Result<Option<String>> {
    let mut line = Vec::new();
    let got = tokio::time::timeout(
        IDLE,
        (&mut *read)
            .take(LINE_MAX as u64)
            .read_until(b'\n', &mut line),
    )
    .await??;
    if got == 0 {
        return Ok(None);
    }
    if !line.ends_with(b"\n") {
        anyhow::bail!("command line too long");
    }
    Ok(Some(String::from_utf8_lossy(&line).trim_end().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_our_addresses() {
        assert_eq!(path_of("MAIL FROM:<>", "FROM:").as_deref(), Some(""));
        assert_eq!(
            path_of("RCPT TO: <Bounces+x@N.example> NOTIFY=NEVER", "TO:").as_deref(),
            Some("Bounces+x@N.example")
        );
        assert_eq!(path_of("RCPT TO:x@y", "TO:"), None);
        let b = BounceAddress {
            local: "bounces".into(),
            domain: "n.example".into(),
        };
        assert!(is_ours("bounces@n.example", &b));
        assert!(is_ours("Bounces+d1.a.b@N.Example", &b));
        assert!(is_ours("unsubscribe+t.m@n.example", &b));
        assert!(!is_ours("unsubscribe@n.example", &b));
        assert!(!is_ours("postmaster@n.example", &b));
        assert!(!is_ours("bounces@other.example", &b));
    }
}
