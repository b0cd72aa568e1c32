//! A host as a whole: what it should have (a desired state) and what
//! linkherd owns on it.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{
    CatalogNetwork, EndpointSpec, EndpointState, HostAccessSpec, HostAccessState, IfName, ObjName,
    VlanSpec, VlanState,
};

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

/// What a host should have: VLANs, endpoints, host access.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub vlans: Vec<VlanSpec>,
    pub endpoints: Vec<EndpointSpec>,
    pub host_access: Vec<HostAccessSpec>,
    /// Networks spoken for even without endpoints or host access here.
    pub networks: Vec<ObjName>,
    /// VLANs that must not exist (deleted only if linkherd owns them).
    pub absent_vlans: Vec<IfName>,
    /// The networks this host offers to container runtimes, by name.
    pub catalog: Vec<CatalogNetwork>,
}

impl Desired {
    /// Every network this state is authoritative for on the host.
    pub fn scope(&self) -> BTreeSet<&str> {
        self.endpoints
            .iter()
            .map(|e| e.network.as_str())
            .chain(self.host_access.iter().map(|h| h.network.as_str()))
            .chain(self.networks.iter().map(ObjName::as_str))
            .chain(self.catalog.iter().map(|n| n.name.as_str()))
            .collect()
    }
}
