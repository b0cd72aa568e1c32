//! `linkherd.v1.MacvlanService`: endpoints and host access.

use std::sync::Arc;

use linkherd_proto::{
    convert::DeleteEndpoints,
    model::{EndpointSpec, HostAccessSpec, ObjName},
    pb,
};
use tonic::{Request, Response, Status};

use super::{audit, outcome_pb, outcome_word};
use crate::{auth::Identity, context::Context, error::Error};

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
    #[tracing::instrument(skip_all, fields(rpc = "MacvlanService/Create"))]
    async fn create(
        &self,
        req: Request<pb::CreateMacvlanRequest>,
    ) -> Result<Response<pb::CreateMacvlanResponse>, Status> {
        let who = Identity::of(&req);
        let r = req.into_inner();
        let e = r.endpoint.clone().unwrap_or_default();
        let target = format!("{}/{}", e.network, e.name);
        let detail = format!("parent {} addresses {}", e.parent, e.addresses.join(","));
        let res = async {
            let spec = EndpointSpec::try_from(r)?;
            self.ctx.lifecycle.create_endpoint(&spec).await
        }
        .await;
        audit(
            &self.ctx,
            &who,
            "MacvlanService/Create",
            &target,
            &detail,
            &res,
            |(_, o)| outcome_word(*o),
        );
        let (state, outcome) = res?;
        Ok(Response::new(pb::CreateMacvlanResponse {
            endpoint: Some(state.into()),
            outcome: outcome_pb(outcome),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "MacvlanService/Delete"))]
    async fn delete(
        &self,
        req: Request<pb::DeleteMacvlanRequest>,
    ) -> Result<Response<pb::DeleteMacvlanResponse>, Status> {
        let who = Identity::of(&req);
        let r = req.into_inner();
        let target = match (r.network.as_str(), r.name.as_str()) {
            ("", _) => r.ifname.clone(),
            (n, "") => format!("{n}/*"),
            (n, e) => format!("{n}/{e}"),
        };
        let detail = if r.force { "forced" } else { "" };
        let res = async {
            let d = DeleteEndpoints::try_from(r)?;
            self.ctx
                .lifecycle
                .delete_endpoints(&d.selector, d.force)
                .await
        }
        .await;
        audit(
            &self.ctx,
            &who,
            "MacvlanService/Delete",
            &target,
            detail,
            &res,
            |r| format!("deleted: {}", r.0.join("; ")),
        );
        Ok(Response::new(pb::DeleteMacvlanResponse {
            outcome: pb::Outcome::Deleted.into(),
            removed: res?.0,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "MacvlanService/List"))]
    async fn list(
        &self,
        _req: Request<pb::ListMacvlansRequest>,
    ) -> Result<Response<pb::ListMacvlansResponse>, Status> {
        let eps = self
            .ctx
            .lifecycle
            .list_endpoints()
            .await
            .map_err(Error::into_status)?;
        Ok(Response::new(pb::ListMacvlansResponse {
            endpoints: eps.into_iter().map(Into::into).collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "MacvlanService/CreateHostAccess"))]
    async fn create_host_access(
        &self,
        req: Request<pb::CreateHostAccessRequest>,
    ) -> Result<Response<pb::CreateHostAccessResponse>, Status> {
        let who = Identity::of(&req);
        let r = req.into_inner();
        let h = r.host_access.clone().unwrap_or_default();
        let detail = format!("parent {} routes {}", h.parent, h.routes.join(","));
        let res = async {
            let spec = HostAccessSpec::try_from(r)?;
            self.ctx.lifecycle.create_host_access(&spec).await
        }
        .await;
        audit(
            &self.ctx,
            &who,
            "MacvlanService/CreateHostAccess",
            &h.network,
            &detail,
            &res,
            |(_, o)| outcome_word(*o),
        );
        let (state, outcome) = res?;
        Ok(Response::new(pb::CreateHostAccessResponse {
            host_access: Some(state.into()),
            outcome: outcome_pb(outcome),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "MacvlanService/DeleteHostAccess"))]
    async fn delete_host_access(
        &self,
        req: Request<pb::DeleteHostAccessRequest>,
    ) -> Result<Response<pb::DeleteHostAccessResponse>, Status> {
        let who = Identity::of(&req);
        let r = req.into_inner();
        let res = async {
            let network = ObjName::parse("network", &r.network)?;
            self.ctx.lifecycle.delete_host_access(&network).await
        }
        .await;
        audit(
            &self.ctx,
            &who,
            "MacvlanService/DeleteHostAccess",
            &r.network,
            "",
            &res,
            |o| outcome_word(*o),
        );
        Ok(Response::new(pb::DeleteHostAccessResponse {
            outcome: outcome_pb(res?),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "MacvlanService/ListHostAccess"))]
    async fn list_host_access(
        &self,
        _req: Request<pb::ListHostAccessRequest>,
    ) -> Result<Response<pb::ListHostAccessResponse>, Status> {
        let list = self
            .ctx
            .lifecycle
            .list_host_access()
            .await
            .map_err(Error::into_status)?;
        Ok(Response::new(pb::ListHostAccessResponse {
            host_access: list.into_iter().map(Into::into).collect(),
        }))
    }
}
