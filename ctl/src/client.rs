//! Connecting to an agent: `https://HOST:PORT` with mTLS, or the local
//! `unix:///path` socket.

use std::{
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use hyper_util::rt::TokioIo;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};

use crate::error::CtlError;

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
    ) -> Result<Self, String> {
        if let Some(path) = agent.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "invalid agent {agent:?}: a unix socket needs an absolute path, e.g. unix:///run/linkherd/agent.sock"
                ));
            }
            return Ok(Target::Unix { path: path.into() });
        }
        if agent.starts_with("https://") {
            agent
                .parse::<Uri>()
                .map_err(|e| format!("invalid agent {agent:?}: {e}"))?;
            return Ok(Target::Https {
                url: agent.trim_end_matches('/').to_owned(),
                tls: TlsFiles { ca, cert, key },
            });
        }
        if agent.starts_with("http://") {
            return Err(format!(
                "invalid agent {agent:?}: linkherd agents speak mTLS; use https://"
            ));
        }
        Err(format!(
            "invalid agent {agent:?}: use https://HOST:PORT or unix:///PATH"
        ))
    }

    pub fn tls(&self) -> Option<&TlsFiles> {
        match self {
            Target::Https { tls, .. } => Some(tls),
            Target::Unix { .. } => None,
        }
    }

    /// Opens a channel (connecting eagerly, so errors surface here).
    pub async fn connect(&self) -> Result<Channel, CtlError> {
        let fail = |detail: String| {
            let detail = match crate::error::tls_hint(&detail) {
                Some(hint) => format!("{detail}\n  hint: {hint}"),
                None => detail,
            };
            CtlError::Connect {
                target: self.to_string(),
                detail,
            }
        };
        match self {
            Target::Https { url, tls } => {
                let mut cfg = ClientTlsConfig::new();
                if let Some(ca) = &tls.ca {
                    cfg = cfg.ca_certificate(Certificate::from_pem(read(ca)?));
                }
                match (&tls.cert, &tls.key) {
                    (Some(cert), Some(key)) => {
                        cfg = cfg.identity(Identity::from_pem(read(cert)?, read(key)?));
                    }
                    // Agents accept mTLS only: say so here instead of
                    // letting the handshake fail with a vaguer message.
                    (None, None) => {
                        return Err(fail(
                            "linkherd agents require a client certificate: give --cert and --key \
                             (issue one with `linkherdctl certs issue --client NAME --role ROLE`)"
                                .into(),
                        ));
                    }
                    _ => return Err(fail("give both --cert and --key".into())),
                }
                Endpoint::from_shared(url.clone())
                    .map_err(|e| fail(e.to_string()))?
                    .connect_timeout(Duration::from_secs(5))
                    .tls_config(cfg)
                    .map_err(|e| fail(error_chain(&e)))?
                    .connect()
                    .await
                    .map_err(|e| fail(error_chain(&e)))
            }
            Target::Unix { path } => {
                let path = path.clone();
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
                    .map_err(|e| fail(error_chain(&e)))
            }
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, CtlError> {
    std::fs::read(path).map_err(|e| CtlError::File {
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

/// An error with all its causes: tonic's own message ("transport error") says
/// nothing, the TLS alert three levels down says everything.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = s.source();
    }
    out
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
            Target::parse("http://10.0.0.1:7443", None, None, None),
            Err(
                "invalid agent \"http://10.0.0.1:7443\": linkherd agents speak mTLS; use https://"
                    .into()
            )
        );
        assert!(Target::parse("unix://relative", None, None, None).is_err());
        assert!(Target::parse("10.0.0.1:7443", None, None, None).is_err());
    }
}
