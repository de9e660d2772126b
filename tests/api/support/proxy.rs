//! A TCP proxy a test puts between the app and a server (PostgreSQL) to
//! take the server away for real: [`TcpProxy::cut`] closes every live
//! connection and refuses new ones (accepted, then closed at once, the way a
//! dead server looks to a client), [`TcpProxy::restore`] lets them through
//! again. The port stays the same throughout, so the app reconnects by itself.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct TcpProxy {
    port: u16,
    /// true while cut.
    cut: Arc<watch::Sender<bool>>,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `target`.
    pub async fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let cut = Arc::new(watch::channel(false).0);
        let accept = tokio::spawn(accept_loop(listener, target, cut.clone()));
        TcpProxy { port, cut, accept }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Closes every live connection and refuses new ones until [`restore`].
    ///
    /// [`restore`]: TcpProxy::restore
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut.send_replace(true);
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, cut: Arc<watch::Sender<bool>>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if *cut.borrow() {
            drop(client);
            continue;
        }
        tokio::spawn(forward(client, target, cut.subscribe()));
    }
}

/// Copies both ways until either side closes or the proxy is cut.
async fn forward(mut client: TcpStream, target: SocketAddr, mut cut: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = cut.wait_for(|cut| *cut) => {}
    }
}
