//! The agent's service-level error and its one mapping to gRPC status codes.

use linkherd_proto::model::ValidationError;
use tonic::{Code, Status};

use crate::{net::NetError, state::store::StoreError};

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
    /// The agent's own trouble (a task that died): INTERNAL, and logged.
    #[error("{0}")]
    Internal(String),
    /// The state directory refused a write or a read (names the file and
    /// the OS error).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A transaction step failed: its cause keeps its own code, the message
    /// says which step and what was undone.
    #[error("{step} failed: {source}; everything done before it was rolled back")]
    Step { step: String, source: Box<Error> },
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
            Error::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                Status::internal(m)
            }
            Error::Store(e) => store_status(&e),
            Error::Step { step, source } => {
                let inner = Status::from(*source);
                let msg = format!(
                    "{step} failed: {}; everything done before it was rolled back",
                    inner.message()
                );
                Status::with_details(inner.code(), msg, inner.details().to_vec().into())
            }
        }
    }
}

/// A state directory that is full, over quota or read-only needs an
/// operator before a retry can succeed: FAILED_PRECONDITION (gRPC's "do not
/// retry until the system is fixed"), with the fix. Any other I/O error, a
/// refused file or an encoding failure is the agent's own trouble: INTERNAL,
/// logged. Either way the message names the file and the OS error.
fn store_status(err: &StoreError) -> Status {
    let full = err
        .os_error()
        .and_then(std::io::Error::raw_os_error)
        .is_some_and(|n| matches!(n, libc::ENOSPC | libc::EDQUOT | libc::EROFS));
    if full {
        return Status::failed_precondition(format!(
            "state directory full or read-only: {err}; free space in it (or make it writable) \
             and retry"
        ));
    }
    if let StoreError::Refused { .. } = err {
        return Status::failed_precondition(err.to_string());
    }
    tracing::error!(error = %err, "state directory failed");
    Status::internal(err.to_string())
}

fn net_status(err: NetError) -> Status {
    let msg = err.to_string();
    match err {
        NetError::NotFound { .. } => Status::not_found(msg),
        NetError::AlreadyExists { .. } => Status::already_exists(msg),
        NetError::Unsupported { .. } => Status::new(Code::FailedPrecondition, msg),
        NetError::Busy { .. } => Status::new(Code::FailedPrecondition, msg),
        // PERMISSION_DENIED means a role refusal; the agent lacking a
        // capability is a host that must be fixed first.
        NetError::PermissionDenied { .. } => Status::failed_precondition(msg),
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
                Code::FailedPrecondition,
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
