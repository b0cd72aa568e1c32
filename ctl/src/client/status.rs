//! An agent's answer that is an error, as a person reads it: the gRPC code
//! as gRPC documents spell it, the agent's message, the transport cause with
//! a TLS hint, and every field violation.

use std::fmt;

use super::hint::{TlsHint, error_chain};

/// A call an agent refused or failed, with the host it was made to when
/// the caller talks to several.
#[derive(Debug, Clone)]
pub struct RpcError {
    pub host: Option<String>,
    pub status: tonic::Status,
}

impl RpcError {
    /// A failed call to `host`.
    pub fn on(host: &str, status: tonic::Status) -> Self {
        Self {
            host: Some(host.to_owned()),
            status,
        }
    }
}

impl From<tonic::Status> for RpcError {
    fn from(status: tonic::Status) -> Self {
        Self { host: None, status }
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(h) = &self.host {
            write!(f, "{h}: ")?;
        }
        f.write_str(&format_status(&self.status))
    }
}

impl std::error::Error for RpcError {}

/// `NOT_FOUND: interface "eth9" not found`, plus the transport cause, a TLS
/// hint and field violations, each on its own line.
pub fn format_status(s: &tonic::Status) -> String {
    let code = format!("{:?}", s.code());
    let mut out = format!("{}: {}", screaming(&code), s.message());
    if let Some(source) = std::error::Error::source(s) {
        out.push_str(&format!(" ({})", error_chain(source)));
        if let Some(hint) = TlsHint::of(source) {
            out.push_str(&format!("\n  hint: {}", hint.advice()));
        }
    }
    for (field, desc) in linkherd_proto::field_violations(s) {
        out.push_str(&format!("\n  field {field}: {desc}"));
    }
    out
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
        assert_eq!(
            RpcError::on("no1", s).to_string(),
            "no1: PERMISSION_DENIED: x"
        );
    }
}
