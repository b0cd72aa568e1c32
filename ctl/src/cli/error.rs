//! Why a command failed, by cause. Every variant says what failed and,
//! where there is one, what to do about it; an agent's failures keep its
//! code and message. [`CtlError::exit`] maps each cause to its exit code.

use super::exit::Exit;
use crate::{
    certs::CertError,
    client::{ConnectError, RpcError},
    config::ConfigError,
    diagnose::DiagnoseError,
    fleet::{FleetError, read::UnreachableHosts, verify::VerifyFailure},
    output::OutputError,
    spec::SpecError,
};

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The command line asks for something impossible.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No channel to the agent: files, transport, TLS.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The agent refused or failed the call.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error("the agent sent an empty response")]
    EmptyResponse,
    /// A change asked for without a terminal to confirm it on, and without
    /// `--yes`: refused, as terraform does, so a script never changes a
    /// fleet by accident.
    #[error(
        "stdin is not a terminal, so nobody can confirm this {0}; nothing was changed. \
         Pass --yes (-y) to {0} without asking"
    )]
    Unconfirmed(&'static str),
    #[error(transparent)]
    Decode(#[from] linkherd_proto::convert::DecodeError),
    #[error("cannot {what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error(transparent)]
    Spec(Box<SpecError>),
    #[error(transparent)]
    Fleet(Box<FleetError>),
    /// A fleet apply or destroy that was rolled back or only partly
    /// confirmed: what, where, and what was rolled back.
    #[error(transparent)]
    Rollout(Box<super::report::RolloutFailed>),
    #[error(transparent)]
    Verify(VerifyFailure),
    #[error(transparent)]
    Diagnose(#[from] DiagnoseError),
}

impl From<tonic::Status> for CtlError {
    fn from(s: tonic::Status) -> Self {
        CtlError::Rpc(RpcError::from(s))
    }
}

impl From<SpecError> for CtlError {
    fn from(e: SpecError) -> Self {
        CtlError::Spec(Box::new(e))
    }
}

impl From<FleetError> for CtlError {
    fn from(e: FleetError) -> Self {
        CtlError::Fleet(Box::new(e))
    }
}

impl From<UnreachableHosts> for CtlError {
    fn from(e: UnreachableHosts) -> Self {
        CtlError::Fleet(Box::new(FleetError::Unreachable(e)))
    }
}

impl CtlError {
    /// The exit code for this cause: usage errors (the command line, no
    /// agent named) are told apart from failures.
    pub fn exit(&self) -> Exit {
        match self {
            CtlError::Usage(_)
            | CtlError::Config(ConfigError::NoAgent | ConfigError::HostWithoutConfig(_)) => {
                Exit::Usage
            }
            _ => Exit::Failure,
        }
    }

    /// The gRPC status, when the agent answered with an error.
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            CtlError::Rpc(e) => Some(&e.status),
            _ => None,
        }
    }
}
