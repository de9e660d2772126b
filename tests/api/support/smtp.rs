//! An in-process SMTP server ("mail sink") for integration tests.
//!
//! ```ignore
//! let sink = MailSink::start().await;
//! // configure the app with `TIDINGS_SMTP_URL = sink.url()`
//! let mails = sink.wait_for(1, Duration::from_secs(5)).await;
//! let link = &mails[0].links()[0];
//! ```
//!
//! It speaks plain SMTP (no TLS, no AUTH) as lettre 0.11's client uses it: a
//! 220 greeting, EHLO/HELO (advertising PIPELINING, 8BITMIME and SMTPUTF8),
//! MAIL FROM, RCPT TO, DATA with dot-unstuffing, RSET, NOOP, VRFY and QUIT, any
//! number of messages per connection and any number of connections at once.
//! Pipelined commands are answered in order.
//!
//! Failure injection, switchable at any time through the handle:
//! * [`Mode::TempFail`]: MAIL FROM and RCPT TO get `451 4.3.0`;
//! * [`Mode::DropConnections`]: new connections are closed right after accept,
//!   and open ones are closed (without a reply) at their next command;
//! * [`MailSink::reject_recipient`]: RCPT TO that address gets `550 5.1.1`;
//! * [`MailSink::stop`] / [`MailSink::restart`]: the server goes away (connection
//!   refused) and comes back on the same port;
//! * [`MailSink::script`]: MAIL, RCPT, DATA or the end of the message get
//!   exactly the reply given (what real relays say: `550 5.7.1 sender not
//!   authorized`, `554 5.7.1 rejected as spam`, …) until scripted again;
//! * [`MailSink::set_delay`]: each message's final reply comes this late
//!   (a slow relay);
//! * [`MailSink::set_pipelining`]: whether EHLO offers PIPELINING;
//!   [`MailSink::pipelined`] counts MAIL commands that came with more
//!   commands behind them (the client did not wait for the reply).
//!
//! Self-contained on purpose: it depends only on tokio and base64.
#![allow(dead_code)]

use std::collections::HashSet;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Longest command line accepted (RFC 5321 says 512; extensions make it longer).
const MAX_COMMAND_LINE: usize = 4096;
/// Largest message accepted by DATA; larger ones get `552` and the connection is closed.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
const SERVER_NAME: &str = "tidings-test-sink";

/// How the sink answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Behave like a healthy server.
    Accept,
    /// Answer MAIL FROM and RCPT TO with `451 4.3.0` (a transient failure).
    TempFail,
    /// Close every new connection right after accepting it; open connections
    /// are closed at their next command, without a reply.
    DropConnections,
}

/// A command whose reply can be scripted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    Mail,
    Rcpt,
    Data,
    /// The end of the message (after the final dot): a scripted reply
    /// there means the message is not accepted.
    Message,
}

/// One message as the sink received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// Envelope sender (MAIL FROM), empty for the null sender `<>`.
    pub from: String,
    /// Envelope recipients (RCPT TO) that were accepted, in order.
    pub to: Vec<String>,
    /// The raw RFC 5322 message (dot-unstuffed, CRLF line endings as sent).
    pub data: String,
}

struct Shared {
    mails: Mutex<Vec<ReceivedMail>>,
    /// Number of messages in `mails`, for `wait_for`.
    count: watch::Sender<usize>,
    mode: Mutex<Mode>,
    /// Lower-cased addresses whose RCPT TO gets 550.
    rejected: Mutex<HashSet<String>>,
    temp_failures: AtomicUsize,
    perm_failures: AtomicUsize,
    connections: AtomicUsize,
    active: AtomicUsize,
    peak: AtomicUsize,
    offer_pipelining: AtomicBool,
    pipelined: AtomicUsize,
    scripted: Mutex<std::collections::HashMap<Command, String>>,
    delay: Mutex<Duration>,
}

struct Running {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Handle to a running in-process SMTP server. Dropping it shuts the server down.
pub struct MailSink {
    shared: Arc<Shared>,
    port: u16,
    running: Mutex<Option<Running>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not make every later call panic too.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn bind(port: u16) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(([127, 0, 0, 1], port).into())?;
    socket.listen(1024)
}

impl MailSink {
    /// Binds 127.0.0.1 on a free port and starts serving.
    pub async fn start() -> MailSink {
        let listener = bind(0).expect("MailSink: cannot bind 127.0.0.1:0");
        let port = listener.local_addr().expect("MailSink: local_addr").port();
        let (count, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            mails: Mutex::new(Vec::new()),
            count,
            mode: Mutex::new(Mode::Accept),
            rejected: Mutex::new(HashSet::new()),
            temp_failures: AtomicUsize::new(0),
            perm_failures: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            offer_pipelining: AtomicBool::new(true),
            pipelined: AtomicUsize::new(0),
            scripted: Mutex::default(),
            delay: Mutex::new(Duration::ZERO),
        });
        let running = spawn_server(listener, shared.clone());
        MailSink {
            shared,
            port,
            running: Mutex::new(Some(running)),
        }
    }

    /// The TCP port the sink listens on (the same across `restart`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `smtp://127.0.0.1:PORT?tls=none`, the form `smtp_url` takes.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    /// A snapshot of every message received so far, in arrival order.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        lock(&self.shared.mails).clone()
    }

    /// Messages whose envelope recipients include `addr` (ASCII case-insensitive).
    pub fn messages_to(&self, addr: &str) -> Vec<ReceivedMail> {
        lock(&self.shared.mails)
            .iter()
            .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(addr)))
            .cloned()
            .collect()
    }

    /// Forgets every message received so far.
    pub fn clear(&self) {
        let mut mails = lock(&self.shared.mails);
        mails.clear();
        self.shared.count.send_replace(0);
    }

    /// Waits until at least `n` messages have been received and returns all of
    /// them (possibly more than `n`). Panics if that does not happen in `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let mut rx = self.shared.count.subscribe();
        let reached = tokio::time::timeout(timeout, async {
            // The sender lives in `self.shared`, so this cannot fail while we hold `&self`.
            rx.wait_for(|count| *count >= n).await.is_ok()
        })
        .await
        .unwrap_or(false);
        let mails = self.messages();
        if !reached {
            let summary: Vec<String> = mails
                .iter()
                .map(|m| {
                    format!(
                        "{} -> {:?}: {:?}",
                        m.from,
                        m.to,
                        m.subject().unwrap_or_default()
                    )
                })
                .collect();
            panic!(
                "MailSink::wait_for: expected at least {n} message(s) within {timeout:?}, \
                 got {} (mode {:?}, {} connection(s), {} 4xx and {} 5xx answers): {summary:#?}",
                mails.len(),
                self.mode(),
                self.connections(),
                self.temp_failures(),
                self.perm_failures(),
            );
        }
        mails
    }

    /// Switches how the sink answers, effective for the next command.
    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.shared.mode) = mode;
    }

    pub fn mode(&self) -> Mode {
        *lock(&self.shared.mode)
    }

    /// From now on `command` gets exactly `reply` (e.g. `550 5.7.1 Sender
    /// not authorized`), or its normal answer again with `None`.
    pub fn script(&self, command: Command, reply: Option<&str>) {
        let mut scripted = lock(&self.shared.scripted);
        match reply {
            Some(r) => scripted.insert(command, r.to_string()),
            None => scripted.remove(&command),
        };
    }

    /// Each message's final reply waits this long (a slow relay).
    pub fn set_delay(&self, delay: Duration) {
        *lock(&self.shared.delay) = delay;
    }

    /// How many messages each recipient got (lower-cased addresses).
    pub fn counts_by_recipient(&self) -> std::collections::HashMap<String, usize> {
        let mut counts = std::collections::HashMap::new();
        for m in lock(&self.shared.mails).iter() {
            for to in &m.to {
                *counts.entry(to.to_ascii_lowercase()).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Whether EHLO advertises PIPELINING (it does unless told otherwise).
    pub fn set_pipelining(&self, offer: bool) {
        self.shared.offer_pipelining.store(offer, Ordering::SeqCst);
    }

    /// MAIL commands that arrived with the next commands already behind
    /// them, i.e. sent without waiting for MAIL's reply.
    pub fn pipelined(&self) -> usize {
        self.shared.pipelined.load(Ordering::SeqCst)
    }

    /// RCPT TO `addr` (ASCII case-insensitive) will get `550 5.1.1 <addr>: … user unknown`.
    pub fn reject_recipient(&self, addr: &str) {
        lock(&self.shared.rejected).insert(addr.to_ascii_lowercase());
    }

    /// Undoes every `reject_recipient`.
    pub fn clear_rejected_recipients(&self) {
        lock(&self.shared.rejected).clear();
    }

    /// How many 4xx answers the sink has given.
    pub fn temp_failures(&self) -> usize {
        self.shared.temp_failures.load(Ordering::SeqCst)
    }

    /// How many 5xx answers the sink has given (rejected recipients, bad sequences, syntax errors).
    pub fn perm_failures(&self) -> usize {
        self.shared.perm_failures.load(Ordering::SeqCst)
    }

    /// How many TCP connections have been accepted (including dropped ones).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// How many SMTP sessions are open right now.
    pub fn active_connections(&self) -> usize {
        self.shared.active.load(Ordering::SeqCst)
    }

    /// The most SMTP sessions that were open at the same time (e.g. to check
    /// that a sender honours its concurrency limit; lettre's pool `max_size`
    /// only bounds idle connections, not connections in use).
    pub fn peak_connections(&self) -> usize {
        self.shared.peak.load(Ordering::SeqCst)
    }

    /// Closes the listener and every open connection; connecting is refused
    /// until `restart`. Received messages are kept. Idempotent.
    pub async fn stop(&self) {
        let running = lock(&self.running).take();
        if let Some(running) = running {
            let _ = running.shutdown.send(true);
            let _ = running.task.await;
        }
    }

    /// Stops the server if it is running, then listens again on the same port.
    pub async fn restart(&self) {
        self.stop().await;
        let mut last_err = None;
        for _ in 0..50 {
            match bind(self.port) {
                Ok(listener) => {
                    let running = spawn_server(listener, self.shared.clone());
                    *lock(&self.running) = Some(running);
                    return;
                }
                Err(e) => {
                    last_err = Some(e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        panic!(
            "MailSink::restart: cannot bind 127.0.0.1:{} again: {:?}",
            self.port, last_err
        );
    }

    /// Whether the server is listening (between `start`/`restart` and `stop`).
    pub fn is_running(&self) -> bool {
        lock(&self.running).is_some()
    }
}

impl Drop for MailSink {
    fn drop(&mut self) {
        // The accept loop sees the signal (or the dropped sender), closes the
        // listener and aborts its connections on its own.
        if let Some(running) = lock(&self.running).take() {
            let _ = running.shutdown.send(true);
        }
    }
}

fn spawn_server(listener: TcpListener, shared: Arc<Shared>) -> Running {
    let (shutdown, rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, shared, rx));
    Running { shutdown, task }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    shared.connections.fetch_add(1, Ordering::SeqCst);
                    if *lock(&shared.mode) == Mode::DropConnections {
                        drop(stream);
                        continue;
                    }
                    conns.spawn(handle_connection(stream, shared.clone()));
                }
                // e.g. EMFILE: back off instead of spinning
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
    drop(listener);
    conns.shutdown().await;
}

/// Counts a session as active for as long as it lives (also when aborted).
struct ActiveGuard(Arc<Shared>);

impl ActiveGuard {
    fn new(shared: Arc<Shared>) -> ActiveGuard {
        let now = shared.active.fetch_add(1, Ordering::SeqCst) + 1;
        shared.peak.fetch_max(now, Ordering::SeqCst);
        ActiveGuard(shared)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _active = ActiveGuard::new(shared.clone());
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let _ = session(&mut rd, &mut wr, &shared).await;
}

async fn reply<W: AsyncWrite + Unpin>(wr: &mut W, shared: &Shared, text: &str) -> io::Result<()> {
    match text.as_bytes().first() {
        Some(b'4') => {
            shared.temp_failures.fetch_add(1, Ordering::SeqCst);
        }
        Some(b'5') => {
            shared.perm_failures.fetch_add(1, Ordering::SeqCst);
        }
        _ => {}
    }
    wr.write_all(text.as_bytes()).await?;
    wr.write_all(b"\r\n").await?;
    wr.flush().await
}

/// Reads up to and including `\n`, at most `max` bytes. `Ok(None)` at end of
/// stream; a returned chunk that does not end in `\n` was cut at `max` bytes
/// (or is the unterminated tail of the stream).
async fn read_chunk<R: AsyncBufRead + Unpin>(
    rd: &mut R,
    max: usize,
) -> io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    let n = (&mut *rd)
        .take(max as u64)
        .read_until(b'\n', &mut buf)
        .await?;
    Ok(if n == 0 { None } else { Some(buf) })
}

fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Parses the path of `MAIL FROM:<a@b> PARAMS` / `RCPT TO:<a@b>` after the colon.
fn parse_path(arg: &str) -> Option<String> {
    let arg = arg.trim_start();
    let addr = if let Some(rest) = arg.strip_prefix('<') {
        let end = rest.find('>')?;
        &rest[..end]
    } else {
        // Lenient: a bare address up to the first space.
        let bare = arg.split_whitespace().next().unwrap_or("");
        if bare.is_empty() {
            return None;
        }
        bare
    };
    // Drop an obsolete source route: <@a,@b:user@host>
    let addr = match (addr.starts_with('@'), addr.find(':')) {
        (true, Some(i)) => &addr[i + 1..],
        _ => addr,
    };
    Some(addr.trim().to_string())
}

/// Splits `FROM:<x>` into the path after `keyword:` (case-insensitive), if it starts so.
fn strip_keyword<'a>(arg: &'a str, keyword: &str) -> Option<&'a str> {
    let head = arg.get(..keyword.len())?;
    if head.eq_ignore_ascii_case(keyword) {
        arg[keyword.len()..].trim_start().strip_prefix(':')
    } else {
        None
    }
}

async fn session<R, W>(rd: &mut BufReader<R>, wr: &mut W, shared: &Shared) -> io::Result<()>
where
    R: tokio::io::AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    reply(wr, shared, &format!("220 {SERVER_NAME} ESMTP ready")).await?;
    let mut from: Option<String> = None;
    let mut rcpts: Vec<String> = Vec::new();
    loop {
        let Some(raw) = read_chunk(rd, MAX_COMMAND_LINE).await? else {
            return Ok(());
        };
        if !raw.ends_with(b"\n") {
            if raw.len() >= MAX_COMMAND_LINE {
                reply(wr, shared, "500 5.5.2 Line too long").await?;
            }
            return Ok(()); // too long, or the stream ended mid-line
        }
        if *lock(&shared.mode) == Mode::DropConnections {
            return Ok(());
        }
        let line = String::from_utf8_lossy(strip_eol(&raw)).into_owned();
        let (verb, arg) = match line.find(' ') {
            Some(i) => (&line[..i], line[i + 1..].trim()),
            None => (line.as_str(), ""),
        };
        let temp_fail = || *lock(&shared.mode) == Mode::TempFail;
        let scripted = |c: Command| lock(&shared.scripted).get(&c).cloned();
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                from = None;
                rcpts.clear();
                let pipelining = if shared.offer_pipelining.load(Ordering::SeqCst) {
                    "250-PIPELINING\r\n"
                } else {
                    ""
                };
                let text = format!(
                    "250-{SERVER_NAME} greets {}\r\n{pipelining}250-8BITMIME\r\n250 SMTPUTF8",
                    if arg.is_empty() { "you" } else { arg }
                );
                reply(wr, shared, &text).await?;
            }
            "HELO" => {
                from = None;
                rcpts.clear();
                reply(wr, shared, &format!("250 {SERVER_NAME}")).await?;
            }
            "MAIL" => {
                if !rd.buffer().is_empty() {
                    shared.pipelined.fetch_add(1, Ordering::SeqCst);
                }
                let path = strip_keyword(arg, "FROM").map(parse_path);
                match path {
                    None | Some(None) => {
                        reply(wr, shared, "501 5.5.4 Syntax: MAIL FROM:<address>").await?
                    }
                    Some(Some(_)) if from.is_some() => {
                        reply(wr, shared, "503 5.5.1 Error: nested MAIL command").await?
                    }
                    Some(Some(_)) if temp_fail() => {
                        reply(wr, shared, "451 4.3.0 Temporary failure, try again later").await?
                    }
                    Some(Some(_)) if scripted(Command::Mail).is_some() => {
                        let text = scripted(Command::Mail).unwrap_or_default();
                        reply(wr, shared, &text).await?
                    }
                    Some(Some(addr)) => {
                        from = Some(addr);
                        rcpts.clear();
                        reply(wr, shared, "250 2.1.0 Ok").await?;
                    }
                }
            }
            "RCPT" => {
                let path = strip_keyword(arg, "TO").map(parse_path);
                match path {
                    _ if from.is_none() => {
                        reply(wr, shared, "503 5.5.1 Error: need MAIL command").await?
                    }
                    None | Some(None) => {
                        reply(wr, shared, "501 5.5.4 Syntax: RCPT TO:<address>").await?
                    }
                    Some(Some(addr)) if addr.is_empty() => {
                        reply(wr, shared, "501 5.1.3 Bad recipient address syntax").await?
                    }
                    Some(Some(_)) if temp_fail() => {
                        reply(wr, shared, "451 4.3.0 Temporary failure, try again later").await?
                    }
                    Some(Some(_)) if scripted(Command::Rcpt).is_some() => {
                        let text = scripted(Command::Rcpt).unwrap_or_default();
                        reply(wr, shared, &text).await?
                    }
                    Some(Some(addr))
                        if lock(&shared.rejected).contains(&addr.to_ascii_lowercase()) =>
                    {
                        // Quoting the address, as Postfix does.
                        let text =
                            format!("550 5.1.1 <{addr}>: Recipient address rejected: user unknown");
                        reply(wr, shared, &text).await?
                    }
                    Some(Some(addr)) => {
                        rcpts.push(addr);
                        reply(wr, shared, "250 2.1.5 Ok").await?;
                    }
                }
            }
            "DATA" => {
                if from.is_none() {
                    reply(wr, shared, "503 5.5.1 Error: need MAIL command").await?;
                    continue;
                }
                if rcpts.is_empty() {
                    reply(wr, shared, "503 5.5.1 Error: need RCPT command").await?;
                    continue;
                }
                if let Some(text) = scripted(Command::Data) {
                    reply(wr, shared, &text).await?;
                    continue;
                }
                reply(wr, shared, "354 End data with <CR><LF>.<CR><LF>").await?;
                let Some(data) = read_data(rd).await? else {
                    // End of stream before the final dot, or the message is too big.
                    return Ok(());
                };
                let Some(data) = data else {
                    reply(wr, shared, "552 5.3.4 Message too big").await?;
                    return Ok(());
                };
                let delay = *lock(&shared.delay);
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                if let Some(text) = scripted(Command::Message) {
                    from = None;
                    rcpts.clear();
                    reply(wr, shared, &text).await?;
                    continue;
                }
                let mail = ReceivedMail {
                    from: from.take().unwrap_or_default(),
                    to: std::mem::take(&mut rcpts),
                    data: String::from_utf8_lossy(&data).into_owned(),
                };
                let id = {
                    let mut mails = lock(&shared.mails);
                    mails.push(mail);
                    shared.count.send_replace(mails.len());
                    mails.len()
                };
                reply(wr, shared, &format!("250 2.0.0 Ok: queued as {id}")).await?;
            }
            "RSET" => {
                from = None;
                rcpts.clear();
                reply(wr, shared, "250 2.0.0 Ok").await?;
            }
            "NOOP" => reply(wr, shared, "250 2.0.0 Ok").await?,
            "VRFY" => reply(wr, shared, "252 2.5.0 Cannot VRFY user").await?,
            "QUIT" => {
                reply(wr, shared, "221 2.0.0 Bye").await?;
                return Ok(());
            }
            "STARTTLS" | "AUTH" | "BDAT" | "ETRN" | "EXPN" | "HELP" => {
                reply(wr, shared, "502 5.5.1 Command not implemented").await?
            }
            _ => reply(wr, shared, "500 5.5.2 Error: command not recognized").await?,
        }
    }
}

/// Reads DATA up to the lone dot, undoing dot-stuffing.
/// `Ok(None)`: the stream ended first. `Ok(Some(None))`: larger than the limit
/// (the rest is not read).
async fn read_data<R: AsyncBufRead + Unpin>(rd: &mut R) -> io::Result<Option<Option<Vec<u8>>>> {
    let mut data = Vec::new();
    let mut at_line_start = true;
    loop {
        let Some(chunk) = read_chunk(rd, 64 * 1024).await? else {
            return Ok(None);
        };
        let complete = chunk.ends_with(b"\n");
        if at_line_start && complete && strip_eol(&chunk) == b"." {
            return Ok(Some(Some(data)));
        }
        let content = if at_line_start && chunk.starts_with(b".") {
            &chunk[1..]
        } else {
            &chunk[..]
        };
        data.extend_from_slice(content);
        if data.len() > MAX_MESSAGE_BYTES {
            return Ok(Some(None));
        }
        at_line_start = complete;
    }
}

// ---------------------------------------------------------------------------
// Reading received messages
// ---------------------------------------------------------------------------

impl ReceivedMail {
    /// The raw header section (without the blank line that ends it).
    pub fn header_section(&self) -> &str {
        split_entity(&self.data).0
    }

    /// The raw body, still transfer-encoded.
    pub fn raw_body(&self) -> &str {
        split_entity(&self.data).1
    }

    /// Every top-level header as (name, unfolded value), in order.
    pub fn all_headers(&self) -> Vec<(String, String)> {
        parse_headers(self.header_section())
    }

    /// The first value of header `name` (case-insensitive), unfolded, still
    /// RFC 2047-encoded if it was.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers(name).into_iter().next()
    }

    /// Every value of header `name` (case-insensitive), unfolded, in order.
    pub fn headers(&self, name: &str) -> Vec<String> {
        self.all_headers()
            .into_iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect()
    }

    /// The first value of header `name` with RFC 2047 encoded-words decoded
    /// (`=?utf-8?b?...?=` -> text).
    pub fn header_decoded(&self, name: &str) -> Option<String> {
        self.header(name).map(|v| decode_encoded_words(&v))
    }

    /// The decoded Subject.
    pub fn subject(&self) -> Option<String> {
        self.header_decoded("Subject")
    }

    /// The decoded body of the first `text/plain` part (or of the whole message
    /// when it is not multipart), line endings normalised to `\n`.
    pub fn text_body(&self) -> Option<String> {
        self.part("text/plain")
    }

    /// The decoded body of the first `text/html` part, line endings normalised to `\n`.
    pub fn html_body(&self) -> Option<String> {
        self.part("text/html")
    }

    /// The decoded body of the first non-attachment part of MIME type `mime`
    /// (e.g. "text/plain"), searching nested multiparts depth-first.
    /// Handles quoted-printable, base64, 7bit and 8bit; UTF-8 or Latin-1 text.
    pub fn part(&self, mime: &str) -> Option<String> {
        find_part(&self.data, &mime.to_ascii_lowercase(), 0)
    }

    /// Every http(s) URL in the text body and then the HTML body (`&amp;`
    /// unescaped), without duplicates, in order of appearance.
    pub fn links(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let text = self.text_body().unwrap_or_default();
        let html = self
            .html_body()
            .map(|h| h.replace("&amp;", "&"))
            .unwrap_or_default();
        for source in [text, html] {
            for link in find_links(&source) {
                if !out.contains(&link) {
                    out.push(link);
                }
            }
        }
        out
    }
}

/// Splits an entity into header section and body at the first empty line.
pub fn split_entity(raw: &str) -> (&str, &str) {
    let mut pos = 0;
    for line in raw.split_inclusive('\n') {
        if line == "\r\n" || line == "\n" {
            return (&raw[..pos], &raw[pos + line.len()..]);
        }
        pos += line.len();
    }
    (raw, "")
}

/// Parses a header section into (name, value) pairs, unfolding continuation
/// lines (a line starting with space or tab continues the previous header).
pub fn parse_headers(section: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in section.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = out.last_mut() {
                value.push_str(line);
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_string(), value.trim_start().to_string()));
        }
    }
    for (_, value) in &mut out {
        *value = value.trim().to_string();
    }
    out
}

/// `text/html; charset="utf-8"` -> ("text/html", [("charset", "utf-8")]).
/// The type and parameter names are lower-cased; quoted values are unquoted.
pub fn parse_content_type(value: &str) -> (String, Vec<(String, String)>) {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => in_quotes = !in_quotes,
            '\\' if in_quotes => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            ';' if !in_quotes => pieces.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    pieces.push(current);
    let mime = pieces[0].trim().to_ascii_lowercase();
    let params = pieces[1..]
        .iter()
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (mime, params)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn find_part(entity: &str, want: &str, depth: usize) -> Option<String> {
    if depth > 20 {
        return None;
    }
    let (section, body) = split_entity(entity);
    let headers = parse_headers(section);
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let (mime, params) = parse_content_type(get("Content-Type").unwrap_or("text/plain"));
    if mime.starts_with("multipart/") {
        let boundary = param(&params, "boundary")?;
        return split_multipart(body, boundary)
            .into_iter()
            .find_map(|part| find_part(part, want, depth + 1));
    }
    let is_attachment = get("Content-Disposition")
        .map(|d| {
            d.trim_start()
                .to_ascii_lowercase()
                .starts_with("attachment")
        })
        .unwrap_or(false);
    if mime != want || is_attachment {
        return None;
    }
    let encoding = get("Content-Transfer-Encoding")
        .unwrap_or("7bit")
        .trim()
        .to_ascii_lowercase();
    let bytes = match encoding.as_str() {
        "quoted-printable" => decode_quoted_printable(body),
        "base64" => decode_base64(body).unwrap_or_else(|| body.as_bytes().to_vec()),
        _ => body.as_bytes().to_vec(),
    };
    let charset = param(&params, "charset")
        .unwrap_or("utf-8")
        .to_ascii_lowercase();
    Some(decode_charset(&bytes, &charset).replace("\r\n", "\n"))
}

/// The parts of a multipart body (between `--boundary` lines, up to `--boundary--`).
pub fn split_multipart<'a>(body: &'a str, boundary: &str) -> Vec<&'a str> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut pos = 0;
    for line in body.split_inclusive('\n') {
        let content = line.trim_end_matches(['\r', '\n']);
        if let Some(rest) = content.strip_prefix(&delimiter) {
            let closing = rest.starts_with("--");
            if closing || rest.trim().is_empty() {
                if let Some(s) = start {
                    // The line break before a delimiter belongs to the delimiter.
                    let before = &body[s..pos];
                    let before = before.strip_suffix('\n').unwrap_or(before);
                    let before = before.strip_suffix('\r').unwrap_or(before);
                    parts.push(before);
                }
                if closing {
                    return parts;
                }
                start = Some(pos + line.len());
            }
        }
        pos += line.len();
    }
    if let Some(s) = start {
        parts.push(&body[s..]);
    }
    parts
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Decodes a quoted-printable body (RFC 2045 6.7): `=XX` escapes, soft line
/// breaks (`=` at end of line), trailing whitespace dropped. Malformed escapes
/// are kept literally. Hard line breaks come out as CRLF.
pub fn decode_quoted_printable(input: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    for line in input.split_inclusive('\n') {
        let has_newline = line.ends_with('\n');
        let content = line
            .trim_end_matches(['\r', '\n'])
            .trim_end_matches([' ', '\t']);
        let (content, soft) = match content.strip_suffix('=') {
            Some(c) => (c, true),
            None => (content, false),
        };
        let bytes = content.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'=' {
                if let (Some(hi), Some(lo)) = (
                    bytes.get(i + 1).copied().and_then(hex_value),
                    bytes.get(i + 2).copied().and_then(hex_value),
                ) {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        if has_newline && !soft {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// Decodes base64 ignoring whitespace and padding mistakes.
pub fn decode_base64(input: &str) -> Option<Vec<u8>> {
    let compact: String = input.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    engine.decode(compact.as_bytes()).ok()
}

fn decode_charset(bytes: &[u8], charset: &str) -> String {
    match charset {
        "iso-8859-1" | "latin1" | "latin-1" | "us-ascii" | "ascii" => {
            bytes.iter().map(|&b| b as char).collect()
        }
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Decodes RFC 2047 encoded-words (`=?charset?B?...?=`, `=?charset?Q?...?=`)
/// in a header value. Whitespace between adjacent encoded-words is dropped and
/// their bytes are joined before charset decoding (a character may be split
/// across words). Anything malformed is kept as it is.
pub fn decode_encoded_words(value: &str) -> String {
    let mut out = String::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut pending_charset = String::new();
    let mut rest = value;
    let mut last_was_word = false;
    while let Some(idx) = rest.find("=?") {
        let (before, candidate) = rest.split_at(idx);
        match parse_encoded_word(candidate) {
            Some((charset, bytes, used)) => {
                let joins = last_was_word && before.trim().is_empty();
                if !joins || charset != pending_charset {
                    out.push_str(&decode_charset(&pending, &pending_charset));
                    pending.clear();
                }
                if !joins {
                    out.push_str(before);
                }
                pending_charset = charset;
                pending.extend_from_slice(&bytes);
                rest = &candidate[used..];
                last_was_word = true;
            }
            None => {
                out.push_str(&decode_charset(&pending, &pending_charset));
                pending.clear();
                out.push_str(before);
                out.push_str("=?");
                rest = &candidate[2..];
                last_was_word = false;
            }
        }
    }
    out.push_str(&decode_charset(&pending, &pending_charset));
    out.push_str(rest);
    out
}

/// Parses one encoded-word at the start of `s`: (charset, bytes, length used).
fn parse_encoded_word(s: &str) -> Option<(String, Vec<u8>, usize)> {
    let inner = s.strip_prefix("=?")?;
    let (charset, after) = inner.split_once('?')?;
    let (encoding, after) = after.split_once('?')?;
    let end = after.find("?=")?;
    let text = &after[..end];
    if charset.is_empty() || text.contains(' ') {
        return None;
    }
    // RFC 2231 language suffix: utf-8*en
    let charset = charset
        .split('*')
        .next()
        .unwrap_or(charset)
        .to_ascii_lowercase();
    let bytes = match encoding {
        "B" | "b" => decode_base64(text)?,
        "Q" | "q" => {
            let mut out = Vec::new();
            let b = text.as_bytes();
            let mut i = 0;
            while i < b.len() {
                match b[i] {
                    b'_' => out.push(b' '),
                    b'=' => {
                        let hi = b.get(i + 1).copied().and_then(hex_value)?;
                        let lo = b.get(i + 2).copied().and_then(hex_value)?;
                        out.push(hi << 4 | lo);
                        i += 2;
                    }
                    c => out.push(c),
                }
                i += 1;
            }
            out
        }
        _ => return None,
    };
    let used = 2 + inner.len() - after.len() + end + 2;
    Some((charset, bytes, used))
}

/// http(s) URLs in `text`, cut at whitespace, quotes, angle brackets and
/// trailing sentence punctuation.
pub fn find_links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        let next = [rest.find("http://"), rest.find("https://")]
            .into_iter()
            .flatten()
            .min();
        let Some(start) = next else { break };
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`'))
            .unwrap_or(tail.len());
        let link = tail[..end].trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']']);
        if link.len() > "https://".len() {
            out.push(link.to_string());
        }
        rest = &tail[end.max(1)..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(data: &str) -> ReceivedMail {
        ReceivedMail {
            from: "a@example.com".into(),
            to: vec!["b@example.com".into()],
            data: data.into(),
        }
    }

    #[test]
    fn smtp_qp_decoding() {
        let decoded = decode_quoted_printable(
            "Gr=C3=BC=C3=9Fe, a long =\r\nline=3D ok  \r\nnext=20\r\nbad =ZZ and =\r\n",
        );
        assert_eq!(
            String::from_utf8(decoded).unwrap(),
            "Grüße, a long line= ok\r\nnext \r\nbad =ZZ and "
        );
        assert_eq!(decode_quoted_printable("trailing ="), b"trailing ".to_vec());
        assert_eq!(
            decode_quoted_printable("=e2=82=ac"),
            "€".as_bytes().to_vec()
        );
        assert_eq!(decode_quoted_printable("x=4"), b"x=4".to_vec());
    }

    #[test]
    fn smtp_headers_unfold_and_decode() {
        let m = mail(
            "Subject: =?utf-8?b?R3LDvMOfZQ==?=\r\n =?utf-8?q?_aus_K=C3=B6ln?= tail\r\nX-Long: one\r\n\ttwo\r\nx-long: second\r\nFrom: \"Zo=?utf-8?q?=C3=AB?=\" <z@example.com>\r\n\r\nbody\r\n",
        );
        assert_eq!(m.subject().unwrap(), "Grüße aus Köln tail");
        assert_eq!(m.header("X-LONG").unwrap(), "one\ttwo");
        assert_eq!(
            m.headers("x-long"),
            vec!["one\ttwo".to_string(), "second".to_string()]
        );
        assert!(m.header("Missing").is_none());
        assert_eq!(m.text_body().unwrap(), "body\n");
        // a UTF-8 character split across two encoded words
        assert_eq!(
            decode_encoded_words("=?UTF-8?B?w6k=?= =?UTF-8?Q?=C3?= =?UTF-8?Q?=A9?= x"),
            "é\u{e9} x"
        );
        assert_eq!(
            decode_encoded_words("plain =? not encoded"),
            "plain =? not encoded"
        );
    }

    #[test]
    fn smtp_nested_multipart() {
        let data = "Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n\
preamble\r\n--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n\
--inner\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
Hello J=C3=BCrgen, see https://example.com/a?b=3Dc.\r\n--inner\r\n\
Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n\
PHA+PGEgaHJlZj0iaHR0cHM6Ly9leGFtcGxlLmNv\r\nbS94P3k9MSZhbXA7ej0yIj54PC9hPjwvcD4=\r\n--inner--\r\n\
--outer\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\nnot me\r\n--outer--\r\nepilogue\r\n";
        let m = mail(data);
        assert_eq!(
            m.text_body().unwrap(),
            "Hello Jürgen, see https://example.com/a?b=c."
        );
        assert_eq!(
            m.html_body().unwrap(),
            "<p><a href=\"https://example.com/x?y=1&amp;z=2\">x</a></p>"
        );
        assert_eq!(
            m.links(),
            vec![
                "https://example.com/a?b=c".to_string(),
                "https://example.com/x?y=1&z=2".to_string()
            ]
        );
        assert!(m.part("image/png").is_none());
    }

    #[test]
    fn smtp_malformed_messages_do_not_panic() {
        for data in [
            "",
            "\r\n",
            "Content-Type: multipart/mixed\r\n\r\n--x",
            "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n",
            "no headers at all",
            "=?",
            "Subject: =?utf-8?q?=Z?=",
        ] {
            let m = mail(data);
            let _ = (
                m.text_body(),
                m.html_body(),
                m.subject(),
                m.links(),
                m.all_headers(),
            );
        }
    }
}
