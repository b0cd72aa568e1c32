//! `probe.proto`: the probe requests, validated.

use std::{net::SocketAddr, time::Duration};

use super::types::netns_target;
use crate::{
    model::{
        ArpProbe, DEFAULT_PROBE_TIMEOUT, IfName, MAX_PING_COUNT, MAX_PROBE_TIMEOUT, PingProbe,
        TcpProbe, ValidationError,
    },
    pb,
};

fn destination(field: &str, s: &str) -> Result<std::net::IpAddr, ValidationError> {
    s.parse::<std::net::IpAddr>().map_err(|_| {
        ValidationError::new(field, s, "is not an IP address", "give e.g. 172.16.10.11")
    })
}

fn interface(s: &str) -> Result<Option<IfName>, ValidationError> {
    match s {
        "" => Ok(None),
        i => IfName::parse("interface", i).map(Some),
    }
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
        let ip = destination("destination", &r.destination)?;
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
            interface: interface(&r.interface)?,
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

impl TryFrom<pb::PingRequest> for PingProbe {
    type Error = ValidationError;
    fn try_from(r: pb::PingRequest) -> Result<Self, Self::Error> {
        let to = destination("destination", &r.destination)?;
        let count = match r.count {
            0 => 3,
            c if c > MAX_PING_COUNT => {
                return Err(ValidationError::new(
                    "count",
                    c.to_string(),
                    format!("is more than {MAX_PING_COUNT} echo requests"),
                    "use a smaller count",
                ));
            }
            c => c,
        };
        let interval = match r.interval_ms {
            0 => Duration::from_secs(1),
            ms if ms > 60_000 => {
                return Err(ValidationError::new(
                    "interval_ms",
                    ms.to_string(),
                    "is longer than a minute",
                    "use at most 60000",
                ));
            }
            ms => Duration::from_millis(ms.into()),
        };
        let size = match r.payload_size {
            0 => 56,
            s if s > 65_000 => {
                return Err(ValidationError::new(
                    "payload_size",
                    s.to_string(),
                    "is larger than an IP packet allows",
                    "use at most 65000 bytes",
                ));
            }
            s => s as usize,
        };
        Ok(Self {
            netns: netns_target("source", r.source)?,
            interface: interface(&r.interface)?,
            to,
            count,
            interval,
            timeout: match r.timeout_ms {
                0 => Duration::from_secs(1),
                ms => timeout(ms)?,
            },
            size,
        })
    }
}

impl TryFrom<pb::ArpRequest> for ArpProbe {
    type Error = ValidationError;
    fn try_from(r: pb::ArpRequest) -> Result<Self, Self::Error> {
        let target = destination("address", &r.address)?;
        if r.free_check && target.is_ipv6() {
            return Err(ValidationError::new(
                "free_check",
                "true",
                "the free-address probe is IPv4's (RFC 5227)",
                "ask who has the IPv6 address instead (free_check off)",
            ));
        }
        Ok(Self {
            netns: netns_target("source", r.source)?,
            interface: IfName::parse(
                "interface",
                if r.interface.is_empty() {
                    "eth0"
                } else {
                    &r.interface
                },
            )?,
            target,
            timeout: match r.timeout_ms {
                0 => Duration::from_secs(1),
                ms => timeout(ms)?,
            },
            free_check: r.free_check,
        })
    }
}

#[cfg(test)]
mod more_tests {
    use super::*;

    #[test]
    fn ping_bounds() {
        let ok = PingProbe::try_from(pb::PingRequest {
            destination: "fd00::1".into(),
            ..Default::default()
        })
        .expect("ok");
        assert_eq!(
            (ok.count, ok.interval, ok.size),
            (3, Duration::from_secs(1), 56)
        );
        let bad = |r: pb::PingRequest| PingProbe::try_from(r).expect_err("bad").field;
        assert_eq!(
            bad(pb::PingRequest {
                destination: "1.2.3.4".into(),
                count: 10_001,
                ..Default::default()
            }),
            "count"
        );
        assert_eq!(
            bad(pb::PingRequest {
                destination: "nope".into(),
                ..Default::default()
            }),
            "destination"
        );
        assert_eq!(
            bad(pb::PingRequest {
                destination: "1.2.3.4".into(),
                timeout_ms: 31_000,
                ..Default::default()
            }),
            "timeout_ms"
        );
    }

    #[test]
    fn arp_free_check_is_ipv4_only() {
        let err = ArpProbe::try_from(pb::ArpRequest {
            address: "fd00::1".into(),
            free_check: true,
            ..Default::default()
        })
        .expect_err("v6 free");
        assert_eq!(err.field, "free_check");
        let ok = ArpProbe::try_from(pb::ArpRequest {
            address: "10.0.0.1".into(),
            ..Default::default()
        })
        .expect("ok");
        assert_eq!(ok.interface.as_str(), "eth0");
    }
}
