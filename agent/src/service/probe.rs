//! `linkherd.v1.ProbeService`: Ping (streamed), Arp and Tcp, each run from
//! inside the chosen namespace on a thread of its own.

use std::{net::IpAddr, sync::Arc};

use linkherd_proto::{
    convert::{ArpProbe, MIN_PING_INTERVAL, PingProbe, TcpProbe},
    model::{NetnsRef, Role},
    pb,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::{
    auth::Identity,
    context::Context,
    error::Error,
    net::{
        NetOps,
        probe::{
            arp::{self, ArpSpec},
            icmp::{self, PingEvent, PingSpec},
            tcp::{self, TcpResult},
        },
    },
};

#[derive(Debug, Clone)]
pub struct ProbeSvc {
    ctx: Arc<Context>,
}

impl ProbeSvc {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }

    fn netns_file(&self, n: Option<&NetnsRef>) -> Option<std::path::PathBuf> {
        n.map(|n| self.ctx.lifecycle.ns_file(n))
    }
}

fn us(d: std::time::Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

type PingStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::PingResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::probe_service_server::ProbeService for ProbeSvc {
    type PingStream = PingStream;

    async fn ping(&self, req: Request<pb::PingRequest>) -> Result<Response<PingStream>, Status> {
        let who = Identity::of(&req)?;
        let p = PingProbe::try_from(req.into_inner())?;
        if p.interval < MIN_PING_INTERVAL && who.role < Role::Admin {
            return Err(Status::permission_denied(format!(
                "an interval below {} ms needs the admin role ({} has {})",
                MIN_PING_INTERVAL.as_millis(),
                who.name,
                who.role
            )));
        }
        let spec = PingSpec {
            netns: self.netns_file(p.netns.as_ref()),
            interface: p.interface.map(|i| i.to_string()),
            to: p.to,
            count: p.count,
            interval: p.interval,
            timeout: p.timeout,
            size: p.size,
        };
        let (ev_tx, mut ev_rx) = mpsc::channel(16);
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let run = tokio::spawn(icmp::ping(spec, ev_tx));
            while let Some(ev) = ev_rx.recv().await {
                let reply = match ev {
                    PingEvent::Reply { seq, rtt, ttl } => pb::PingReply {
                        sequence: seq.into(),
                        rtt_us: us(rtt),
                        ttl: ttl.into(),
                        timed_out: false,
                    },
                    PingEvent::Lost { seq } => pb::PingReply {
                        sequence: seq.into(),
                        timed_out: true,
                        ..Default::default()
                    },
                };
                let msg = pb::PingResponse {
                    event: Some(pb::ping_response::Event::Reply(reply)),
                };
                if tx.send(Ok(msg)).await.is_err() {
                    // The client went away; dropping ev_rx stops the probe.
                    return;
                }
            }
            let last = match run.await {
                Ok(Ok(s)) => Ok(pb::PingResponse {
                    event: Some(pb::ping_response::Event::Summary(pb::PingSummary {
                        sent: s.sent,
                        received: s.received,
                        loss_percent: s.loss_percent(),
                        min_us: us(s.min),
                        avg_us: us(s.avg),
                        max_us: us(s.max),
                        mdev_us: us(s.mdev),
                    })),
                }),
                Ok(Err(e)) => Err(Status::from(Error::from(e))),
                Err(e) => Err(Status::internal(e.to_string())),
            };
            let _ = tx.send(last).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn arp(&self, req: Request<pb::ArpRequest>) -> Result<Response<pb::ArpResponse>, Status> {
        let p = ArpProbe::try_from(req.into_inner())?;
        let netns = self.netns_file(p.netns.as_ref());
        let here: Arc<dyn NetOps>;
        let ops: &dyn NetOps = match &netns {
            Some(f) => {
                here = self.ctx.net.netns(f).await.map_err(Error::from)?;
                here.as_ref()
            }
            None => self.ctx.net.as_ref(),
        };
        let link = ops.link(&p.interface).await.map_err(Error::from)?;
        let mac = link.mac.ok_or_else(|| {
            Status::failed_precondition(format!(
                "{} has no MAC address: ARP needs an Ethernet link",
                p.interface
            ))
        })?;
        let ipv4 = link.addresses.iter().find_map(|a| match a.addr() {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        });
        let responders = arp::who_has(ArpSpec {
            netns,
            link: arp::Link {
                index: link.index,
                mac,
                ipv4,
            },
            target: p.target,
            timeout: p.timeout,
            free_check: p.free_check,
        })
        .await
        .map_err(Error::from)?;
        Ok(Response::new(pb::ArpResponse {
            duplicate: responders.len() > 1,
            verdict: arp::verdict(p.target, &responders, p.free_check),
            responders: responders
                .iter()
                .map(|r| pb::ArpResponder {
                    mac: r.mac.to_string(),
                    rtt_us: us(r.rtt),
                })
                .collect(),
        }))
    }

    async fn tcp(&self, req: Request<pb::TcpRequest>) -> Result<Response<pb::TcpResponse>, Status> {
        let p = TcpProbe::try_from(req.into_inner())?;
        let netns = self.netns_file(p.netns.as_ref());
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
            elapsed_us: us(out.elapsed),
            detail: out.detail,
        }))
    }
}
