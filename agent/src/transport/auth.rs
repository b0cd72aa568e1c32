//! Who is calling, and may they do this?
//!
//! Every request passes [`AuthLayer`] before reaching a service. It derives an
//! [`Identity`] from the connection (the verified client certificate on mTLS,
//! the peer's uid on the unix socket), checks it against the role the RPC
//! requires (a [`RoleOf`], from the agent's table of services), and either rejects the call or hands the
//! identity to the handler as a request extension (for the audit log).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use linkherd_proto::model::Role;

use crate::state::caller::{Identity, Transport};
use tonic::{
    Status,
    transport::server::{TcpConnectInfo, TlsConnectInfo, UdsConnectInfo},
};
use tower::{Layer, Service};
use tracing::Instrument;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The RPC a request calls, `Service/Method` (package left out), taken from
/// its gRPC path by [`AuthLayer`] — so no handler writes its own name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rpc(pub String);

impl Rpc {
    /// `Service/Method` of `/linkherd.v1.Service/Method`.
    pub fn from_path(path: &str) -> Rpc {
        let path = path.trim_start_matches('/');
        let name = match path.split_once('/') {
            Some((service, method)) => {
                let service = service.rsplit('.').next().unwrap_or(service);
                format!("{service}/{method}")
            }
            None => path.to_owned(),
        };
        Rpc(name)
    }

    /// The RPC [`AuthLayer`] attached to a request.
    pub fn of<T>(req: &tonic::Request<T>) -> Rpc {
        req.extensions()
            .get::<Rpc>()
            .cloned()
            .unwrap_or_else(|| Rpc("unknown".into()))
    }
}

impl fmt::Display for Rpc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The role each RPC needs, by its gRPC path `/package.Service/Method`:
/// the agent's table of services (`crate::app::services`) answers it, so
/// this layer knows no service by name.
pub type RoleOf = fn(&str) -> Role;

/// Why a certificate does not identify a linkherd client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("the client certificate cannot be parsed: {0}")]
    Parse(String),
    #[error("the client certificate has no subject common name")]
    NoName,
    #[error(
        "the client certificate of {0:?} carries no linkherd role; issue one with \
         `linkherdctl certs issue --client {0} --role viewer|operator|admin`"
    )]
    NoRole(String),
}

/// Reads name (CN) and role (URI SAN `urn:linkherd:role:…`) from a client
/// certificate that rustls has already verified against the client CA.
pub fn identity_from_cert(der: &[u8]) -> Result<Identity, CertError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| CertError::Parse(e.to_string()))?;
    let name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
        .ok_or(CertError::NoName)?;
    let role = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .into_iter()
        .flat_map(|san| san.value.general_names.iter())
        .filter_map(|gn| match gn {
            GeneralName::URI(uri) => Role::from_uri(uri),
            _ => None,
        })
        .max()
        .ok_or_else(|| CertError::NoRole(name.clone()))?;
    Ok(Identity {
        name,
        role,
        transport: Transport::Mtls,
    })
}

/// A call refused by the layer: whoever the connection identified (if
/// anyone) and the status to answer with.
#[derive(Debug)]
pub struct Refusal {
    pub who: Option<Identity>,
    /// How the caller came, for the audit record when nobody was identified.
    pub transport: &'static str,
    pub status: Status,
}

impl Refusal {
    fn anonymous(transport: &'static str, status: Status) -> Self {
        Self {
            who: None,
            transport,
            status,
        }
    }
}

/// Identifies the caller of one HTTP/2 request from its connection info.
fn authenticate<B>(req: &http::Request<B>, allow_insecure: bool) -> Result<Identity, Refusal> {
    let ext = req.extensions();
    if let Some(tls) = ext.get::<TlsConnectInfo<TcpConnectInfo>>() {
        let refuse = |s| Refusal::anonymous(Transport::Mtls.as_str(), s);
        let certs = tls.peer_certs().ok_or_else(|| {
            refuse(Status::unauthenticated(
                "no client certificate: linkherd requires mTLS",
            ))
        })?;
        let leaf = certs
            .first()
            .ok_or_else(|| refuse(Status::unauthenticated("empty client certificate chain")))?;
        return identity_from_cert(leaf)
            .map_err(|e| refuse(Status::permission_denied(e.to_string())));
    }
    if let Some(uds) = ext.get::<UdsConnectInfo>() {
        let refuse = |s| Refusal::anonymous(Transport::Unix.as_str(), s);
        let uid = uds.peer_cred.map(|c| c.uid()).ok_or_else(|| {
            refuse(Status::unauthenticated(
                "cannot read the peer credentials of the unix socket client",
            ))
        })?;
        let me = nix::unistd::geteuid().as_raw();
        if uid != 0 && uid != me {
            return Err(Refusal::anonymous(
                Transport::Unix.as_str(),
                Status::permission_denied(format!(
                    "uid {uid} may not use the agent's unix socket; run linkherdctl as root"
                )),
            ));
        }
        return Ok(Identity {
            name: format!("uid:{uid}"),
            role: Role::Admin,
            transport: Transport::Unix,
        });
    }
    if allow_insecure && ext.get::<TcpConnectInfo>().is_some() {
        return Ok(Identity {
            name: "insecure-loopback".into(),
            role: Role::Admin,
            transport: Transport::InsecureLoopback,
        });
    }
    Err(Refusal::anonymous(
        "unknown",
        Status::unauthenticated("connection carries no verified identity: linkherd requires mTLS"),
    ))
}

/// Decides one request: the identity to attach, or the refusal.
pub fn decide<B>(
    req: &http::Request<B>,
    allow_insecure: bool,
    role_of: RoleOf,
) -> Result<Identity, Refusal> {
    let who = authenticate(req, allow_insecure)?;
    let path = req.uri().path();
    let needed = role_of(path);
    if who.role < needed {
        tracing::warn!(caller = %who, rpc = path, needed = %needed, "permission denied");
        let status = Status::permission_denied(format!(
            "{} has role {}, but {} needs role {}",
            who.name,
            who.role,
            path.trim_start_matches('/'),
            needed
        ));
        return Err(Refusal {
            transport: who.transport.as_str(),
            who: Some(who),
            status,
        });
    }
    Ok(who)
}

/// Decides one request: the identity to attach, or the status to answer with.
pub fn authorize<B>(
    req: &http::Request<B>,
    allow_insecure: bool,
    role_of: RoleOf,
) -> Result<Identity, Status> {
    decide(req, allow_insecure, role_of).map_err(|r| r.status)
}

/// Told of every refusal, with the RPC it refused: the server audits them
/// (this module writes nothing itself, so it depends on no sink).
pub type OnRefusal = Arc<dyn Fn(&Refusal, &Rpc) + Send + Sync>;

/// Tower layer applying [`decide`] to every request; every refusal goes to
/// its [`OnRefusal`].
#[derive(Clone)]
pub struct AuthLayer {
    allow_insecure: bool,
    role_of: RoleOf,
    on_refusal: OnRefusal,
}

impl fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("allow_insecure", &self.allow_insecure)
            .finish_non_exhaustive()
    }
}

impl AuthLayer {
    /// `allow_insecure`: accept plaintext TCP callers as admin (only for a
    /// listener the operator explicitly bound to loopback without TLS).
    pub fn new(allow_insecure: bool, role_of: RoleOf, on_refusal: OnRefusal) -> Self {
        Self {
            allow_insecure,
            role_of,
            on_refusal,
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            allow_insecure: self.allow_insecure,
            role_of: self.role_of,
            on_refusal: self.on_refusal.clone(),
        }
    }
}

/// The service produced by [`AuthLayer`].
#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    allow_insecure: bool,
    role_of: RoleOf,
    on_refusal: OnRefusal,
}

impl<S> fmt::Debug for Auth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("allow_insecure", &self.allow_insecure)
            .finish_non_exhaustive()
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, B> Service<http::Request<B>> for Auth<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        match decide(&req, self.allow_insecure, self.role_of) {
            Ok(who) => {
                let rpc = Rpc::from_path(req.uri().path());
                // Everything the handler logs carries the RPC and the caller.
                let span = tracing::info_span!("rpc", rpc = %rpc, caller = %who.name);
                req.extensions_mut().insert(who);
                req.extensions_mut().insert(rpc);
                // The service that was polled ready must be the one called.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Box::pin(inner.call(req).instrument(span))
            }
            Err(refusal) => {
                (self.on_refusal)(&refusal, &Rpc::from_path(req.uri().path()));
                let status = refusal.status;
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rpc_is_named_by_its_service_and_method() {
        assert_eq!(
            Rpc::from_path("/linkherd.v1.VlanService/Create").0,
            "VlanService/Create"
        );
        assert_eq!(
            Rpc::from_path("/grpc.health.v1.Health/Check").0,
            "Health/Check"
        );
        assert_eq!(Rpc::from_path("garbage").0, "garbage");
    }

    #[test]
    fn a_request_the_layer_did_not_pass_has_no_identity() {
        let req = tonic::Request::new(());
        let err = Identity::of(&req).expect_err("no fallback identity");
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn a_request_without_connection_info_is_unauthenticated() {
        let req = http::Request::builder()
            .uri("/linkherd.v1.InterfaceService/List")
            .body(())
            .expect("request");
        let err = authorize(&req, false, |_| Role::Viewer).expect_err("no identity");
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
    }
}
