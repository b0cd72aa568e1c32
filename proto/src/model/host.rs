//! A host as a whole: what linkherd owns on it.

use serde::Serialize;

use super::{CatalogNetwork, EndpointState, HostAccessState, VlanState};

/// Everything linkherd owns on a host, as observed: its VLANs, endpoints,
/// host access and catalog networks, each list in a stable order (by name;
/// endpoints by network, then name) so that equal states compare and
/// serialise equal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OwnedObjects {
    pub vlans: Vec<VlanState>,
    pub endpoints: Vec<EndpointState>,
    pub host_access: Vec<HostAccessState>,
    pub catalog: Vec<CatalogNetwork>,
}
