//! Serving gRPC routes on one listener: mTLS on TCP, plaintext on a
//! loopback TCP port, or the local unix socket. Every listener gets the
//! same guards — the auth layer, the request-bytes budget, the per
//! connection limits — and none of them knows what the routes do.

use std::{future::Future, time::Duration};

use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, UnixListener},
};
use tokio_stream::Stream;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream, UnixListenerStream};
use tonic::{
    service::Routes,
    transport::{Server, server::Connected},
};

use crate::transport::{
    auth::{AuthLayer, OnRefusal, RoleOf},
    budget::RequestBudget,
    capped::capped,
    tls::{self, TlsError, TlsPem},
};

/// A bound gRPC listener and how its callers are identified.
#[derive(Debug)]
pub enum Listener {
    /// TCP where every client presents a certificate of the client CA.
    Mtls(TcpListener, TlsPem),
    /// Plaintext TCP whose callers are admin: only ever bound to loopback
    /// (see `config`).
    InsecureLoopback(TcpListener),
    /// The local socket: root, or the agent's own uid, is admin.
    Unix(UnixListener),
}

/// The per-connection limits of every gRPC listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub concurrency_per_connection: usize,
    pub request_timeout: Duration,
    pub max_concurrent_streams: u32,
    /// Connections open at once on each local listener (the mTLS listener
    /// caps its handshakes and connections itself).
    pub local_connections: usize,
}

/// What every listener applies before a request reaches its route.
#[derive(Clone)]
pub struct Guards {
    pub limits: ConnLimits,
    pub budget: RequestBudget,
    /// Every request is counted by method and code.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    pub role_of: RoleOf,
    pub on_refusal: OnRefusal,
}

impl std::fmt::Debug for Guards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guards")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Errors serving gRPC.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("serving: {0}")]
    Transport(#[source] tonic::transport::Error),
}

impl Guards {
    fn builder(&self) -> Server {
        Server::builder()
            .concurrency_limit_per_connection(self.limits.concurrency_per_connection)
            .timeout(self.limits.request_timeout)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .max_concurrent_streams(Some(self.limits.max_concurrent_streams))
            .tcp_nodelay(true)
    }

    fn auth(&self, allow_insecure: bool) -> AuthLayer {
        AuthLayer::new(allow_insecure, self.role_of, self.on_refusal.clone())
    }
}

/// Serves `routes` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: Listener,
    routes: Routes,
    guards: &Guards,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), GrpcError> {
    let local = guards.limits.local_connections;
    match listener {
        Listener::Mtls(listener, pem) => {
            let config = tls::server_config(&pem)?;
            let incoming = ReceiverStream::new(tls::incoming(listener, config));
            serve_on(incoming, false, routes, guards, shutdown).await
        }
        Listener::InsecureLoopback(listener) => {
            let incoming = capped(TcpListenerStream::new(listener), local, "insecure-loopback");
            serve_on(incoming, true, routes, guards, shutdown).await
        }
        Listener::Unix(listener) => {
            let incoming = capped(UnixListenerStream::new(listener), local, "unix");
            serve_on(incoming, false, routes, guards, shutdown).await
        }
    }
}

/// One listener's connections, each behind the auth layer and the budget.
/// `allow_insecure`: plaintext TCP callers are admin (loopback only).
async fn serve_on<I, IO, IE>(
    incoming: I,
    allow_insecure: bool,
    routes: Routes,
    guards: &Guards,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), GrpcError>
where
    I: Stream<Item = Result<IO, IE>>,
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    IO::ConnectInfo: Clone + Send + Sync + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    guards
        .builder()
        .layer(super::count::CountLayer::new(guards.metrics.clone()))
        .layer(guards.auth(allow_insecure))
        .layer(guards.budget.layer())
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(GrpcError::Transport)
}
