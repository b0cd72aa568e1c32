//! `linkherd.v1.HostService`.

use std::sync::Arc;

use linkherd_proto::{API_VERSION, convert::Desired, pb};
use tonic::{Request, Response, Status};

use crate::{auth::Identity, context::Context, error::Error};

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

    #[tracing::instrument(skip_all, fields(rpc = "HostService/Plan"))]
    async fn plan(
        &self,
        req: Request<pb::PlanRequest>,
    ) -> Result<Response<pb::PlanResponse>, Status> {
        use crate::lifecycle::plan::Action;
        let desired = Desired::try_from(req.into_inner().desired.unwrap_or_default())?;
        let changes = self
            .ctx
            .lifecycle
            .plan(&desired)
            .await
            .map_err(Error::into_status)?;
        let observed = observed(&self.ctx).await.map_err(Error::into_status)?;
        Ok(Response::new(pb::PlanResponse {
            generation: generation(&observed),
            changes: changes
                .into_iter()
                .map(|c| pb::Change {
                    action: match c.action {
                        Action::Create => pb::ChangeAction::Create,
                        Action::Update => pb::ChangeAction::Update,
                        Action::Delete => pb::ChangeAction::Delete,
                    }
                    .into(),
                    object_kind: c.kind.to_owned(),
                    object: c.object,
                    detail: c.detail,
                })
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "HostService/GetState"))]
    async fn get_state(
        &self,
        _req: Request<pb::GetStateRequest>,
    ) -> Result<Response<pb::GetStateResponse>, Status> {
        let observed = observed(&self.ctx).await.map_err(Error::into_status)?;
        Ok(Response::new(pb::GetStateResponse {
            generation: generation(&observed),
            observed: Some(observed),
        }))
    }
}

/// Everything linkherd owns on this host, as the kernel has it, in a stable
/// order (so equal states encode to equal bytes).
async fn observed(ctx: &Context) -> Result<pb::DesiredState, Error> {
    let mut vlans: Vec<pb::Vlan> = ctx
        .lifecycle
        .list_vlans()
        .await?
        .into_iter()
        .filter(|v| v.owned)
        .map(Into::into)
        .collect();
    vlans.sort_by(|a, b| a.name.cmp(&b.name));
    let mut endpoints: Vec<pb::MacvlanEndpoint> = ctx
        .lifecycle
        .list_endpoints()
        .await?
        .into_iter()
        .filter(|e| e.owned)
        .map(|mut e| {
            // Counters and carrier change all the time; they are not state.
            e.interface = None;
            e.into()
        })
        .collect();
    endpoints.sort_by(|a, b| (&a.network, &a.name).cmp(&(&b.network, &b.name)));
    let mut host_access: Vec<pb::HostAccess> = ctx
        .lifecycle
        .list_host_access()
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    host_access.sort_by(|a, b| a.network.cmp(&b.network));
    Ok(pb::DesiredState {
        vlans,
        endpoints,
        host_access,
    })
}

/// A fingerprint of the owned state: any change to an owned object changes
/// it, so a transaction planned against one state can refuse another.
fn generation(state: &pb::DesiredState) -> u64 {
    use prost::Message;
    state
        .encode_to_vec()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}
