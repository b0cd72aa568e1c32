//! The agent's service-level error and its one mapping to gRPC status codes.

use linkherd_proto::model::ValidationError;
use tonic::{Code, Status};

use crate::net::NetError;

/// Everything a request can fail with, before it becomes a gRPC status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error(transparent)]
    Net(#[from] NetError),
    /// An object the request names does not exist (message says which).
    #[error("{0}")]
    NotFound(String),
    /// The object exists, differently (message says how).
    #[error("{0}")]
    Exists(String),
    /// The host is not in a state that allows this (message gives the fix).
    #[error("{0}")]
    Precondition(String),
}

impl Error {
    /// For `map_err` chains.
    pub fn into_status(self) -> Status {
        self.into()
    }
}

impl From<Error> for Status {
    /// The one place where failures become status codes: callers can rely on
    /// the code, and the message says what was wrong and how to fix it.
    fn from(err: Error) -> Self {
        match err {
            Error::Invalid(v) => v.into(),
            Error::Net(n) => net_status(n),
            Error::NotFound(m) => Status::not_found(m),
            Error::Exists(m) => Status::already_exists(m),
            Error::Precondition(m) => Status::failed_precondition(m),
        }
    }
}

fn net_status(err: NetError) -> Status {
    let msg = err.to_string();
    match err {
        NetError::NotFound { .. } => Status::not_found(msg),
        NetError::AlreadyExists { .. } => Status::already_exists(msg),
        NetError::Unsupported { .. } => Status::new(Code::FailedPrecondition, msg),
        NetError::Busy { .. } => Status::new(Code::FailedPrecondition, msg),
        NetError::PermissionDenied { .. } => Status::permission_denied(msg),
        NetError::Invalid { .. } => Status::invalid_argument(msg),
        NetError::Kernel { .. } | NetError::Io { .. } => {
            tracing::error!(error = %msg, "kernel operation failed");
            Status::internal(msg)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_net_error_has_its_code() {
        let cases = [
            (
                NetError::NotFound {
                    what: "interface \"eth9\"".into(),
                },
                Code::NotFound,
            ),
            (
                NetError::AlreadyExists { what: "x".into() },
                Code::AlreadyExists,
            ),
            (
                NetError::Unsupported {
                    op: "add vlan",
                    detail: "no".into(),
                },
                Code::FailedPrecondition,
            ),
            (
                NetError::Busy {
                    op: "x",
                    detail: "y".into(),
                },
                Code::FailedPrecondition,
            ),
            (
                NetError::PermissionDenied { op: "x" },
                Code::PermissionDenied,
            ),
            (
                NetError::Invalid {
                    op: "x",
                    detail: "y".into(),
                },
                Code::InvalidArgument,
            ),
            (
                NetError::Kernel {
                    op: "x",
                    errno: libc::EIO,
                },
                Code::Internal,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(
                Status::from(Error::Net(err.clone())).code(),
                code,
                "{err:?}"
            );
        }
        let s = Status::from(Error::Net(NetError::NotFound {
            what: "interface \"eth9\"".into(),
        }));
        assert_eq!(s.message(), "interface \"eth9\" not found");
    }
}
