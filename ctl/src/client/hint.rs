//! Advice for a failed connection or call, read from the error's causes by
//! type: the TLS alert or certificate error rustls reports, or hyper saying
//! the agent closed the connection. tonic's own message ("transport error")
//! says nothing; the cause three levels down says everything.

use std::error::Error;

use rustls::{AlertDescription, CertificateError};

/// What to do about a connection or call that failed for TLS reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsHint {
    /// The agent wants a client certificate and got none it could use.
    ClientCertRequired,
    /// The agent does not trust the client certificate's issuer.
    ClientCertUntrusted,
    /// The agent's certificate is not signed by the CA given with --ca.
    AgentCertUntrusted,
    /// The agent's certificate does not name the dialled address.
    AgentCertWrongName,
    /// The agent closed the connection, typically right after the handshake.
    Closed,
}

impl TlsHint {
    pub const ALL: [TlsHint; 5] = [
        TlsHint::ClientCertRequired,
        TlsHint::ClientCertUntrusted,
        TlsHint::AgentCertUntrusted,
        TlsHint::AgentCertWrongName,
        TlsHint::Closed,
    ];

    /// The advice, as printed after `hint: `.
    pub fn advice(self) -> &'static str {
        match self {
            TlsHint::ClientCertRequired => {
                "the agent requires a client certificate: pass --cert and --key (see `linkherdctl certs issue --client`)"
            }
            TlsHint::ClientCertUntrusted => {
                "the agent does not trust your client certificate: it must be signed by the agent's client CA"
            }
            TlsHint::AgentCertUntrusted => {
                "the agent's certificate is not signed by the CA given with --ca"
            }
            TlsHint::AgentCertWrongName => {
                "the agent's certificate does not name the address you dialled: reissue it with --san ADDRESS"
            }
            TlsHint::Closed => {
                "the agent closed the connection: if it happens at once, it rejected your client certificate (signed by a CA it does not trust?)"
            }
        }
    }

    /// The first hint any cause of `e` (itself included) gives.
    pub fn of(e: &(dyn Error + 'static)) -> Option<Self> {
        causes(e)
            .find_map(|c| {
                c.downcast_ref::<rustls::Error>()
                    .and_then(from_rustls)
                    .or_else(|| c.downcast_ref::<hyper::Error>().and_then(from_hyper))
            })
            .or_else(|| causes(e).find_map(erased_alert))
    }
}

/// `e` and its sources; an `io::Error` wrapping another error is followed
/// into it (its `source()` skips the wrapped error itself).
fn causes<'a>(e: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    let mut next = Some(e);
    std::iter::from_fn(move || {
        let cur = next?;
        next = match cur
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn Error + 'static)),
            None => cur.source(),
        };
        Some(cur)
    })
}

fn from_rustls(e: &rustls::Error) -> Option<TlsHint> {
    match e {
        rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired | AlertDescription::HandshakeFailure,
        ) => Some(TlsHint::ClientCertRequired),
        rustls::Error::AlertReceived(
            AlertDescription::UnknownCA
            | AlertDescription::BadCertificate
            | AlertDescription::DecryptError,
        ) => Some(TlsHint::ClientCertUntrusted),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => Some(TlsHint::AgentCertWrongName),
        rustls::Error::InvalidCertificate(_) => Some(TlsHint::AgentCertUntrusted),
        _ => None,
    }
}

/// An alert received on an established HTTP/2 connection reaches us as an
/// `io::Error` of kind `InvalidData` whose rustls error h2 has turned into
/// text (it keeps only the kind and the message). With TLS 1.3 the agent
/// checks the client certificate after the handshake, so this is how a
/// refused client certificate shows.
fn erased_alert(e: &(dyn Error + 'static)) -> Option<TlsHint> {
    let io = e.downcast_ref::<std::io::Error>()?;
    let typed = io
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
    (io.kind() == std::io::ErrorKind::InvalidData && !typed).then_some(TlsHint::ClientCertUntrusted)
}

fn from_hyper(e: &hyper::Error) -> Option<TlsHint> {
    (e.is_closed() || e.is_canceled() || e.is_incomplete_message()).then_some(TlsHint::Closed)
}

/// An error with all its causes, each once: `transport error: tls: ...`.
pub fn error_chain(e: &dyn Error) -> String {
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
    fn hints_come_from_the_rustls_error_under_an_io_error() {
        let alert = rustls::Error::AlertReceived(AlertDescription::UnknownCA);
        let io = std::io::Error::other(alert);
        assert_eq!(TlsHint::of(&io), Some(TlsHint::ClientCertUntrusted));
        let name = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        assert_eq!(TlsHint::of(&name), Some(TlsHint::AgentCertWrongName));
        let issuer = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert_eq!(TlsHint::of(&issuer), Some(TlsHint::AgentCertUntrusted));
        assert_eq!(TlsHint::of(&std::io::Error::other("plain")), None);
    }
}
