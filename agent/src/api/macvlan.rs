//! `linkherd.v1.MacvlanService`: endpoints and host access.

use std::sync::Arc;

use linkherd_proto::{
    model::{DeleteEndpoints, EndpointSpec, HostAccessSpec, ObjName},
    pb,
};
use tonic::{Request, Response, Status};

use super::{Call, outcome_pb, outcome_word};
use crate::{context::Context, error::Error};

#[derive(Debug, Clone)]
pub struct MacvlanSvc {
    ctx: Arc<Context>,
}

impl MacvlanSvc {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }
}

#[tonic::async_trait]
impl pb::macvlan_service_server::MacvlanService for MacvlanSvc {
    async fn create(
        &self,
        req: Request<pb::CreateMacvlanRequest>,
    ) -> Result<Response<pb::CreateMacvlanResponse>, Status> {
        let call = Call::of(&req)?;
        let r = req.into_inner();
        let e = r.endpoint.clone().unwrap_or_default();
        let target = format!("{}/{}", e.network, e.name);
        let detail = format!("parent {} addresses {}", e.parent, e.addresses.join(","));
        let started = std::time::Instant::now();
        let res = call
            .to_the_end(
                &self.ctx,
                &target,
                &detail,
                |ctx| async move {
                    let spec = EndpointSpec::try_from(r)?;
                    ctx.host.endpoints().create_endpoint(&spec).await
                },
                |(_, o)| outcome_word(*o),
            )
            .await;
        let (state, outcome) = res?;
        self.ctx
            .metrics
            .endpoint_create_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(Response::new(pb::CreateMacvlanResponse {
            endpoint: Some(state.into()),
            outcome: outcome_pb(outcome),
        }))
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteMacvlanRequest>,
    ) -> Result<Response<pb::DeleteMacvlanResponse>, Status> {
        let call = Call::of(&req)?;
        let r = req.into_inner();
        let target = match (r.network.as_str(), r.name.as_str()) {
            ("", _) => r.ifname.clone(),
            (n, "") => format!("{n}/*"),
            (n, e) => format!("{n}/{e}"),
        };
        let detail = if r.force { "forced" } else { "" };
        let res = call
            .to_the_end(
                &self.ctx,
                &target,
                detail,
                |ctx| async move {
                    let d = DeleteEndpoints::try_from(r)?;
                    ctx.host
                        .endpoints()
                        .delete_endpoints(&d.selector, d.force)
                        .await
                },
                |r| format!("deleted: {}", r.0.join("; ")),
            )
            .await;
        Ok(Response::new(pb::DeleteMacvlanResponse {
            outcome: pb::Outcome::Deleted.into(),
            removed: res?.0,
        }))
    }

    async fn list(
        &self,
        _req: Request<pb::ListMacvlansRequest>,
    ) -> Result<Response<pb::ListMacvlansResponse>, Status> {
        let eps = self
            .ctx
            .host
            .endpoints()
            .list_endpoints()
            .await
            .map_err(Error::into_status)?;
        Ok(Response::new(pb::ListMacvlansResponse {
            endpoints: eps.into_iter().map(Into::into).collect(),
        }))
    }

    async fn create_host_access(
        &self,
        req: Request<pb::CreateHostAccessRequest>,
    ) -> Result<Response<pb::CreateHostAccessResponse>, Status> {
        let call = Call::of(&req)?;
        let r = req.into_inner();
        let h = r.host_access.clone().unwrap_or_default();
        let detail = format!("parent {} routes {}", h.parent, h.routes.join(","));
        let res = call
            .to_the_end(
                &self.ctx,
                &h.network,
                &detail,
                |ctx| async move {
                    let spec = HostAccessSpec::try_from(r)?;
                    ctx.host.host_access().create_host_access(&spec).await
                },
                |(_, o)| outcome_word(*o),
            )
            .await;
        let (state, outcome) = res?;
        Ok(Response::new(pb::CreateHostAccessResponse {
            host_access: Some(state.into()),
            outcome: outcome_pb(outcome),
        }))
    }

    async fn delete_host_access(
        &self,
        req: Request<pb::DeleteHostAccessRequest>,
    ) -> Result<Response<pb::DeleteHostAccessResponse>, Status> {
        let call = Call::of(&req)?;
        let r = req.into_inner();
        let target = r.network.clone();
        let res = call
            .to_the_end(
                &self.ctx,
                &target,
                "",
                |ctx| async move {
                    let network = ObjName::parse("network", &r.network)?;
                    ctx.host.host_access().delete_host_access(&network).await
                },
                |o| outcome_word(*o),
            )
            .await;
        Ok(Response::new(pb::DeleteHostAccessResponse {
            outcome: outcome_pb(res?),
        }))
    }

    async fn list_host_access(
        &self,
        _req: Request<pb::ListHostAccessRequest>,
    ) -> Result<Response<pb::ListHostAccessResponse>, Status> {
        let list = self
            .ctx
            .host
            .host_access()
            .list_host_access()
            .await
            .map_err(Error::into_status)?;
        Ok(Response::new(pb::ListHostAccessResponse {
            host_access: list.into_iter().map(Into::into).collect(),
        }))
    }
}
