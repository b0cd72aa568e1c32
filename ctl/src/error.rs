//! `linkherdctl` errors. Every variant says what failed and, where there is
//! one, what to do about it; gRPC failures keep the agent's code and message.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot connect to {target}: {detail}")]
    Connect { target: String, detail: String },
    #[error("{}", format_status(.0))]
    Rpc(#[from] tonic::Status),
    #[error("cannot read {path}: {detail}")]
    File { path: PathBuf, detail: String },
    #[error(transparent)]
    Decode(#[from] linkherd_proto::convert::DecodeError),
    #[error(transparent)]
    Cert(#[from] crate::certs::CertError),
    #[error("output: {0}")]
    Output(String),
    #[error(transparent)]
    Spec(Box<crate::spec::SpecError>),
    #[error(transparent)]
    Fleet(Box<crate::fleet::FleetError>),
    #[error("cannot reach {}; nothing was changed", .0.join("; "))]
    Unreachable(Vec<String>),
    /// A fleet apply, destroy or verify that failed: what, where, and
    /// what was rolled back.
    #[error("{0}")]
    Rollout(String),
    #[error("the agent sent an empty response")]
    EmptyResponse,
}

impl CtlError {
    /// The gRPC status, when the agent answered with an error.
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            CtlError::Rpc(s) => Some(s),
            _ => None,
        }
    }
}

/// `NOT_FOUND: interface "eth9" not found`, plus field violations.
pub fn format_status(s: &tonic::Status) -> String {
    let code = format!("{:?}", s.code());
    let mut out = format!("{}: {}", screaming(&code), s.message());
    if let Some(source) = std::error::Error::source(s) {
        let chain = crate::client::error_chain(source);
        out.push_str(&format!(" ({chain})"));
        if let Some(hint) = tls_hint(&chain) {
            out.push_str(&format!("\n  hint: {hint}"));
        }
    }
    for (field, desc) in linkherd_proto::field_violations(s) {
        out.push_str(&format!("\n  field {field}: {desc}"));
    }
    out
}

/// Turns a TLS alert buried in a transport error into advice.
pub fn tls_hint(chain: &str) -> Option<&'static str> {
    if chain.contains("CertificateRequired") || chain.contains("HandshakeFailure") {
        Some(
            "the agent requires a client certificate: pass --cert and --key (see `linkherdctl certs issue --client`)",
        )
    } else if chain.contains("UnknownCA")
        || chain.contains("BadCertificate")
        || chain.contains("DecryptError")
    {
        Some(
            "the agent does not trust your client certificate: it must be signed by the agent's client CA",
        )
    } else if chain.contains("UnknownIssuer") || chain.contains("invalid peer certificate") {
        Some("the agent's certificate is not signed by the CA given with --ca")
    } else if chain.contains("connection closed") || chain.contains("operation was canceled") {
        Some(
            "the agent closed the connection: if it happens at once, it rejected your client certificate (signed by a CA it does not trust?)",
        )
    } else if chain.contains("NotValidForName") {
        Some(
            "the agent's certificate does not name the address you dialled: reissue it with --san ADDRESS",
        )
    } else {
        None
    }
}

/// `InvalidArgument` -> `INVALID_ARGUMENT`, the spelling gRPC documents use.
fn screaming(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_printed_with_the_grpc_code_name() {
        let s = tonic::Status::not_found("interface \"eth9\" not found");
        assert_eq!(format_status(&s), "NOT_FOUND: interface \"eth9\" not found");
        let s = tonic::Status::permission_denied("x");
        assert_eq!(format_status(&s), "PERMISSION_DENIED: x");
    }
}
