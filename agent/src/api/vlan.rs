//! `linkherd.v1.VlanService`.

use std::sync::Arc;

use linkherd_proto::{
    model::{IfName, Owner, VlanSpec},
    pb,
};
use tonic::{Request, Response, Status};

use super::{Call, outcome_pb, outcome_word};
use crate::{context::Context, error::Error};

#[derive(Debug, Clone)]
pub struct VlanSvc {
    ctx: Arc<Context>,
}

impl VlanSvc {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }
}

#[tonic::async_trait]
impl pb::vlan_service_server::VlanService for VlanSvc {
    async fn create(
        &self,
        req: Request<pb::CreateVlanRequest>,
    ) -> Result<Response<pb::CreateVlanResponse>, Status> {
        let call = Call::of(&req)?;
        let r = req.into_inner();
        let target = if r.name.is_empty() {
            format!("{}.{}", r.parent, r.id)
        } else {
            r.name.clone()
        };
        let detail = format!("vlan {} on {}", r.id, r.parent);
        let res = call
            .to_the_end(
                &self.ctx,
                &target,
                &detail,
                |ctx| async move {
                    let spec = VlanSpec::try_from(r)?;
                    ctx.host.vlans().create_vlan(&spec, Owner::Vlan).await
                },
                |(_, o)| outcome_word(*o),
            )
            .await;
        let (vlan, outcome) = res?;
        Ok(Response::new(pb::CreateVlanResponse {
            vlan: Some(vlan.into()),
            outcome: outcome_pb(outcome),
        }))
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteVlanRequest>,
    ) -> Result<Response<pb::DeleteVlanResponse>, Status> {
        let call = Call::of(&req)?;
        let r = req.into_inner();
        let detail = if r.force { "forced" } else { "" };
        let target = r.name.clone();
        let res = call
            .to_the_end(
                &self.ctx,
                &target,
                detail,
                |ctx| async move {
                    let name = IfName::parse("name", &r.name)?;
                    ctx.host.vlans().delete_vlan(&name, r.force).await
                },
                |o| outcome_word(*o),
            )
            .await;
        Ok(Response::new(pb::DeleteVlanResponse {
            outcome: outcome_pb(res?),
        }))
    }

    async fn list(
        &self,
        _req: Request<pb::ListVlansRequest>,
    ) -> Result<Response<pb::ListVlansResponse>, Status> {
        let vlans = self
            .ctx
            .host
            .vlans()
            .list_vlans()
            .await
            .map_err(Error::into_status)?;
        Ok(Response::new(pb::ListVlansResponse {
            vlans: vlans.into_iter().map(Into::into).collect(),
        }))
    }
}
