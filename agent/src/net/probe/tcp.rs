//! TCP connect probe: does a TCP handshake to ip:port get an answer?
//! "refused" proves reachability as well as "connected" does: the peer's
//! RST had to come back.

use std::{
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use socket2::{Domain, Protocol, Socket, Type};

use crate::net::{NetError, netns::NetnsGuard};

/// Longest timeout a probe may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpResult {
    Connected,
    Refused,
    TimedOut,
    /// No route, host unreachable, network down.
    Unreachable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpOutcome {
    pub result: TcpResult,
    pub elapsed: Duration,
    pub detail: String,
}

/// Connects from the namespace at `netns` (`None`: the agent's own), bound
/// to `interface` when given.
pub async fn probe(
    netns: Option<PathBuf>,
    interface: Option<String>,
    to: SocketAddr,
    timeout: Duration,
) -> Result<TcpOutcome, NetError> {
    tokio::task::spawn_blocking(move || {
        let _ns = netns.as_deref().map(NetnsGuard::enter).transpose()?;
        let started = Instant::now();
        let res = connect(to, interface.as_deref(), timeout);
        let elapsed = started.elapsed();
        Ok(match res {
            Ok(()) => TcpOutcome {
                result: TcpResult::Connected,
                elapsed,
                detail: format!("connected to {to}"),
            },
            Err(e) => {
                let result = match e.kind() {
                    std::io::ErrorKind::ConnectionRefused => TcpResult::Refused,
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                        TcpResult::TimedOut
                    }
                    _ => TcpResult::Unreachable,
                };
                TcpOutcome {
                    result,
                    elapsed,
                    detail: e.to_string(),
                }
            }
        })
    })
    .await
    .map_err(|e| NetError::Io {
        op: "tcp probe",
        detail: e.to_string(),
    })?
}

fn connect(to: SocketAddr, interface: Option<&str>, timeout: Duration) -> std::io::Result<()> {
    let sock = Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP))?;
    if let Some(dev) = interface {
        sock.bind_device(Some(dev.as_bytes()))?;
    }
    sock.connect_timeout(&to.into(), timeout)
}
