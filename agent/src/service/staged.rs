//! Services whose methods land in later releases. Their RPCs already exist in
//! `linkherd.v1` so clients can be generated against the full API; until
//! implemented they answer UNIMPLEMENTED (the generated default methods).

use linkherd_proto::pb;

/// `linkherd.v1.VlanService`.
#[derive(Debug, Default, Clone, Copy)]
pub struct VlanSvc;

/// `linkherd.v1.MacvlanService`.
#[derive(Debug, Default, Clone, Copy)]
pub struct MacvlanSvc;

/// `linkherd.v1.ProbeService`.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProbeSvc;

impl pb::vlan_service_server::VlanService for VlanSvc {}
impl pb::macvlan_service_server::MacvlanService for MacvlanSvc {}
impl pb::probe_service_server::ProbeService for ProbeSvc {}
