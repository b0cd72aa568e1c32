//! `linkherd.v1.AttachmentService`: runtimes' containers on catalog
//! networks. Attach, Detach and Gc run to the end whatever the caller does,
//! and are audited; Check, List and Status read.

use std::{collections::BTreeSet, sync::Arc};

use linkherd_proto::{
    model::{AttachKeySpec, AttachSpec, MAX_GC_VALID, ObjName, ValidationError},
    pb,
};
use tonic::{Request, Response, Status};

use super::Call;
use crate::{context::Context, error::Error, host::attachments::AttachState};

#[derive(Debug, Clone)]
pub struct AttachmentSvc {
    ctx: Arc<Context>,
}

impl AttachmentSvc {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }
}

fn to_pb(s: &AttachState) -> pb::Attachment {
    let r = &s.record;
    pb::Attachment {
        network: r.network.clone(),
        container_id: r.container_id.clone(),
        ifname: r.ifname.clone(),
        netns: r.netns.display().to_string(),
        mac: r.mac.to_string(),
        addresses: r.addresses.iter().map(ToString::to_string).collect(),
        gateways: s.gateways.iter().map(ToString::to_string).collect(),
        parent: r.parent.clone(),
        mtu: s.mtu.unwrap_or(0),
        stale: s.stale,
        inside: s.inside.clone().unwrap_or_default(),
    }
}

/// Detached attachments a GC's audit line names; the rest are counted.
const GC_NAMED: usize = 20;

fn target(network: &str, id: &str, ifname: &str) -> String {
    format!("{network}/{id}/{ifname}")
}

#[tonic::async_trait]
impl pb::attachment_service_server::AttachmentService for AttachmentSvc {
    async fn attach(
        &self,
        req: Request<pb::AttachRequest>,
    ) -> Result<Response<pb::Attachment>, Status> {
        let call = Call::of(&req)?;
        let r = req.into_inner();
        let what = target(&r.network, &r.container_id, &r.ifname);
        let detail = format!("attach in {}", r.netns);
        let started = std::time::Instant::now();
        let (state, _) = call
            .to_the_end(
                &self.ctx,
                &what,
                &detail,
                |ctx| async move {
                    ctx.host
                        .attachments()
                        .attach(&AttachSpec::try_from(r)?)
                        .await
                },
                |(s, made): &(AttachState, bool)| {
                    let addrs: Vec<String> =
                        s.record.addresses.iter().map(ToString::to_string).collect();
                    let word = if *made { "attached" } else { "unchanged" };
                    format!("{word} {} {}", s.record.mac, addrs.join(" "))
                },
            )
            .await?;
        self.ctx.metrics.attach("attach", started.elapsed());
        Ok(Response::new(to_pb(&state)))
    }

    async fn detach(
        &self,
        req: Request<pb::AttachmentKey>,
    ) -> Result<Response<pb::DetachResponse>, Status> {
        let call = Call::of(&req)?;
        let k = req.into_inner();
        let what = target(&k.network, &k.container_id, &k.ifname);
        let started = std::time::Instant::now();
        let gone = call
            .to_the_end(
                &self.ctx,
                &what,
                "detach",
                |ctx| async move {
                    ctx.host
                        .attachments()
                        .detach(&AttachKeySpec::try_from(k)?)
                        .await
                },
                |g| {
                    if g.is_some() {
                        "detached"
                    } else {
                        "nothing attached"
                    }
                    .to_owned()
                },
            )
            .await?;
        self.ctx.metrics.attach("detach", started.elapsed());
        Ok(Response::new(pb::DetachResponse {
            detached: gone.is_some(),
        }))
    }

    async fn check(
        &self,
        req: Request<pb::AttachmentKey>,
    ) -> Result<Response<pb::Attachment>, Status> {
        let key = AttachKeySpec::try_from(req.into_inner()).map_err(Error::from)?;
        let state = self.ctx.host.attachments().check_attachment(&key).await?;
        Ok(Response::new(to_pb(&state)))
    }

    async fn list(
        &self,
        req: Request<pb::ListAttachmentsRequest>,
    ) -> Result<Response<pb::ListAttachmentsResponse>, Status> {
        let network = req.into_inner().network;
        let network = match network.as_str() {
            "" => None,
            n => Some(ObjName::parse("network", n).map_err(Error::from)?),
        };
        let all = self
            .ctx
            .host
            .attachments()
            .attachments(network.as_ref().map(ObjName::as_str))
            .await;
        Ok(Response::new(pb::ListAttachmentsResponse {
            attachments: all.iter().map(to_pb).collect(),
        }))
    }

    async fn gc(
        &self,
        req: Request<pb::GcAttachmentsRequest>,
    ) -> Result<Response<pb::GcAttachmentsResponse>, Status> {
        let call = Call::of(&req)?;
        let r = req.into_inner();
        let network = ObjName::parse("network", &r.network).map_err(Error::from)?;
        if r.valid.len() > MAX_GC_VALID {
            return Err(Error::from(ValidationError::new(
                "valid",
                r.valid.len().to_string(),
                format!("is more than {MAX_GC_VALID} attachments"),
                "list at most that many",
            ))
            .into());
        }
        let valid: BTreeSet<(String, String)> = r
            .valid
            .into_iter()
            .map(|k| (k.container_id, k.ifname))
            .collect();
        let detail = format!("keep {} attachment(s)", valid.len());
        let what = network.to_string();
        let gone = call
            .to_the_end(
                &self.ctx,
                &what,
                &detail,
                |ctx| async move {
                    let gone = ctx
                        .host
                        .attachments()
                        .gc_attachments(network.as_str(), &valid)
                        .await?;
                    let states: Vec<AttachState> = gone
                        .into_iter()
                        .map(|record| AttachState::bare(record, false))
                        .collect();
                    Ok::<_, Error>(states)
                },
                |g| {
                    // Named up to a bound: the audit line stays small however
                    // many went.
                    let mut names: Vec<String> = g
                        .iter()
                        .take(GC_NAMED)
                        .map(|s| format!("{}/{}", s.record.container_id, s.record.ifname))
                        .collect();
                    if g.len() > GC_NAMED {
                        names.push(format!("and {} more", g.len() - GC_NAMED));
                    }
                    format!("detached {}: {}", g.len(), names.join(" "))
                },
            )
            .await?;
        Ok(Response::new(pb::GcAttachmentsResponse {
            detached: gone.iter().map(to_pb).collect(),
        }))
    }

    async fn status(
        &self,
        req: Request<pb::NetworkStatusRequest>,
    ) -> Result<Response<pb::NetworkStatusResponse>, Status> {
        let network = ObjName::parse("network", &req.into_inner().network).map_err(Error::from)?;
        let s = self
            .ctx
            .host
            .attachments()
            .network_status(network.as_str())
            .await;
        Ok(Response::new(pb::NetworkStatusResponse {
            ready: s.ready,
            reason: s.reason,
            free_addresses: s.free,
        }))
    }
}
