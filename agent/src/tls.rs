//! The mTLS listener.
//!
//! The agent terminates TLS itself (rustls) instead of leaving it to the gRPC
//! server, for one reason: a refused client — no certificate, a certificate
//! from another CA, an expired one — is a security event, and it is logged
//! here with the peer's address and the reason. Accepted connections are
//! handed to tonic as `TlsStream`s, which carry the verified client
//! certificate to the authorization layer.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use rustls::{RootCertStore, ServerConfig, server::WebPkiClientVerifier};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

/// A handshake that takes longer than this is dropped: it holds a socket.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once; more wait in the kernel's accept queue.
const MAX_PENDING_HANDSHAKES: usize = 256;

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

/// Accepts TCP connections and completes their handshakes concurrently,
/// yielding only verified connections. Refusals are logged with the peer.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
) -> mpsc::Receiver<std::io::Result<TlsStream<TcpStream>>> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    let pending = Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let permit = tokio::select! {
                () = tx.closed() => return,
                p = pending.clone().acquire_owned() => match p {
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
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let _permit = permit;
                if let Some(stream) = handshake(&acceptor, tcp, peer).await {
                    let _ = tx.send(Ok(stream)).await;
                }
            });
        }
    });
    rx
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
