//! Conversions between protobuf messages and model types, one file per
//! `.proto` (`types.rs` for `types.proto`, and so on).
//!
//! `TryFrom<pb::…Request>` is where every request is validated; a handler that
//! holds the model value knows its input is well formed. `From<model::…>`
//! builds responses. The inverse conversions (`TryFrom<pb::Interface>`) serve
//! `linkherdctl`, which prints model types. Nothing here defines a domain
//! type: those live in [`crate::model`].

mod attachment;
mod host;
mod interface;
mod macvlan;
mod network;
mod probe;
mod types;
mod vlan;

pub use network::catalog_network;
pub use types::{DecodeError, netns_target, netns_to_pb};
