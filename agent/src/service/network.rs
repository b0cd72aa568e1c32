//! `linkherd.v1.NetworkService`: the network catalog, read-only (it changes
//! only through `HostService.Apply`).

use std::sync::Arc;

use linkherd_proto::pb;
use tonic::{Request, Response, Status};

use crate::context::Context;

#[derive(Debug, Clone)]
pub struct NetworkSvc {
    ctx: Arc<Context>,
}

impl NetworkSvc {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }
}

#[tonic::async_trait]
impl pb::network_service_server::NetworkService for NetworkSvc {
    async fn list(
        &self,
        _req: Request<pb::ListNetworksRequest>,
    ) -> Result<Response<pb::ListNetworksResponse>, Status> {
        let networks = self.ctx.lifecycle.networks().await;
        Ok(Response::new(pb::ListNetworksResponse {
            networks: networks.iter().map(Into::into).collect(),
        }))
    }

    async fn get(
        &self,
        req: Request<pb::GetNetworkRequest>,
    ) -> Result<Response<pb::CatalogNetwork>, Status> {
        let name = req.into_inner().name;
        match self.ctx.lifecycle.network(&name).await {
            Some(n) => Ok(Response::new((&n).into())),
            None => Err(Status::not_found(format!(
                "network {name:?} is not in this host's catalog; add it to the fleet spec \
                 (with containers: ...) and apply"
            ))),
        }
    }
}
