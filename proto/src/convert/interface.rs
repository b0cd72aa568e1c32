use ipnet::IpNet;

use crate::{
    model::{self, Counters, Interface, LinkDetails, MacAddr, PromiscLease},
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
