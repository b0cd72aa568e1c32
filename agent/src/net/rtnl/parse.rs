//! Netlink messages -> model types, and errno -> [`NetError`].

use std::net::IpAddr;

use ipnet::IpNet;
use linkherd_proto::model::{
    Counters, Interface, LinkDetails, LinkKind, MacAddr, MacvlanMode, OperState, VlanProtocol,
};
use rtnetlink::packet_route::{
    address::{AddressAttribute, AddressMessage},
    link::{
        InfoData, InfoMacVlan, InfoVlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
        MacVlanMode, State, VlanFlags,
    },
};

use crate::net::NetError;

/// IFF_* flags in the order and spelling `ip link` uses (plus RUNNING, which
/// the source document's `ifconfig` output shows).
const FLAG_NAMES: &[(LinkFlags, &str)] = &[
    (LinkFlags::Loopback, "LOOPBACK"),
    (LinkFlags::Broadcast, "BROADCAST"),
    (LinkFlags::Pointopoint, "POINTOPOINT"),
    (LinkFlags::Multicast, "MULTICAST"),
    (LinkFlags::Noarp, "NOARP"),
    (LinkFlags::Allmulti, "ALLMULTI"),
    (LinkFlags::Promisc, "PROMISC"),
    (LinkFlags::Notrailers, "NOTRAILERS"),
    (LinkFlags::Up, "UP"),
    (LinkFlags::LowerUp, "LOWER_UP"),
    (LinkFlags::Dormant, "DORMANT"),
    (LinkFlags::Running, "RUNNING"),
];

/// A link as the kernel sent it, before names of related links are resolved.
#[derive(Debug)]
pub(super) struct ParsedLink {
    pub iface: Interface,
    /// IFLA_MASTER index, 0 when none.
    pub master_index: u32,
    /// The lower device lives in another namespace (IFLA_LINK_NETNSID).
    pub parent_elsewhere: bool,
}

pub(super) fn link(msg: &LinkMessage) -> ParsedLink {
    let flags = msg.header.flags;
    let mut iface = Interface {
        admin_up: flags.contains(LinkFlags::Up),
        oper_state: OperState::Unknown,
        flags: FLAG_NAMES
            .iter()
            .filter(|(f, _)| flags.contains(*f))
            .map(|(_, n)| (*n).to_owned())
            .collect(),
        promiscuous: flags.contains(LinkFlags::Promisc),
        ..Interface::new(msg.header.index, String::new(), LinkKind::Device)
    };
    let mut master_index = 0;
    let mut parent_elsewhere = false;
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => iface.name.clone_from(n),
            LinkAttribute::Address(a) => {
                iface.mac = <[u8; 6]>::try_from(a.as_slice()).ok().map(MacAddr)
            }
            LinkAttribute::Mtu(m) => iface.mtu = *m,
            LinkAttribute::MinMtu(m) => iface.min_mtu = *m,
            LinkAttribute::MaxMtu(m) => iface.max_mtu = *m,
            LinkAttribute::Link(l) => iface.parent_index = *l,
            LinkAttribute::LinkNetNsId(_) => parent_elsewhere = true,
            LinkAttribute::Controller(m) => master_index = *m,
            LinkAttribute::Promiscuity(p) => iface.promiscuity = *p,
            LinkAttribute::Group(g) => iface.group = *g,
            LinkAttribute::IfAlias(a) if !a.is_empty() => iface.alias = Some(a.clone()),
            LinkAttribute::OperState(s) => iface.oper_state = oper_state(*s),
            LinkAttribute::Stats64(s) => {
                iface.counters = Counters {
                    rx_packets: s.rx_packets,
                    rx_bytes: s.rx_bytes,
                    rx_errors: s.rx_errors,
                    rx_dropped: s.rx_dropped,
                    rx_over_errors: s.rx_over_errors,
                    rx_frame_errors: s.rx_frame_errors,
                    multicast: s.multicast,
                    tx_packets: s.tx_packets,
                    tx_bytes: s.tx_bytes,
                    tx_errors: s.tx_errors,
                    tx_dropped: s.tx_dropped,
                    tx_carrier_errors: s.tx_carrier_errors,
                    collisions: s.collisions,
                }
            }
            LinkAttribute::LinkInfo(infos) => link_info(infos, &mut iface),
            _ => {}
        }
    }
    iface.kind = LinkKind::from_kind_name(&iface.kind_name, flags.contains(LinkFlags::Loopback));
    ParsedLink {
        iface,
        master_index,
        parent_elsewhere,
    }
}

fn link_info(infos: &[LinkInfo], iface: &mut Interface) {
    for info in infos {
        match info {
            LinkInfo::Kind(k) => iface.kind_name = k.to_string(),
            LinkInfo::Data(InfoData::MacVlan(attrs)) => {
                let mut mode = None;
                let mut source_macs = Vec::new();
                for a in attrs {
                    match a {
                        InfoMacVlan::Mode(m) => mode = macvlan_mode(*m),
                        InfoMacVlan::MacAddrData(list) => {
                            source_macs.extend(list.iter().filter_map(|m| match m {
                                InfoMacVlan::MacAddr(mac) => Some(MacAddr(*mac)),
                                _ => None,
                            }))
                        }
                        _ => {}
                    }
                }
                if let Some(mode) = mode {
                    iface.details = Some(LinkDetails::Macvlan { mode, source_macs });
                }
            }
            LinkInfo::Data(InfoData::Vlan(attrs)) => {
                let mut id = None;
                let mut protocol = VlanProtocol::Ieee8021Q;
                let mut reorder_header = false;
                for a in attrs {
                    match a {
                        InfoVlan::Id(i) => id = Some(*i),
                        InfoVlan::Protocol(p) => {
                            protocol = match p {
                                rtnetlink::packet_route::link::VlanProtocol::Ieee8021Ad => {
                                    VlanProtocol::Ieee8021Ad
                                }
                                _ => VlanProtocol::Ieee8021Q,
                            }
                        }
                        InfoVlan::Flags((flags, _mask)) => {
                            reorder_header = flags.contains(VlanFlags::ReorderHdr)
                        }
                        _ => {}
                    }
                }
                if let Some(id) = id {
                    iface.details = Some(LinkDetails::Vlan {
                        id,
                        protocol,
                        reorder_header,
                    });
                }
            }
            _ => {}
        }
    }
}

fn macvlan_mode(m: MacVlanMode) -> Option<MacvlanMode> {
    Some(match m {
        MacVlanMode::Private => MacvlanMode::Private,
        MacVlanMode::Vepa => MacvlanMode::Vepa,
        MacVlanMode::Bridge => MacvlanMode::Bridge,
        MacVlanMode::Passthrough => MacvlanMode::Passthru,
        MacVlanMode::Source => MacvlanMode::Source,
        _ => return None,
    })
}

fn oper_state(s: State) -> OperState {
    match s {
        State::NotPresent => OperState::NotPresent,
        State::Down => OperState::Down,
        State::LowerLayerDown => OperState::LowerLayerDown,
        State::Testing => OperState::Testing,
        State::Dormant => OperState::Dormant,
        State::Up => OperState::Up,
        _ => OperState::Unknown,
    }
}

/// `(link index, address/prefix)` of an address message.
pub(super) fn address(msg: &AddressMessage) -> Option<(u32, IpNet)> {
    // IFA_LOCAL is the interface's own address on point-to-point links, where
    // IFA_ADDRESS is the peer; prefer it when present.
    let mut addr: Option<IpAddr> = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(a) => addr = Some(*a),
            AddressAttribute::Address(a) if addr.is_none() => addr = Some(*a),
            _ => {}
        }
    }
    let net = IpNet::new(addr?, msg.header.prefix_len).ok()?;
    Some((msg.header.index, net))
}

/// Maps a netlink failure to the domain error, once, here.
pub(super) fn error(
    op: &'static str,
    what: impl FnOnce() -> String,
    e: rtnetlink::Error,
) -> NetError {
    let errno = match &e {
        rtnetlink::Error::NetlinkError(msg) => -msg.raw_code(),
        other => {
            return NetError::Io {
                op,
                detail: other.to_string(),
            };
        }
    };
    let detail = std::io::Error::from_raw_os_error(errno).to_string();
    match errno {
        libc::ENODEV | libc::ENOENT => NetError::NotFound { what: what() },
        libc::EEXIST => NetError::AlreadyExists { what: what() },
        libc::EOPNOTSUPP => NetError::Unsupported { op, detail },
        libc::EBUSY | libc::EADDRINUSE => NetError::Busy { op, detail },
        libc::EPERM | libc::EACCES => NetError::PermissionDenied { op },
        libc::EINVAL | libc::ERANGE => NetError::Invalid { op, detail },
        errno => NetError::Kernel { op, errno },
    }
}
