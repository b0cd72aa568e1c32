//! `linkherd.v1.ProbeService`. Tcp is implemented; Ping and Arp land in a
//! later release and answer UNIMPLEMENTED until then (the generated default
//! methods).

use std::sync::Arc;

use linkherd_proto::{convert::TcpProbe, pb};
use tonic::{Request, Response, Status};

use crate::{
    context::Context,
    error::Error,
    probe::tcp::{self, TcpResult},
};

#[derive(Debug, Clone)]
pub struct ProbeSvc {
    ctx: Arc<Context>,
}

impl ProbeSvc {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }
}

#[tonic::async_trait]
impl pb::probe_service_server::ProbeService for ProbeSvc {
    #[tracing::instrument(skip_all, fields(rpc = "ProbeService/Tcp"))]
    async fn tcp(&self, req: Request<pb::TcpRequest>) -> Result<Response<pb::TcpResponse>, Status> {
        let p = TcpProbe::try_from(req.into_inner())?;
        let netns = p.netns.as_ref().map(|n| self.ctx.lifecycle.ns_file(n));
        let out = tcp::probe(netns, p.interface.map(|i| i.to_string()), p.to, p.timeout)
            .await
            .map_err(Error::from)?;
        Ok(Response::new(pb::TcpResponse {
            result: match out.result {
                TcpResult::Connected => pb::TcpResult::Connected,
                TcpResult::Refused => pb::TcpResult::Refused,
                TcpResult::TimedOut => pb::TcpResult::TimedOut,
                TcpResult::Unreachable => pb::TcpResult::Unreachable,
            }
            .into(),
            elapsed_us: u32::try_from(out.elapsed.as_micros()).unwrap_or(u32::MAX),
            detail: out.detail,
        }))
    }
}
