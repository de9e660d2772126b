//! A small SMTP relay for TLS and login questions: it offers STARTTLS with
//! a certificate from a private CA made here (rcgen), and/or AUTH PLAIN,
//! and records what it saw: messages, whether each came over TLS, and
//! whether a password was sent and how.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// A private CA and a certificate it issued for `localhost`.
pub struct TestCa {
    pub ca_pem: String,
    leaf_der: Vec<u8>,
    leaf_key_der: Vec<u8>,
}

impl TestCa {
    pub fn new() -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Tidings Test CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf = CertificateParams::new(vec!["localhost".to_string()])
            .expect("leaf params")
            .signed_by(&leaf_key, &ca, &ca_key)
            .expect("leaf certificate");
        TestCa {
            ca_pem: ca.pem(),
            leaf_der: leaf.der().to_vec(),
            leaf_key_der: leaf_key.serialize_der(),
        }
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![self.leaf_der.clone().into()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(self.leaf_key_der.clone().into()),
            )
            .expect("server certificate");
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }
}

#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// Each message, and whether it came over TLS.
    pub messages: Vec<(String, bool)>,
    /// Each AUTH line, and whether it came over TLS.
    pub logins: Vec<(String, bool)>,
    /// TLS handshakes that failed (the client refused our certificate).
    pub failed_handshakes: usize,
}

pub struct TlsRelay {
    pub port: u16,
    seen: Arc<Mutex<Seen>>,
    accept: tokio::task::JoinHandle<()>,
}

impl TlsRelay {
    /// Listens on `bind` (e.g. `127.0.0.1:0`, or `0.0.0.0:0` to be reached
    /// on a non-loopback address); offers STARTTLS when `ca` is given.
    pub async fn start(bind: &str, ca: Option<&TestCa>) -> TlsRelay {
        let listener = TcpListener::bind(bind).await.expect("bind relay");
        let port = listener.local_addr().expect("relay address").port();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let acceptor = ca.map(TestCa::acceptor);
        let s = seen.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (seen, acceptor) = (s.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let _ = session(stream, acceptor, seen).await;
                });
            }
        });
        TlsRelay { port, seen, accept }
    }

    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for TlsRelay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn session(
    stream: tokio::net::TcpStream,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    seen: Arc<Mutex<Seen>>,
) -> std::io::Result<()> {
    let mut plain = BufReader::new(stream);
    plain.write_all(b"220 relay.test ESMTP\r\n").await?;
    let upgrade = dialogue(&mut plain, acceptor.is_some(), false, &seen).await?;
    let (Some(acceptor), true) = (acceptor, upgrade) else {
        return Ok(());
    };
    match acceptor.accept(plain.into_inner()).await {
        Ok(tls) => {
            let mut tls = BufReader::new(tls);
            dialogue(&mut tls, false, true, &seen).await?;
        }
        Err(_) => seen.lock().unwrap().failed_handshakes += 1,
    }
    Ok(())
}

/// Answers commands until QUIT (false) or STARTTLS (true: upgrade now).
async fn dialogue<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
    offer_starttls: bool,
    tls: bool,
    seen: &Mutex<Seen>,
) -> std::io::Result<bool> {
    let mut line = String::new();
    loop {
        line.clear();
        if io.read_line(&mut line).await? == 0 {
            return Ok(false);
        }
        let verb = line.trim_end().to_ascii_uppercase();
        let reply: &[u8] = match verb.split(' ').next().unwrap_or("") {
            "EHLO" | "HELO" if offer_starttls => {
                b"250-relay.test\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n"
            }
            "EHLO" | "HELO" => b"250-relay.test\r\n250 AUTH PLAIN LOGIN\r\n",
            "STARTTLS" => {
                io.write_all(b"220 go ahead\r\n").await?;
                return Ok(true);
            }
            "AUTH" => {
                seen.lock()
                    .unwrap()
                    .logins
                    .push((line.trim_end().to_string(), tls));
                b"235 ok\r\n"
            }
            "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 ok\r\n",
            "DATA" => {
                io.write_all(b"354 go on\r\n").await?;
                let message = read_message(io).await?;
                seen.lock().unwrap().messages.push((message, tls));
                b"250 queued\r\n"
            }
            "QUIT" => {
                io.write_all(b"221 bye\r\n").await?;
                return Ok(false);
            }
            _ => b"502 no\r\n",
        };
        io.write_all(reply).await?;
    }
}

async fn read_message<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
) -> std::io::Result<String> {
    let mut message = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if io.read_line(&mut line).await? == 0 || line == ".\r\n" {
            return Ok(message);
        }
        message.push_str(line.strip_prefix('.').unwrap_or(&line));
    }
}
