//! Domain types: what an interface is, what a valid name or MAC is, who may do
//! what, what a host should have, what a request asks for. Validation lives
//! in the constructors (and in the conversions from the wire), so a value of
//! one of these types is valid by construction. Nothing here knows prost.

mod attach;
pub mod bounds;
mod catalog;
mod endpoint;
mod error;
mod host;
mod ifname;
mod interface;
mod knobs;
mod mac;
mod names;
mod netns;
mod owner;
mod probe;
mod role;
mod subnet;
mod vlan;

pub use attach::{
    AttachKeySpec, AttachSpec, Attachment, MAX_ATTACH_ADDRESSES, MAX_CONTAINER_ID, MAX_GC_VALID,
    MAX_NETNS_PATH, parse_container_id,
};
pub use catalog::{CatalogNetwork, CatalogPool, Excluded, MAX_BLOCKS, MAX_EXCLUDED, MAX_WHY};
pub use endpoint::{
    DeleteEndpoints, EndpointSelector, EndpointSpec, EndpointState, HostAccessSpec,
    HostAccessState, MIN_MTU, check_gateway, check_host_address, default_host_access_name,
};
pub use error::ValidationError;
pub use host::{Desired, OwnedObjects};
pub use ifname::{IfName, MAX_IFNAME_LEN};
pub use interface::{
    Counters, Interface, LinkDetails, LinkKind, MacvlanMode, OperState, PromiscLease, VlanProtocol,
};
pub use knobs::{InterfaceName, MAX_PROMISC_LEASE, SetMtu, SetPromiscuous, SetUp};
pub use mac::MacAddr;
pub use names::ObjName;
pub use netns::NetnsRef;
pub use owner::{Mark, OWNER_PREFIX, Owner};
pub use probe::{
    ArpProbe, DEFAULT_PROBE_TIMEOUT, MAX_PING_COUNT, MAX_PROBE_TIMEOUT, MIN_PING_INTERVAL,
    PingProbe, TcpProbe,
};
pub use role::{ROLE_URI_PREFIX, Role, UnknownRole};
pub use subnet::{is_subnet_special, subnet_specials};
pub use vlan::{VlanId, VlanSpec, VlanState, default_vlan_name, split_vlan_name};

/// A realistic interface for tests in this crate and its dependents.
#[doc(hidden)]
pub fn interface_sample() -> Interface {
    Interface {
        mac: Some(MacAddr([0x00, 0x50, 0x56, 0xb0, 0x80, 0xc6])),
        mtu: 1500,
        min_mtu: 68,
        max_mtu: 9000,
        admin_up: true,
        oper_state: OperState::Up,
        flags: vec!["BROADCAST".into(), "MULTICAST".into(), "UP".into()],
        addresses: vec![ipnet::IpNet::V4(ipnet::Ipv4Net::new_assert(
            std::net::Ipv4Addr::new(172, 25, 22, 109),
            22,
        ))],
        ..Interface::new(2, "ens192", LinkKind::Device)
    }
}
