//! Connecting to an agent: `https://HOST:PORT` with mTLS, or the local
//! `unix:///path` socket; and how an agent's errors read ([`RpcError`],
//! [`TlsHint`]).

mod hint;
mod status;

pub use hint::{TlsHint, error_chain};
pub use status::{RpcError, format_status};

use std::{
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use hyper_util::rt::TokioIo;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};

/// Client credentials for mTLS; each may be missing (and the agent will then
/// refuse, which is the point of testing with them missing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// Where an agent is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Https { url: String, tls: TlsFiles },
    Unix { path: PathBuf },
}

/// An agent address that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error(
        "invalid agent {0:?}: a unix socket needs an absolute path, e.g. unix:///run/linkherd/agent.sock"
    )]
    RelativeSocket(String),
    #[error("invalid agent {agent:?}: {problem}")]
    Uri { agent: String, problem: String },
    #[error("invalid agent {0:?}: linkherd agents speak mTLS; use https://")]
    Plaintext(String),
    #[error("invalid agent {0:?}: use https://HOST:PORT or unix:///PATH")]
    Scheme(String),
}

/// Why no channel to an agent could be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot connect to {target}: {cause}")]
    Failed { target: String, cause: ConnectCause },
}

/// What went wrong reaching an agent.
#[derive(Debug, thiserror::Error)]
pub enum ConnectCause {
    /// Agents accept mTLS only: said here instead of letting the handshake
    /// fail with a vaguer message.
    #[error(
        "linkherd agents require a client certificate: give --cert and --key \
         (issue one with `linkherdctl certs issue --client NAME --role ROLE`)"
    )]
    NoClientCertificate,
    #[error("give both --cert and --key")]
    HalfIdentity,
    /// The transport failed: every cause, and advice when TLS explains it.
    #[error("{chain}{}", .hint.map(|h| format!("\n  hint: {}", h.advice())).unwrap_or_default())]
    Transport {
        chain: String,
        hint: Option<TlsHint>,
    },
}

impl ConnectCause {
    fn transport(e: &(dyn std::error::Error + 'static)) -> Self {
        ConnectCause::Transport {
            chain: error_chain(e),
            hint: TlsHint::of(e),
        }
    }
}

/// Where each host of a fleet is reached, and with which credentials: the
/// fleet engine asks this for every host of a spec.
pub trait Targets: Sync {
    /// The target of `host`, whose agent the spec places at `address`.
    fn target(&self, host: &str, address: &str) -> Result<Target, TargetError>;
}

/// The same credentials for every host.
impl Targets for TlsFiles {
    fn target(&self, _host: &str, address: &str) -> Result<Target, TargetError> {
        Target::parse(
            address,
            self.ca.clone(),
            self.cert.clone(),
            self.key.clone(),
        )
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Https { url, .. } => f.write_str(url),
            Target::Unix { path } => write!(f, "unix://{}", path.display()),
        }
    }
}

impl Target {
    pub fn parse(
        agent: &str,
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<Self, TargetError> {
        if let Some(path) = agent.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(TargetError::RelativeSocket(agent.to_owned()));
            }
            return Ok(Target::Unix { path: path.into() });
        }
        if agent.starts_with("https://") {
            agent.parse::<Uri>().map_err(|e| TargetError::Uri {
                agent: agent.to_owned(),
                problem: e.to_string(),
            })?;
            return Ok(Target::Https {
                url: agent.trim_end_matches('/').to_owned(),
                tls: TlsFiles { ca, cert, key },
            });
        }
        if agent.starts_with("http://") {
            return Err(TargetError::Plaintext(agent.to_owned()));
        }
        Err(TargetError::Scheme(agent.to_owned()))
    }

    pub fn tls(&self) -> Option<&TlsFiles> {
        match self {
            Target::Https { tls, .. } => Some(tls),
            Target::Unix { .. } => None,
        }
    }

    /// Opens a channel (connecting eagerly, so errors surface here).
    pub async fn connect(&self) -> Result<Channel, ConnectError> {
        let fail = |cause| ConnectError::Failed {
            target: self.to_string(),
            cause,
        };
        match self {
            Target::Https { url, tls } => {
                let cfg = client_tls(tls, fail)?;
                Endpoint::from_shared(url.clone())
                    .map_err(|e| fail(ConnectCause::transport(&e)))?
                    .connect_timeout(Duration::from_secs(5))
                    .tls_config(cfg)
                    .map_err(|e| fail(ConnectCause::transport(&e)))?
                    .connect()
                    .await
                    .map_err(|e| fail(ConnectCause::transport(&e)))
            }
            Target::Unix { path } => connect_unix(path.clone())
                .await
                .map_err(|e| fail(ConnectCause::transport(&e))),
        }
    }
}

/// The CA to trust and the client identity to show; both halves of the
/// identity or neither (and then the agent would refuse: said here).
fn client_tls(
    tls: &TlsFiles,
    fail: impl Fn(ConnectCause) -> ConnectError,
) -> Result<ClientTlsConfig, ConnectError> {
    let mut cfg = ClientTlsConfig::new();
    if let Some(ca) = &tls.ca {
        cfg = cfg.ca_certificate(Certificate::from_pem(read(ca)?));
    }
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => Ok(cfg.identity(Identity::from_pem(read(cert)?, read(key)?))),
        (None, None) => Err(fail(ConnectCause::NoClientCertificate)),
        _ => Err(fail(ConnectCause::HalfIdentity)),
    }
}

async fn connect_unix(path: PathBuf) -> Result<Channel, tonic::transport::Error> {
    // The URI is required by the API but unused by the connector.
    Endpoint::from_static("http://localhost")
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
}

fn read(path: &Path) -> Result<Vec<u8>, ConnectError> {
    std::fs::read(path).map_err(|source| ConnectError::Read {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_reject_plaintext() {
        assert_eq!(
            Target::parse("unix:///run/linkherd/agent.sock", None, None, None),
            Ok(Target::Unix {
                path: "/run/linkherd/agent.sock".into()
            })
        );
        assert!(matches!(
            Target::parse("https://10.0.0.1:7443/", None, None, None),
            Ok(Target::Https { url, .. }) if url == "https://10.0.0.1:7443"
        ));
        assert_eq!(
            Target::parse("http://10.0.0.1:7443", None, None, None).map_err(|e| e.to_string()),
            Err(
                "invalid agent \"http://10.0.0.1:7443\": linkherd agents speak mTLS; use https://"
                    .into()
            )
        );
        assert!(Target::parse("unix://relative", None, None, None).is_err());
        assert!(Target::parse("10.0.0.1:7443", None, None, None).is_err());
    }
}
