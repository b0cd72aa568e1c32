//! Probe requests.

use std::{net::SocketAddr, time::Duration};

use super::lifecycle::netns_target;
use crate::{
    model::{IfName, NetnsRef, ValidationError},
    pb,
};

/// Default and largest per-probe timeouts.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
pub const MAX_PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// A validated `ProbeService.Tcp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpProbe {
    /// `None`: the agent's own namespace.
    pub netns: Option<NetnsRef>,
    pub interface: Option<IfName>,
    pub to: SocketAddr,
    pub timeout: Duration,
}

fn timeout(ms: u32) -> Result<Duration, ValidationError> {
    match ms {
        0 => Ok(DEFAULT_PROBE_TIMEOUT),
        ms if u128::from(ms) > MAX_PROBE_TIMEOUT.as_millis() => Err(ValidationError::new(
            "timeout_ms",
            ms.to_string(),
            format!(
                "is longer than the {} ms maximum",
                MAX_PROBE_TIMEOUT.as_millis()
            ),
            "use a shorter timeout",
        )),
        ms => Ok(Duration::from_millis(ms.into())),
    }
}

impl TryFrom<pb::TcpRequest> for TcpProbe {
    type Error = ValidationError;
    fn try_from(r: pb::TcpRequest) -> Result<Self, Self::Error> {
        let ip = r.destination.parse::<std::net::IpAddr>().map_err(|_| {
            ValidationError::new(
                "destination",
                &r.destination,
                "is not an IP address",
                "give e.g. 172.16.10.11",
            )
        })?;
        let port = u16::try_from(r.port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                ValidationError::new(
                    "port",
                    r.port.to_string(),
                    "is not a TCP port",
                    "use 1-65535",
                )
            })?;
        Ok(Self {
            netns: netns_target("source", r.source)?,
            interface: match r.interface.as_str() {
                "" => None,
                i => Some(IfName::parse("interface", i)?),
            },
            to: SocketAddr::new(ip, port),
            timeout: timeout(r.timeout_ms)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_probe_validation() {
        let ok = TcpProbe::try_from(pb::TcpRequest {
            destination: "172.16.10.11".into(),
            port: 7000,
            ..Default::default()
        })
        .expect("valid");
        assert_eq!((ok.timeout, ok.netns), (DEFAULT_PROBE_TIMEOUT, None));
        let bad = |r: pb::TcpRequest| TcpProbe::try_from(r).expect_err("bad").field;
        assert_eq!(
            bad(pb::TcpRequest {
                destination: "x".into(),
                port: 1,
                ..Default::default()
            }),
            "destination"
        );
        assert_eq!(
            bad(pb::TcpRequest {
                destination: "10.0.0.1".into(),
                port: 70000,
                ..Default::default()
            }),
            "port"
        );
        assert_eq!(
            bad(pb::TcpRequest {
                destination: "10.0.0.1".into(),
                port: 1,
                timeout_ms: 60_000,
                ..Default::default()
            }),
            "timeout_ms"
        );
    }
}
