//! gRPC services: thin adapters from generated tonic traits to the domain.
//! Each handler validates its request with `TryFrom` (linkherd-proto), calls
//! the kernel seam, converts the result, and maps errors through
//! [`crate::error::Error`].

mod host;
mod interface;
mod staged;

pub use host::HostSvc;
pub use interface::InterfaceSvc;
pub use staged::{MacvlanSvc, ProbeSvc, VlanSvc};
