//! Connectivity probes from inside a namespace: ping, ARP / neighbour
//! solicitation, TCP — as asked for, validated.
use crate::model::{IfName, NetnsRef};
use std::net::SocketAddr;
use std::time::Duration;

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

/// A validated `ProbeService.Ping`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingProbe {
    pub netns: Option<NetnsRef>,
    pub interface: Option<IfName>,
    pub to: std::net::IpAddr,
    pub count: u32,
    pub interval: Duration,
    pub timeout: Duration,
    pub size: usize,
}

/// Most echo requests one Ping may send.
pub const MAX_PING_COUNT: u32 = 10_000;

/// Shortest interval for callers below admin (as iputils limits non-root).
pub const MIN_PING_INTERVAL: Duration = Duration::from_millis(10);

/// A validated `ProbeService.Arp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpProbe {
    pub netns: Option<NetnsRef>,
    pub interface: IfName,
    pub target: std::net::IpAddr,
    pub timeout: Duration,
    pub free_check: bool,
}
