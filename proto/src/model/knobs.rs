//! What may be changed on an interface: promiscuous mode (with an optional
//! lease), up or down, the MTU — as asked for, validated.
use crate::model::IfName;
use std::time::Duration;

/// Longest promiscuous-mode lease: a day. Longer than that is not
/// "troubleshooting", and a permanent change should say so (lease 0).
pub const MAX_PROMISC_LEASE: Duration = Duration::from_secs(24 * 3600);

/// A request that names one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceName(pub IfName);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetPromiscuous {
    pub name: IfName,
    pub enabled: bool,
    /// Revert after this long unless renewed; `None` is a permanent change.
    pub lease: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetUp {
    pub name: IfName,
    pub up: bool,
}

/// An MTU change. The device's own min/max is checked by the agent against
/// the live device, since only the kernel knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetMtu {
    pub name: IfName,
    pub mtu: u32,
}
