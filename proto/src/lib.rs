//! The `linkherd.v1` protobuf API, the domain model shared by the agent and
//! `linkherdctl`, and the conversions between the two.
//!
//! Protobuf types stop at the service layer: handlers convert a request into
//! model types with `TryFrom` (which is where input is validated) and build
//! responses from model types with `From`. Nothing else in the project needs to
//! know about prost.

pub mod convert;
pub mod model;
mod status;

pub use status::{field_violations, validation_status};

/// Generated protobuf messages, enums, clients and servers.
pub mod pb {
    #![allow(missing_docs, clippy::all, missing_debug_implementations)]
    tonic::include_proto!("linkherd.v1");
}

/// The encoded `FileDescriptorSet` of every linkherd proto (with imports), for
/// gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/linkherd_descriptor.bin"));

/// The API version string reported by `HostService.GetInfo`.
pub const API_VERSION: &str = "linkherd.v1";
