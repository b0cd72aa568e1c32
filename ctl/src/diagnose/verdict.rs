//! What a diagnosis concludes, and the layers it checks.

use std::{fmt, net::IpAddr};

use ipnet::IpNet;
use serde::Serialize;

/// A layer of the path between two endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    Endpoint,
    Address,
    Network,
    Parent,
    Arp,
    Icmp,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Endpoint => "endpoint",
            Layer::Address => "address",
            Layer::Network => "network",
            Layer::Parent => "parent",
            Layer::Arp => "arp",
            Layer::Icmp => "icmp",
        }
    }
}

/// The conclusion: it works, or the first layer that explains why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    EndpointDown {
        endpoint: String,
        ifname: String,
    },
    NoAddress {
        endpoint: String,
    },
    NoAddressOfFamily {
        endpoint: String,
        dst: IpAddr,
    },
    DifferentNetworks {
        dst: IpAddr,
        subnet: IpNet,
    },
    ParentDown {
        link: String,
        host: String,
    },
    /// `arrived`: the target's counters saw the request.
    ArpUnanswered {
        dst: IpAddr,
        arrived: bool,
    },
    /// The agent's own words about the duplicate answers.
    Duplicate(String),
    IcmpLost {
        dst: IpAddr,
    },
}

impl Verdict {
    pub fn is_ok(&self) -> bool {
        *self == Verdict::Ok
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Ok => f.write_str("ok"),
            Verdict::EndpointDown { endpoint, ifname } => {
                write!(f, "endpoint {endpoint} is down: bring {ifname} up")
            }
            Verdict::NoAddress { endpoint } => write!(f, "endpoint {endpoint} has no address"),
            Verdict::NoAddressOfFamily { endpoint, dst } => {
                write!(f, "endpoint {endpoint} has no address of {dst}'s family")
            }
            Verdict::DifferentNetworks { dst, subnet } => write!(
                f,
                "the endpoints are on different networks: {dst} is not in {subnet}; they need a router between them, or the same network"
            ),
            Verdict::ParentDown { link, host } => {
                write!(f, "{link} on {host} is down: bring it up")
            }
            Verdict::ArpUnanswered { dst, arrived: true } => write!(
                f,
                "ARP for {dst} is unanswered: the request arrived but nothing answered: check the target's address and mode"
            ),
            Verdict::ArpUnanswered {
                dst,
                arrived: false,
            } => write!(
                f,
                "ARP for {dst} is unanswered: the frames leave but never arrive: the switch or hypervisor drops frames from unknown MACs (enable promiscuous mode / \"forged transmits\" on the port), or the VLAN is not trunked to both hosts"
            ),
            Verdict::Duplicate(words) => f.write_str(words),
            Verdict::IcmpLost { dst } => write!(
                f,
                "ARP is answered but ICMP to {dst} is lost: something filters it (firewall in the namespace or on the path)"
            ),
        }
    }
}

/// Reports carry the verdict as its sentence.
pub(super) fn as_text<S: serde::Serializer>(v: &Verdict, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}
