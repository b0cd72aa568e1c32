//! TCP connect probe: does a TCP handshake to ip:port get an answer?
//! "refused" proves reachability as well as "connected" does: the peer's
//! RST had to come back.

use std::{
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use socket2::{Domain, Protocol, Socket, Type};

use super::budget::Ticket;
use crate::net::{
    NetError,
    netns::{NsId, enter_expected},
};

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

/// Where a TCP probe goes from, and how long it may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSpec {
    /// `None`: the agent's own namespace.
    pub netns: Option<PathBuf>,
    /// The namespace `netns` was checked to be.
    pub netns_id: Option<NsId>,
    pub interface: Option<String>,
    pub to: SocketAddr,
    pub timeout: Duration,
}

/// Connects from the namespace at `spec.netns`, bound to `interface` when
/// given. Runs on a blocking thread that holds `ticket` until it ends; the
/// connect is bounded by the timeout, so it returns by then.
pub async fn probe(spec: TcpSpec, ticket: Ticket) -> Result<TcpOutcome, NetError> {
    tokio::task::spawn_blocking(move || {
        let _ticket = &ticket;
        let _ns = enter_expected(spec.netns.as_deref(), spec.netns_id)?;
        let started = Instant::now();
        if !ticket.pacer.send_one(started + spec.timeout) {
            return Ok(TcpOutcome {
                result: TcpResult::TimedOut,
                elapsed: started.elapsed(),
                detail: "the probe packet budget had no room before the timeout".into(),
            });
        }
        let left = spec
            .timeout
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(1));
        let res = connect(spec.to, spec.interface.as_deref(), left);
        let elapsed = started.elapsed();
        let to = spec.to;
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
