//! `linkherd.v1.ProbeService`: Ping (streamed), Arp and Tcp, each run from
//! inside the chosen namespace on a thread of its own.
//!
//! Before a probe runs: its namespace is opened safely and checked (on the
//! blocking pool, outside any lock); a caller below admin may probe only
//! from namespaces this agent manages; and the probe must fit the agent's
//! budget ([`budget`]). Every probe is audited — who, from where, to what,
//! and how it ended — refusals included.

use std::{net::IpAddr, path::PathBuf, sync::Arc, time::Duration};

use linkherd_proto::{
    model::{ArpProbe, MIN_PING_INTERVAL, NetnsRef, PingProbe, Role, TcpProbe},
    pb,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::Call;
use crate::{
    context::Context,
    error::Error,
    net::{
        NetError, NetOps, neigh,
        netns::{self, NsId, is_not_netns, not_a_netns},
        probe::{
            arp::{self, ArpSpec},
            budget::{Budget, Ticket},
            icmp::{self, PingEvent, PingSpec, PingSummary},
            tcp::{self, TcpResult, TcpSpec},
        },
    },
    state::caller::Identity,
};

#[derive(Debug, Clone)]
pub struct ProbeSvc {
    ctx: Arc<Context>,
    budget: Arc<Budget>,
}

/// Where a probe runs from, checked: the file and the namespace it was
/// found to be (`None`: the agent's own).
#[derive(Debug, Clone)]
struct Source {
    file: Option<PathBuf>,
    id: Option<NsId>,
}

/// One probe on its way: the caller, what the audit says it is, its
/// checked source and its budget slot.
struct Admitted {
    call: Call,
    target: String,
    detail: String,
    source: Source,
    ticket: Ticket,
}

impl ProbeSvc {
    pub fn new(ctx: Arc<Context>) -> Self {
        let budget = ctx.probe_budget.clone();
        Self { ctx, budget }
    }

    /// Opens the source namespace on the blocking pool (never a FIFO or a
    /// device, never under a lock) and checks the caller may probe from it.
    async fn source(&self, who: &Identity, n: Option<&NetnsRef>) -> Result<Source, Status> {
        let Some(n) = n else {
            return Ok(Source {
                file: None,
                id: None,
            });
        };
        let file = self.ctx.host.ns_file(n);
        let f = file.clone();
        let (opened, own) =
            tokio::task::spawn_blocking(move || (netns::identity(&f), netns::current()))
                .await
                .map_err(|e| Status::internal(format!("namespace check did not finish: {e}")))?;
        let id = opened.map_err(|e| refusal(n, &file, e))?;
        if who.role < Role::Admin && !matches!(n, NetnsRef::Named(_)) {
            let managed = own.ok() == Some(id) || self.ctx.host.managed_netns().await.contains(&id);
            if !managed {
                return Err(Status::permission_denied(format!(
                    "probing from {n} needs the admin role ({} has {}): it is not a namespace \
                     this agent manages (its own, its named ones, its endpoints')",
                    who.name, who.role
                )));
            }
        }
        Ok(Source {
            file: Some(file),
            id: Some(id),
        })
    }

    /// Checks and admits one probe, auditing a refusal.
    async fn admit(
        &self,
        call: Call,
        netns: Option<&NetnsRef>,
        target: String,
        detail: impl FnOnce(&str) -> String,
    ) -> Result<Admitted, Status> {
        let checked = self.source(&call.who, netns).await.and_then(|source| {
            let ticket = self
                .budget
                .admit(&call.who.name)
                .map_err(|e| Status::resource_exhausted(e.to_string()))?;
            Ok((source, ticket))
        });
        let label = match netns {
            Some(n) => n.to_string(),
            None => "the agent's namespace".into(),
        };
        let detail = detail(&label);
        match checked {
            Ok((source, ticket)) => Ok(Admitted {
                call,
                target,
                detail,
                source,
                ticket,
            }),
            Err(status) => {
                let result = format!("refused: {}", status.message());
                self.ctx
                    .audit
                    .record(&call.who, &call.rpc.0, &target, &detail, &result);
                Err(status)
            }
        }
    }
}

/// A namespace the caller named that cannot be used. A path that is
/// missing, unreadable or no network namespace gets the same answer.
fn refusal(n: &NetnsRef, file: &std::path::Path, e: NetError) -> Status {
    match (n, e) {
        (NetnsRef::Named(name), NetError::NotFound { .. }) => {
            Status::not_found(format!("network namespace {name} does not exist"))
        }
        (NetnsRef::Pid(p), NetError::NotFound { .. }) => {
            Status::not_found(format!("process {p} does not exist (no /proc/{p}/ns/net)"))
        }
        (_, e) if is_not_netns(&e) || matches!(e, NetError::NotFound { .. }) => {
            not_a_netns(file).into()
        }
        (_, e) => Error::from(e).into(),
    }
}

fn us(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn on(interface: Option<&str>) -> String {
    interface.map(|i| format!(" on {i}")).unwrap_or_default()
}

type PingStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::PingResponse, Status>> + Send>>;

fn reply_pb(ev: PingEvent) -> pb::PingResponse {
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
    pb::PingResponse {
        event: Some(pb::ping_response::Event::Reply(reply)),
    }
}

fn summary_pb(s: &PingSummary, note: Option<String>) -> pb::PingResponse {
    pb::PingResponse {
        event: Some(pb::ping_response::Event::Summary(pb::PingSummary {
            sent: s.sent,
            received: s.received,
            loss_percent: s.loss_percent(),
            min_us: us(s.min),
            avg_us: us(s.avg),
            max_us: us(s.max),
            mdev_us: us(s.mdev),
            note: note.unwrap_or_default(),
        })),
    }
}

/// Runs an admitted ping, forwarding its events to the client's stream,
/// then the summary, then its audit record.
async fn run_ping(
    ctx: Arc<Context>,
    probe: Admitted,
    spec: PingSpec,
    tx: mpsc::Sender<Result<pb::PingResponse, Status>>,
) {
    let Admitted {
        call,
        target,
        detail,
        ticket,
        ..
    } = probe;
    let (ev_tx, mut ev_rx) = mpsc::channel(16);
    let before = neigh::table_fulls_now().await;
    let run = tokio::spawn(icmp::ping(spec, ev_tx, ticket));
    let mut client_gone = false;
    while let Some(ev) = ev_rx.recv().await {
        if !client_gone && tx.send(Ok(reply_pb(ev))).await.is_err() {
            // The client went away: dropping ev_rx stops the probe.
            client_gone = true;
            break;
        }
    }
    drop(ev_rx);
    let mut reached = Err(());
    let (last, result) = match run.await {
        Ok(Ok(s)) => {
            reached = Ok(s.received > 0);
            (
                Ok(summary_pb(
                    &s,
                    neigh::explain_silence(s.received == 0, before).await,
                )),
                format!("sent {}, received {}", s.sent, s.received),
            )
        }
        Ok(Err(e)) => {
            let status = Status::from(Error::from(e));
            let result = format!("error: {}", status.message());
            (Err(status), result)
        }
        Err(e) => (Err(Status::internal(e.to_string())), format!("error: {e}")),
    };
    ctx.metrics.probe("ping", reached);
    let result = if client_gone {
        format!("{result} (the client went away)")
    } else {
        result
    };
    ctx.audit
        .record(&call.who, &call.rpc.0, &target, &detail, &result);
    let _ = tx.send(last).await;
}

#[tonic::async_trait]
impl pb::probe_service_server::ProbeService for ProbeSvc {
    type PingStream = PingStream;

    async fn ping(&self, req: Request<pb::PingRequest>) -> Result<Response<PingStream>, Status> {
        let call = Call::of(&req)?;
        let p = PingProbe::try_from(req.into_inner())?;
        if p.interval < MIN_PING_INTERVAL && call.who.role < Role::Admin {
            return Err(Status::permission_denied(format!(
                "an interval below {} ms needs the admin role ({} has {})",
                MIN_PING_INTERVAL.as_millis(),
                call.who.name,
                call.who.role
            )));
        }
        let interface = p.interface.map(|i| i.to_string());
        let detail = |from: &str| {
            format!(
                "ping from {from}{}: count {}, interval {} ms, timeout {} ms, {} bytes",
                on(interface.as_deref()),
                p.count,
                p.interval.as_millis(),
                p.timeout.as_millis(),
                p.size
            )
        };
        let probe = self
            .admit(call, p.netns.as_ref(), p.to.to_string(), detail)
            .await?;
        let spec = PingSpec {
            netns: probe.source.file.clone(),
            netns_id: probe.source.id,
            interface,
            to: p.to,
            count: p.count,
            interval: p.interval,
            timeout: p.timeout,
            size: p.size,
        };
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(run_ping(self.ctx.clone(), probe, spec, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn arp(&self, req: Request<pb::ArpRequest>) -> Result<Response<pb::ArpResponse>, Status> {
        let call = Call::of(&req)?;
        let p = ArpProbe::try_from(req.into_inner())?;
        let detail = |from: &str| {
            format!(
                "{} from {from} on {}, timeout {} ms",
                if p.free_check {
                    "free check"
                } else {
                    "who-has"
                },
                p.interface,
                p.timeout.as_millis()
            )
        };
        let probe = self
            .admit(call, p.netns.as_ref(), p.target.to_string(), detail)
            .await?;
        let Admitted {
            call,
            target,
            detail,
            source,
            ticket,
        } = probe;
        let res = self.run_arp(&p, &source, ticket).await;
        let result = match &res {
            Ok(r) => r.verdict.clone(),
            Err(s) => format!("error: {}", s.message()),
        };
        let answered = res.as_ref().map(|r| !r.responders.is_empty());
        self.ctx.metrics.probe("arp", answered.map_err(|_| ()));
        self.ctx
            .audit
            .record(&call.who, &call.rpc.0, &target, &detail, &result);
        res.map(Response::new)
    }

    async fn tcp(&self, req: Request<pb::TcpRequest>) -> Result<Response<pb::TcpResponse>, Status> {
        let call = Call::of(&req)?;
        let p = TcpProbe::try_from(req.into_inner())?;
        let interface = p.interface.map(|i| i.to_string());
        let detail = |from: &str| {
            format!(
                "tcp connect from {from}{}, timeout {} ms",
                on(interface.as_deref()),
                p.timeout.as_millis()
            )
        };
        let probe = self
            .admit(call, p.netns.as_ref(), p.to.to_string(), detail)
            .await?;
        let spec = TcpSpec {
            netns: probe.source.file.clone(),
            netns_id: probe.source.id,
            interface,
            to: p.to,
            timeout: p.timeout,
        };
        let Admitted {
            call,
            target,
            detail,
            ticket,
            ..
        } = probe;
        let res = tcp::probe(spec, ticket).await;
        let result = match &res {
            Ok(out) => out.detail.clone(),
            Err(e) => format!("error: {e}"),
        };
        let open = res.as_ref().map(|o| o.result == TcpResult::Connected);
        self.ctx.metrics.probe("tcp", open.map_err(|_| ()));
        self.ctx
            .audit
            .record(&call.who, &call.rpc.0, &target, &detail, &result);
        let out = res.map_err(Error::from)?;
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

impl ProbeSvc {
    /// Looks the link up in the source namespace, then asks who has the
    /// address, on a thread that holds `ticket`.
    async fn run_arp(
        &self,
        p: &ArpProbe,
        source: &Source,
        ticket: Ticket,
    ) -> Result<pb::ArpResponse, Status> {
        let here: Arc<dyn NetOps>;
        let ops: &dyn NetOps = match &source.file {
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
        let before = neigh::table_fulls_now().await;
        let responders = arp::who_has(
            ArpSpec {
                netns: source.file.clone(),
                netns_id: source.id,
                link: arp::Link {
                    index: link.index,
                    mac,
                    ipv4,
                },
                target: p.target,
                timeout: p.timeout,
                free_check: p.free_check,
            },
            Some(ticket),
        )
        .await
        .map_err(Error::from)?;
        // No answer, or "free": both are what a full table fakes.
        let note = neigh::explain_silence(responders.is_empty(), before).await;
        Ok(pb::ArpResponse {
            note: note.unwrap_or_default(),
            duplicate: responders.len() > 1,
            verdict: arp::verdict(p.target, &responders, p.free_check),
            responders: responders
                .iter()
                .map(|r| pb::ArpResponder {
                    mac: r.mac.to_string(),
                    rtt_us: us(r.rtt),
                })
                .collect(),
        })
    }
}
