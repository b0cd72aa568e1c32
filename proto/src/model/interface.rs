use ipnet::IpNet;
use serde::Serialize;

use super::MacAddr;

/// Link type as the kernel reports it (IFLA_INFO_KIND, or the device type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    /// No IFLA_INFO_KIND: usually a physical NIC.
    Device,
    Loopback,
    Veth,
    Bridge,
    Macvlan,
    Macvtap,
    Vlan,
    Vxlan,
    Bond,
    Tun,
    Ipvlan,
    Dummy,
    Other,
}

impl LinkKind {
    /// Maps a raw IFLA_INFO_KIND string; `loopback` says whether IFF_LOOPBACK
    /// is set (the loopback device has no kind of its own).
    pub fn from_kind_name(kind: &str, loopback: bool) -> Self {
        match kind {
            "" if loopback => LinkKind::Loopback,
            "" => LinkKind::Device,
            "veth" => LinkKind::Veth,
            "bridge" => LinkKind::Bridge,
            "macvlan" => LinkKind::Macvlan,
            "macvtap" => LinkKind::Macvtap,
            "vlan" => LinkKind::Vlan,
            "vxlan" => LinkKind::Vxlan,
            "bond" => LinkKind::Bond,
            "tun" => LinkKind::Tun,
            "ipvlan" => LinkKind::Ipvlan,
            "dummy" => LinkKind::Dummy,
            _ => LinkKind::Other,
        }
    }
}

/// RFC 2863 operational state (IFLA_OPERSTATE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperState {
    Unknown,
    NotPresent,
    Down,
    LowerLayerDown,
    Testing,
    Dormant,
    Up,
}

impl OperState {
    pub fn as_str(self) -> &'static str {
        match self {
            OperState::Unknown => "UNKNOWN",
            OperState::NotPresent => "NOTPRESENT",
            OperState::Down => "DOWN",
            OperState::LowerLayerDown => "LOWERLAYERDOWN",
            OperState::Testing => "TESTING",
            OperState::Dormant => "DORMANT",
            OperState::Up => "UP",
        }
    }
}

/// Macvlan mode. There is deliberately no default: the kernel's own default
/// when none is sent is VEPA, which surprises almost everyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MacvlanMode {
    Private,
    Vepa,
    Bridge,
    Passthru,
    Source,
}

impl MacvlanMode {
    pub const ALL: [MacvlanMode; 5] = [
        MacvlanMode::Private,
        MacvlanMode::Vepa,
        MacvlanMode::Bridge,
        MacvlanMode::Passthru,
        MacvlanMode::Source,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MacvlanMode::Private => "private",
            MacvlanMode::Vepa => "vepa",
            MacvlanMode::Bridge => "bridge",
            MacvlanMode::Passthru => "passthru",
            MacvlanMode::Source => "source",
        }
    }
}

/// VLAN tag protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub enum VlanProtocol {
    #[serde(rename = "802.1Q")]
    Ieee8021Q,
    #[serde(rename = "802.1ad")]
    Ieee8021Ad,
}

impl VlanProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            VlanProtocol::Ieee8021Q => "802.1Q",
            VlanProtocol::Ieee8021Ad => "802.1ad",
        }
    }
}

/// Kind-specific details that `ip -d link` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "type")]
pub enum LinkDetails {
    Macvlan {
        mode: MacvlanMode,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        source_macs: Vec<MacAddr>,
    },
    Vlan {
        id: u16,
        protocol: VlanProtocol,
        reorder_header: bool,
    },
}

/// 64-bit interface counters (IFLA_STATS64): what `ip -s link` and the
/// source document's `ifconfig` output show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub rx_over_errors: u64,
    pub rx_frame_errors: u64,
    pub multicast: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
    pub tx_carrier_errors: u64,
    pub collisions: u64,
}

/// A promiscuous-mode lease the agent will revert by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PromiscLease {
    pub remaining_seconds: u32,
    pub revert_to: bool,
}

/// One network interface as observed in the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Interface {
    pub index: u32,
    pub name: String,
    pub kind: LinkKind,
    /// Raw IFLA_INFO_KIND; empty for physical devices and loopback.
    pub kind_name: String,
    /// Lower device index (IFLA_LINK), 0 when none.
    pub parent_index: u32,
    /// Lower device name, when it lives in the same namespace.
    pub parent: Option<String>,
    pub mac: Option<MacAddr>,
    pub mtu: u32,
    pub min_mtu: u32,
    pub max_mtu: u32,
    /// IFF_UP: the administrative state.
    pub admin_up: bool,
    pub oper_state: OperState,
    /// IFF_* flag names in `ip link` spelling (UP, BROADCAST, PROMISC, ...).
    pub flags: Vec<String>,
    /// IFF_PROMISC as requested by user space.
    pub promiscuous: bool,
    /// The kernel's promiscuity counter; >0 means frames for other MACs are
    /// really accepted, whoever asked for it (a bridge, a sniffer, us).
    pub promiscuity: u32,
    pub addresses: Vec<IpNet>,
    pub counters: Counters,
    /// IFLA_IFALIAS; linkherd marks the links it owns here.
    pub alias: Option<String>,
    pub group: u32,
    /// Bridge or bond this link is a port of.
    pub master: Option<String>,
    pub details: Option<LinkDetails>,
    pub promisc_lease: Option<PromiscLease>,
}

impl Interface {
    /// An interface with only its identity set: down, no addresses, no
    /// counters. Readers of the kernel fill in the rest.
    pub fn new(index: u32, name: impl Into<String>, kind: LinkKind) -> Self {
        Self {
            index,
            name: name.into(),
            kind,
            kind_name: String::new(),
            parent_index: 0,
            parent: None,
            mac: None,
            mtu: 0,
            min_mtu: 0,
            max_mtu: 0,
            admin_up: false,
            oper_state: OperState::Down,
            flags: Vec::new(),
            promiscuous: false,
            promiscuity: 0,
            addresses: Vec::new(),
            counters: Counters::default(),
            alias: None,
            group: 0,
            master: None,
            details: None,
            promisc_lease: None,
        }
    }

    /// Names of the fields that differ between two observations of the same
    /// link, leaving out counters: they change with every frame and the
    /// kernel does not announce them, so reporting them would be noise.
    pub fn changed_fields(&self, newer: &Interface) -> Vec<&'static str> {
        let mut out = Vec::new();
        macro_rules! cmp {
            ($($field:ident),*) => {$(
                if self.$field != newer.$field {
                    out.push(stringify!($field));
                }
            )*};
        }
        cmp!(
            name,
            kind,
            kind_name,
            parent_index,
            parent,
            mac,
            mtu,
            min_mtu,
            max_mtu,
            admin_up,
            oper_state,
            flags,
            promiscuous,
            promiscuity,
            addresses,
            alias,
            group,
            master,
            details,
            promisc_lease
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_fields_ignores_counters_and_names_the_rest() {
        let a = crate::model::interface_sample();
        let mut b = a.clone();
        b.counters.rx_packets = 99;
        assert!(a.changed_fields(&b).is_empty());
        b.promiscuous = true;
        b.promiscuity = 1;
        b.addresses.clear();
        assert_eq!(
            a.changed_fields(&b),
            ["promiscuous", "promiscuity", "addresses"]
        );
    }

    #[test]
    fn kind_from_name() {
        assert_eq!(LinkKind::from_kind_name("", true), LinkKind::Loopback);
        assert_eq!(LinkKind::from_kind_name("", false), LinkKind::Device);
        assert_eq!(
            LinkKind::from_kind_name("macvlan", false),
            LinkKind::Macvlan
        );
        assert_eq!(
            LinkKind::from_kind_name("wireguard", false),
            LinkKind::Other
        );
    }
}
