//! `types.proto`: the shared messages and enums (interfaces, counters,
//! namespaces, modes), both ways, and parsing the requests of several
//! services share.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::{
    model::{
        self, Counters, Interface, LinkDetails, MIN_MTU, MacAddr, NetnsRef, PromiscLease,
        ValidationError,
    },
    pb,
};

/// A message from an agent that does not decode into the model (a newer or
/// broken agent). Clients report it instead of printing garbage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("agent sent an invalid {field}: {value:?}")]
pub struct DecodeError {
    pub field: &'static str,
    /// The value, cut to [`crate::model::bounds::MAX_ECHO`] bytes like
    /// every echoed value.
    pub value: String,
}

impl From<Counters> for pb::Counters {
    fn from(c: Counters) -> Self {
        Self {
            rx_packets: c.rx_packets,
            rx_bytes: c.rx_bytes,
            rx_errors: c.rx_errors,
            rx_dropped: c.rx_dropped,
            rx_over_errors: c.rx_over_errors,
            rx_frame_errors: c.rx_frame_errors,
            multicast: c.multicast,
            tx_packets: c.tx_packets,
            tx_bytes: c.tx_bytes,
            tx_errors: c.tx_errors,
            tx_dropped: c.tx_dropped,
            tx_carrier_errors: c.tx_carrier_errors,
            collisions: c.collisions,
        }
    }
}

impl From<pb::Counters> for Counters {
    fn from(c: pb::Counters) -> Self {
        Self {
            rx_packets: c.rx_packets,
            rx_bytes: c.rx_bytes,
            rx_errors: c.rx_errors,
            rx_dropped: c.rx_dropped,
            rx_over_errors: c.rx_over_errors,
            rx_frame_errors: c.rx_frame_errors,
            multicast: c.multicast,
            tx_packets: c.tx_packets,
            tx_bytes: c.tx_bytes,
            tx_errors: c.tx_errors,
            tx_dropped: c.tx_dropped,
            tx_carrier_errors: c.tx_carrier_errors,
            collisions: c.collisions,
        }
    }
}

impl From<Interface> for pb::Interface {
    fn from(i: Interface) -> Self {
        let details = i.details.map(|d| match d {
            LinkDetails::Macvlan { mode, source_macs } => {
                pb::interface::Details::Macvlan(pb::MacvlanInfo {
                    mode: pb::MacvlanMode::from(mode).into(),
                    source_macs: source_macs.iter().map(ToString::to_string).collect(),
                })
            }
            LinkDetails::Vlan {
                id,
                protocol,
                reorder_header,
            } => pb::interface::Details::Vlan(pb::VlanInfo {
                id: id.into(),
                protocol: pb::VlanProtocol::from(protocol).into(),
                reorder_header,
            }),
        });
        Self {
            index: i.index,
            name: i.name,
            kind: pb::LinkKind::from(i.kind).into(),
            kind_name: i.kind_name,
            parent_index: i.parent_index,
            parent: i.parent.unwrap_or_default(),
            mac: i.mac.map(|m| m.to_string()).unwrap_or_default(),
            mtu: i.mtu,
            min_mtu: i.min_mtu,
            max_mtu: i.max_mtu,
            admin_state: if i.admin_up {
                pb::AdminState::Up
            } else {
                pb::AdminState::Down
            }
            .into(),
            oper_state: pb::OperState::from(i.oper_state).into(),
            flags: i.flags,
            promiscuous: i.promiscuous,
            promiscuity: i.promiscuity,
            addresses: i
                .addresses
                .iter()
                .map(|a| pb::IpAddress {
                    cidr: a.to_string(),
                })
                .collect(),
            counters: Some(i.counters.into()),
            alias: i.alias.unwrap_or_default(),
            group: i.group,
            details,
            promisc_lease: i.promisc_lease.map(|l| pb::PromiscLease {
                remaining_seconds: l.remaining_seconds,
                revert_to: l.revert_to,
            }),
            master: i.master.unwrap_or_default(),
        }
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn mac(field: &'static str, s: &str) -> Result<MacAddr, DecodeError> {
    MacAddr::parse(field, s).map_err(|_| DecodeError {
        field,
        value: crate::model::bounds::echo(s),
    })
}

impl TryFrom<pb::Interface> for Interface {
    type Error = DecodeError;

    fn try_from(i: pb::Interface) -> Result<Self, Self::Error> {
        let addresses = i
            .addresses
            .iter()
            .map(|a| {
                a.cidr.parse::<IpNet>().map_err(|_| DecodeError {
                    field: "interface.addresses",
                    value: crate::model::bounds::echo(&a.cidr),
                })
            })
            .collect::<Result<_, _>>()?;
        let kind = i.kind().into();
        let oper_state = i.oper_state().into();
        let admin_up = i.admin_state() == pb::AdminState::Up;
        let details = match i.details {
            None => None,
            Some(pb::interface::Details::Macvlan(m)) => Some(LinkDetails::Macvlan {
                mode: model::MacvlanMode::try_from(m.mode()).map_err(|_| DecodeError {
                    field: "interface.macvlan.mode",
                    value: m.mode.to_string(),
                })?,
                source_macs: m
                    .source_macs
                    .iter()
                    .map(|s| mac("interface.macvlan.source_macs", s))
                    .collect::<Result<_, _>>()?,
            }),
            Some(pb::interface::Details::Vlan(v)) => Some(LinkDetails::Vlan {
                id: u16::try_from(v.id).map_err(|_| DecodeError {
                    field: "interface.vlan.id",
                    value: v.id.to_string(),
                })?,
                protocol: v.protocol().into(),
                reorder_header: v.reorder_header,
            }),
        };
        Ok(Self {
            index: i.index,
            kind,
            oper_state,
            admin_up,
            name: i.name,
            kind_name: i.kind_name,
            parent_index: i.parent_index,
            parent: non_empty(i.parent),
            mac: if i.mac.is_empty() {
                None
            } else {
                Some(mac("interface.mac", &i.mac)?)
            },
            mtu: i.mtu,
            min_mtu: i.min_mtu,
            max_mtu: i.max_mtu,
            flags: i.flags,
            promiscuous: i.promiscuous,
            promiscuity: i.promiscuity,
            addresses,
            counters: i.counters.map(Into::into).unwrap_or_default(),
            alias: non_empty(i.alias),
            group: i.group,
            master: non_empty(i.master),
            details,
            promisc_lease: i.promisc_lease.map(|l| PromiscLease {
                remaining_seconds: l.remaining_seconds,
                revert_to: l.revert_to,
            }),
        })
    }
}

// Enums.

impl From<model::LinkKind> for pb::LinkKind {
    fn from(k: model::LinkKind) -> Self {
        use model::LinkKind as M;
        match k {
            M::Device => Self::Device,
            M::Loopback => Self::Loopback,
            M::Veth => Self::Veth,
            M::Bridge => Self::Bridge,
            M::Macvlan => Self::Macvlan,
            M::Macvtap => Self::Macvtap,
            M::Vlan => Self::Vlan,
            M::Vxlan => Self::Vxlan,
            M::Bond => Self::Bond,
            M::Tun => Self::Tun,
            M::Ipvlan => Self::Ipvlan,
            M::Dummy => Self::Dummy,
            M::Other => Self::Other,
        }
    }
}

impl From<pb::LinkKind> for model::LinkKind {
    fn from(k: pb::LinkKind) -> Self {
        use pb::LinkKind as P;
        match k {
            P::Device => Self::Device,
            P::Loopback => Self::Loopback,
            P::Veth => Self::Veth,
            P::Bridge => Self::Bridge,
            P::Macvlan => Self::Macvlan,
            P::Macvtap => Self::Macvtap,
            P::Vlan => Self::Vlan,
            P::Vxlan => Self::Vxlan,
            P::Bond => Self::Bond,
            P::Tun => Self::Tun,
            P::Ipvlan => Self::Ipvlan,
            P::Dummy => Self::Dummy,
            P::Other | P::Unspecified => Self::Other,
        }
    }
}

impl From<model::OperState> for pb::OperState {
    fn from(s: model::OperState) -> Self {
        use model::OperState as M;
        match s {
            M::Unknown => Self::Unknown,
            M::NotPresent => Self::NotPresent,
            M::Down => Self::Down,
            M::LowerLayerDown => Self::LowerLayerDown,
            M::Testing => Self::Testing,
            M::Dormant => Self::Dormant,
            M::Up => Self::Up,
        }
    }
}

impl From<pb::OperState> for model::OperState {
    fn from(s: pb::OperState) -> Self {
        use pb::OperState as P;
        match s {
            P::Unknown | P::Unspecified => Self::Unknown,
            P::NotPresent => Self::NotPresent,
            P::Down => Self::Down,
            P::LowerLayerDown => Self::LowerLayerDown,
            P::Testing => Self::Testing,
            P::Dormant => Self::Dormant,
            P::Up => Self::Up,
        }
    }
}

impl From<model::MacvlanMode> for pb::MacvlanMode {
    fn from(m: model::MacvlanMode) -> Self {
        use model::MacvlanMode as M;
        match m {
            M::Private => Self::Private,
            M::Vepa => Self::Vepa,
            M::Bridge => Self::Bridge,
            M::Passthru => Self::Passthru,
            M::Source => Self::Source,
        }
    }
}

impl TryFrom<pb::MacvlanMode> for model::MacvlanMode {
    type Error = model::ValidationError;
    fn try_from(m: pb::MacvlanMode) -> Result<Self, Self::Error> {
        use pb::MacvlanMode as P;
        Ok(match m {
            P::Private => Self::Private,
            P::Vepa => Self::Vepa,
            P::Bridge => Self::Bridge,
            P::Passthru => Self::Passthru,
            P::Source => Self::Source,
            P::Unspecified => {
                return Err(model::ValidationError::new(
                    "mode",
                    "unspecified",
                    "a macvlan mode is required (the kernel would silently pick vepa)",
                    "choose bridge, vepa, private, passthru or source",
                ));
            }
        })
    }
}

impl From<model::VlanProtocol> for pb::VlanProtocol {
    fn from(p: model::VlanProtocol) -> Self {
        match p {
            model::VlanProtocol::Ieee8021Q => Self::VlanProtocol8021q,
            model::VlanProtocol::Ieee8021Ad => Self::VlanProtocol8021ad,
        }
    }
}

impl From<pb::VlanProtocol> for model::VlanProtocol {
    /// Unspecified means the default, 802.1Q.
    fn from(p: pb::VlanProtocol) -> Self {
        match p {
            pb::VlanProtocol::VlanProtocol8021ad => Self::Ieee8021Ad,
            pb::VlanProtocol::VlanProtocol8021q | pb::VlanProtocol::Unspecified => Self::Ieee8021Q,
        }
    }
}

impl From<model::Role> for pb::Role {
    fn from(r: model::Role) -> Self {
        match r {
            model::Role::Viewer => Self::Viewer,
            model::Role::Operator => Self::Operator,
            model::Role::Admin => Self::Admin,
        }
    }
}

impl From<pb::Role> for Option<model::Role> {
    fn from(r: pb::Role) -> Self {
        match r {
            pb::Role::Viewer => Some(model::Role::Viewer),
            pb::Role::Operator => Some(model::Role::Operator),
            pb::Role::Admin => Some(model::Role::Admin),
            pb::Role::Unspecified => None,
        }
    }
}

// Parsing shared by the requests of several services.

pub(super) fn parse_cidr(field: &str, s: &str) -> Result<IpNet, ValidationError> {
    s.parse::<IpNet>().map_err(|_| {
        ValidationError::new(
            field,
            s,
            "is not an address with prefix length",
            "write it as ADDRESS/PREFIX, e.g. 172.16.10.10/24 or fd00:10::10/64",
        )
    })
}

pub(super) fn parse_ip(field: &str, s: &str) -> Result<IpAddr, ValidationError> {
    s.parse::<IpAddr>().map_err(|_| {
        ValidationError::new(
            field,
            s,
            "is not an IP address",
            "write e.g. 172.16.10.1 (no prefix length)",
        )
    })
}

pub(super) fn parse_mac(field: &str, s: &str) -> Result<MacAddr, ValidationError> {
    let mac = MacAddr::parse(field, s)?;
    if mac.is_multicast() {
        return Err(ValidationError::new(
            field,
            s,
            "is a multicast address (the first byte is odd)",
            "use a unicast MAC, e.g. 02:42:ac:10:0a:0a",
        ));
    }
    if mac.is_zero() {
        return Err(ValidationError::new(
            field,
            s,
            "is the all-zero MAC",
            "use a real unicast MAC",
        ));
    }
    Ok(mac)
}

pub(super) fn mtu(field: &str, v: u32) -> Result<Option<u32>, ValidationError> {
    match v {
        0 => Ok(None),
        m if m < MIN_MTU => Err(ValidationError::new(
            field,
            m.to_string(),
            format!("is below the minimum MTU {MIN_MTU}"),
            "give at least 68, or 0 for the parent's MTU",
        )),
        m => Ok(Some(m)),
    }
}

/// The target namespace of a request; `None` when not given.
pub fn netns_target(
    field: &str,
    t: Option<pb::NetnsTarget>,
) -> Result<Option<NetnsRef>, ValidationError> {
    use pb::netns_target::Target;
    match t.and_then(|t| t.target) {
        None => Ok(None),
        Some(Target::Name(n)) => NetnsRef::named(&format!("{field}.name"), &n).map(Some),
        Some(Target::Path(p)) => NetnsRef::path(&format!("{field}.path"), &p).map(Some),
        Some(Target::Pid(p)) => NetnsRef::pid(&format!("{field}.pid"), p).map(Some),
    }
}

pub fn netns_to_pb(n: &NetnsRef) -> pb::NetnsTarget {
    use pb::netns_target::Target;
    pb::NetnsTarget {
        target: Some(match n {
            NetnsRef::Named(s) => Target::Name(s.clone()),
            NetnsRef::Path(p) => Target::Path(p.to_string_lossy().into_owned()),
            NetnsRef::Pid(p) => Target::Pid(*p),
        }),
    }
}

pub(super) fn decode<T>(
    field: &'static str,
    v: &str,
    f: impl FnOnce(&str) -> Option<T>,
) -> Result<T, DecodeError> {
    f(v).ok_or_else(|| DecodeError {
        field,
        value: crate::model::bounds::echo(v),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MacvlanMode, VlanProtocol};

    #[test]
    fn interface_round_trips_through_the_wire_type() {
        let mut iface = crate::model::interface_sample();
        iface.details = Some(LinkDetails::Vlan {
            id: 10,
            protocol: VlanProtocol::Ieee8021Q,
            reorder_header: true,
        });
        iface.counters.rx_bytes = 18_440_080_984;
        iface.promisc_lease = Some(PromiscLease {
            remaining_seconds: 30,
            revert_to: false,
        });
        let wire = pb::Interface::from(iface.clone());
        assert_eq!(wire.mac, "00:50:56:b0:80:c6");
        assert_eq!(wire.addresses[0].cidr, "172.25.22.109/22");
        assert_eq!(Interface::try_from(wire), Ok(iface.clone()));

        iface.details = Some(LinkDetails::Macvlan {
            mode: MacvlanMode::Source,
            source_macs: vec![MacAddr([2, 0, 0, 0, 0, 1])],
        });
        assert_eq!(
            Interface::try_from(pb::Interface::from(iface.clone())),
            Ok(iface)
        );
    }

    #[test]
    fn garbage_from_an_agent_is_a_decode_error() {
        let mut wire = pb::Interface::from(crate::model::interface_sample());
        wire.addresses.push(pb::IpAddress {
            cidr: "10.0.0.300/8".into(),
        });
        assert_eq!(
            Interface::try_from(wire).map_err(|e| e.to_string()),
            Err("agent sent an invalid interface.addresses: \"10.0.0.300/8\"".into())
        );
    }
}
