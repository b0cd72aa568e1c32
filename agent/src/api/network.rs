//! `linkherd.v1.NetworkService`: the network catalog, read-only (it changes
//! only through `HostService.Apply`).

use std::sync::Arc;

use linkherd_proto::{model::ObjName, pb};
use tonic::{Request, Response, Status};

use crate::{context::Context, error::Error, host::attachments::not_in_catalog};

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
        let networks = self.ctx.host.catalog().networks().await;
        Ok(Response::new(pb::ListNetworksResponse {
            networks: networks.iter().map(Into::into).collect(),
        }))
    }

    async fn get(
        &self,
        req: Request<pb::GetNetworkRequest>,
    ) -> Result<Response<pb::CatalogNetwork>, Status> {
        // Parsed first: a name is bounded before it is echoed in an error.
        let name = ObjName::parse("name", &req.into_inner().name).map_err(Error::from)?;
        match self.ctx.host.catalog().network(name.as_str()).await {
            Some(n) => Ok(Response::new((&n).into())),
            None => Err(not_in_catalog(name.as_str()).into()),
        }
    }
}
