//! The mTLS listener.
//!
//! The agent terminates TLS itself (rustls) instead of leaving it to the gRPC
//! server, for one reason: a refused client — no certificate, a certificate
//! from another CA, an expired one — is a security event, and it is logged
//! here with the peer's address and the reason. Accepted connections are
//! handed to tonic as `TlsStream`s, which carry the verified client
//! certificate to the authorization layer.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use rustls::{RootCertStore, ServerConfig, server::WebPkiClientVerifier};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tonic::transport::server::Connected;

/// A handshake that takes longer than this is dropped: it holds a socket.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once; more wait in the kernel's accept queue.
const MAX_PENDING_HANDSHAKES: usize = 256;

/// Handshakes in progress from one peer address. More from it are closed at
/// once: 300 idle connections from one host held every handshake slot, and
/// a real client waited 9.5 s; now one host's idle sockets cannot starve
/// the others.
const MAX_HANDSHAKES_PER_PEER: usize = 8;

/// Connections open at once (in handshake or established). More are closed
/// at once and logged, so that descriptors are left for everything else
/// (netlink, the state directory).
const MAX_CONNECTIONS: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("agent certificate: {0}")]
    Cert(String),
    #[error("agent private key: {0}")]
    Key(String),
    #[error("client CA: {0}")]
    ClientCa(String),
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// PEM material for the mTLS listener.
#[derive(Debug, Clone)]
pub struct TlsPem {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    /// CA that client certificates must chain to.
    pub client_ca: Vec<u8>,
}

/// Builds the server configuration: the agent's identity, client
/// certificates required and verified against the client CA, HTTP/2 only.
pub fn server_config(pem: &TlsPem) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(&pem.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Cert(e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::Cert("no certificate in the PEM file".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&pem.key).map_err(|e| TlsError::Key(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&pem.client_ca) {
        let ca = ca.map_err(|e| TlsError::ClientCa(e.to_string()))?;
        roots
            .add(ca)
            .map_err(|e| TlsError::ClientCa(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(TlsError::ClientCa("no certificate in the PEM file".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::ClientCa(e.to_string()))?;
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}

/// An mTLS connection handed to the gRPC server. It holds its place under
/// [`MAX_CONNECTIONS`] until the server drops it.
#[derive(Debug)]
pub struct Conn {
    tls: TlsStream<TcpStream>,
    _slot: OwnedSemaphorePermit,
}

impl Connected for Conn {
    type ConnectInfo = <TlsStream<TcpStream> as Connected>::ConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.tls.connect_info()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tls).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tls).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tls).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tls).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tls).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.tls.is_write_vectored()
    }
}

/// Handshakes in progress per peer address.
#[derive(Debug, Clone, Default)]
struct PerPeer(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One handshake's place under [`MAX_HANDSHAKES_PER_PEER`].
#[derive(Debug)]
struct PeerSlot {
    peers: PerPeer,
    ip: IpAddr,
}

impl PerPeer {
    fn take(&self, ip: IpAddr) -> Option<PeerSlot> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_default();
        if *n >= MAX_HANDSHAKES_PER_PEER {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            peers: self.clone(),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut map = self.peers.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// The listener's caps: handshakes in progress (in total and per peer)
/// and connections open.
#[derive(Debug, Clone)]
struct Caps {
    pending: Arc<Semaphore>,
    peers: PerPeer,
    conns: Arc<Semaphore>,
}

/// Why a connection was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    TooManyConnections,
    PeerBusy,
}

impl Caps {
    fn new() -> Self {
        Self {
            pending: Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES)),
            peers: PerPeer::default(),
            conns: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        }
    }

    /// A newly accepted connection's places, or why it gets none.
    fn admit(&self, peer: SocketAddr) -> Result<(OwnedSemaphorePermit, PeerSlot), Refusal> {
        let conn = self
            .conns
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::TooManyConnections)?;
        let slot = self.peers.take(peer.ip()).ok_or(Refusal::PeerBusy)?;
        Ok((conn, slot))
    }
}

/// Accepts TCP connections and completes their handshakes concurrently,
/// yielding only verified connections. Refusals are logged with the peer.
/// A peer with [`MAX_HANDSHAKES_PER_PEER`] handshakes in progress, or a
/// connection over [`MAX_CONNECTIONS`], is closed at once.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
) -> mpsc::Receiver<std::io::Result<Conn>> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    let caps = Caps::new();
    tokio::spawn(async move {
        loop {
            let pending = tokio::select! {
                () = tx.closed() => return,
                p = caps.pending.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let accepted = tokio::select! {
                () = tx.closed() => return,
                a = listener.accept() => a,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Transient (EMFILE, ECONNABORTED): keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let (slot, peer_slot) = match caps.admit(peer) {
                Ok(s) => s,
                Err(why) => {
                    refuse(tcp, peer, why);
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let stream = handshake(&acceptor, tcp, peer).await;
                drop((pending, peer_slot));
                if let Some(tls) = stream {
                    let _ = tx.send(Ok(Conn { tls, _slot: slot })).await;
                }
            });
        }
    });
    rx
}

/// Closes a connection at once (dropping it sends FIN), and logs why.
fn refuse(tcp: TcpStream, peer: SocketAddr, why: Refusal) {
    drop(tcp);
    match why {
        Refusal::TooManyConnections => tracing::warn!(
            target: "linkherd::audit", %peer, cap = MAX_CONNECTIONS,
            "closed a connection: the agent has its maximum of connections open"
        ),
        Refusal::PeerBusy => tracing::warn!(
            target: "linkherd::audit", %peer, cap = MAX_HANDSHAKES_PER_PEER,
            "closed a connection: this peer already has its maximum of TLS handshakes in progress"
        ),
    }
}

async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tracing::warn!(target: "linkherd::audit", %peer, reason = %e, "refused TLS client");
            None
        }
        Err(_) => {
            tracing::warn!(target: "linkherd::audit", %peer, "TLS handshake timed out");
            None
        }
    }
}
