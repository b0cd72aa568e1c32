//! Services whose methods land in later releases. Their RPCs already exist in
//! `linkherd.v1` so clients can be generated against the full API; until
//! implemented they answer UNIMPLEMENTED (the generated default methods).

use linkherd_proto::pb;

/// `linkherd.v1.ProbeService`.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProbeSvc;

impl pb::probe_service_server::ProbeService for ProbeSvc {}
