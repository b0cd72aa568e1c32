//! `linkherd.v1.HostService`.

use std::sync::Arc;

use linkherd_proto::{API_VERSION, pb};
use tonic::{Request, Response, Status};

use crate::{auth::Identity, context::Context};

#[derive(Debug, Clone)]
pub struct HostSvc {
    ctx: Arc<Context>,
}

impl HostSvc {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }
}

fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[tonic::async_trait]
impl pb::host_service_server::HostService for HostSvc {
    #[tracing::instrument(skip_all, fields(rpc = "HostService/GetInfo"))]
    async fn get_info(
        &self,
        req: Request<pb::GetInfoRequest>,
    ) -> Result<Response<pb::GetInfoResponse>, Status> {
        let who = Identity::of(&req);
        let caps = self.ctx.capabilities().await;
        Ok(Response::new(pb::GetInfoResponse {
            hostname: self.ctx.host_name.clone(),
            kernel_release: kernel_release(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            api_version: API_VERSION.to_owned(),
            capabilities: Some(pb::Capabilities {
                vlan: caps.vlan,
                macvlan: caps.macvlan,
                macvlan_modes: caps
                    .macvlan_modes
                    .iter()
                    .map(|m| pb::MacvlanMode::from(*m).into())
                    .collect(),
                netns: caps.netns,
                notes: caps.notes.clone(),
            }),
            caller: Some(pb::Caller {
                identity: who.name,
                role: pb::Role::from(who.role).into(),
                transport: who.transport.as_str().to_owned(),
            }),
            uptime_seconds: self.ctx.started.elapsed().as_secs(),
        }))
    }
}
