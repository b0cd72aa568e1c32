//! Who made a change: the caller of an RPC as the transport identified it,
//! or the agent itself acting on its own (a lease ending, a recovery). The
//! audit log records it with every change, and the domain takes it to say
//! who asked; the transport layer fills it in (see
//! [`crate::transport::auth`]).

use std::fmt;

use linkherd_proto::model::Role;
use tonic::Status;

/// How the caller reached the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP with a verified client certificate.
    Mtls,
    /// The local root-only unix socket.
    Unix,
    /// Plaintext TCP on loopback, explicitly enabled.
    InsecureLoopback,
    /// In-process calls (tests, the agent itself).
    Internal,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Mtls => "mtls",
            Transport::Unix => "unix",
            Transport::InsecureLoopback => "insecure-loopback",
            Transport::Internal => "internal",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub role: Role,
    pub transport: Transport,
}

impl Identity {
    /// The agent acting on its own (e.g. a lease expiring).
    pub fn agent(reason: &str) -> Self {
        Self {
            name: format!("agent ({reason})"),
            role: Role::Admin,
            transport: Transport::Internal,
        }
    }

    /// The identity [`AuthLayer`] attached to a request. There is no
    /// fallback: a request that did not pass the layer has no identity, and
    /// is refused rather than trusted.
    pub fn of<T>(req: &tonic::Request<T>) -> Result<Identity, Status> {
        req.extensions().get::<Identity>().cloned().ok_or_else(|| {
            Status::unauthenticated("the request carries no verified identity; it is refused")
        })
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {})",
            self.name,
            self.role,
            self.transport.as_str()
        )
    }
}
