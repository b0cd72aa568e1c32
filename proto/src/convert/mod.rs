//! Conversions between protobuf messages and model types.
//!
//! `TryFrom<pb::…Request>` is where every request is validated; a handler that
//! holds the model value knows its input is well formed. `From<model::…>`
//! builds responses. The inverse conversions (`TryFrom<pb::Interface>`) serve
//! `linkherdctl`, which prints model types.

mod attach;
mod catalog;
mod desired;
mod enums;
mod interface;
mod lifecycle;
mod probe;
mod requests;

pub use attach::{
    AttachKeySpec, AttachSpec, MAX_ATTACH_ADDRESSES, MAX_CONTAINER_ID, MAX_GC_VALID,
    MAX_NETNS_PATH, parse_container_id,
};
pub use catalog::catalog_network;
pub use desired::Desired;
pub use interface::DecodeError;
pub use lifecycle::{DeleteEndpoints, EndpointSelector, netns_target, netns_to_pb};
pub use probe::{
    ArpProbe, DEFAULT_PROBE_TIMEOUT, MAX_PING_COUNT, MAX_PROBE_TIMEOUT, MIN_PING_INTERVAL,
    PingProbe, TcpProbe,
};
pub use requests::{InterfaceName, MAX_PROMISC_LEASE, SetMtu, SetPromiscuous, SetUp};
