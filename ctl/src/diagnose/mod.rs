//! Why does (not) one endpoint reach another?
//!
//! Checks in layer order, and stops at the first layer that explains a
//! failure: the endpoints themselves (up, addressed, same network and
//! subnet), their parents and VLAN sub-interfaces, ARP (do frames get an
//! answer?), then ICMP. Interface counters read before and after the probes
//! back each verdict with numbers. One function per layer, each returning
//! the verdict that stops the diagnosis, if any.

mod verdict;

pub use verdict::{Layer, Verdict};

use ipnet::IpNet;
use linkherd_proto::{
    convert::{DecodeError, netns_to_pb},
    model::{EndpointState, Interface, LinkDetails, OperState},
    pb::{
        self, interface_service_client::InterfaceServiceClient,
        macvlan_service_client::MacvlanServiceClient, probe_service_client::ProbeServiceClient,
    },
};
use serde::Serialize;
use std::net::IpAddr;
use tonic::transport::Channel;

use crate::client::RpcError;

/// Why a diagnosis could not be made (as opposed to what it found).
#[derive(Debug, thiserror::Error)]
pub enum DiagnoseError {
    #[error("no endpoint {name} on {host}")]
    NoEndpoint { host: String, name: String },
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("the agent sent an empty response")]
    EmptyResponse,
}

impl From<tonic::Status> for DiagnoseError {
    fn from(s: tonic::Status) -> Self {
        DiagnoseError::Rpc(RpcError::from(s))
    }
}

/// One checked layer.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub layer: Layer,
    pub ok: bool,
    pub detail: String,
}

/// The steps checked, and the verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub steps: Vec<Step>,
    /// The failing layer's explanation, or "ok".
    #[serde(serialize_with = "verdict::as_text")]
    pub verdict: Verdict,
}

/// One end: an endpoint on its host, with the channel to that host.
#[derive(Debug, Clone)]
pub struct Side {
    pub host: String,
    pub name: String,
    pub channel: Channel,
    pub ep: EndpointState,
}

impl Side {
    /// Finds endpoint `name` (or `network/name`) on `host`.
    pub async fn find(channel: Channel, host: &str, name: &str) -> Result<Self, DiagnoseError> {
        let ep = find(&channel, host, name).await?;
        Ok(Self {
            host: host.to_owned(),
            name: name.to_owned(),
            channel,
            ep,
        })
    }

    fn label(&self) -> String {
        format!("{}/{}", self.host, self.name)
    }
}

async fn find(ch: &Channel, host: &str, name: &str) -> Result<EndpointState, DiagnoseError> {
    let list = MacvlanServiceClient::new(ch.clone())
        .list(pb::ListMacvlansRequest {})
        .await?
        .into_inner();
    let found = list
        .endpoints
        .into_iter()
        .find(|e| e.name == name || format!("{}/{}", e.network, e.name) == name)
        .ok_or_else(|| DiagnoseError::NoEndpoint {
            host: host.to_owned(),
            name: name.to_owned(),
        })?;
    Ok(found.try_into()?)
}

/// Runs the layers from `a` to `b` until one explains a failure.
pub async fn diagnose(a: &Side, b: &Side) -> Result<Report, DiagnoseError> {
    let mut steps = Vec::new();
    let verdict = layers(a, b, &mut steps).await?;
    Ok(Report {
        from: a.label(),
        to: b.label(),
        steps,
        verdict,
    })
}

async fn layers(a: &Side, b: &Side, steps: &mut Vec<Step>) -> Result<Verdict, DiagnoseError> {
    let stop = |r: Result<(), Verdict>| r.err();
    if let Some(v) = stop(endpoints(a, b, steps)) {
        return Ok(v);
    }
    let (src, dst) = match addresses(a, b, steps) {
        Ok(pair) => pair,
        Err(v) => return Ok(v),
    };
    if let Some(v) = stop(network(a, b, (src, dst), steps)) {
        return Ok(v);
    }
    if let Some(v) = stop(parents(a, b, steps).await?) {
        return Ok(v);
    }
    if let Some(v) = stop(arp(a, b, dst, steps).await?) {
        return Ok(v);
    }
    icmp(a, dst, steps).await
}

fn step(steps: &mut Vec<Step>, layer: Layer, ok: bool, detail: String) {
    steps.push(Step { layer, ok, detail });
}

fn state(i: &Interface) -> String {
    format!(
        "{} is {}/{}",
        i.name,
        if i.admin_up { "up" } else { "down" },
        i.oper_state.as_str()
    )
}

/// Layer 1, the endpoints themselves: administratively down is the endpoint's
/// own fault; up but without carrier points below it, at the parent.
fn endpoints(a: &Side, b: &Side, steps: &mut Vec<Step>) -> Result<(), Verdict> {
    for s in [a, b] {
        let Some(i) = &s.ep.interface else { continue };
        let detail = format!("{}: {} in {}", s.label(), state(i), s.ep.netns);
        step(steps, Layer::Endpoint, i.admin_up, detail);
        if !i.admin_up {
            return Err(Verdict::EndpointDown {
                endpoint: s.label(),
                ifname: i.name.clone(),
            });
        }
    }
    Ok(())
}

/// Layer 1b: an address on the target, and one of its family on the source.
fn addresses(a: &Side, b: &Side, steps: &mut Vec<Step>) -> Result<(IpNet, IpAddr), Verdict> {
    let Some(dst) = b.ep.addresses.first().map(|n| n.addr()) else {
        step(
            steps,
            Layer::Address,
            false,
            format!("{} has no address", b.label()),
        );
        return Err(Verdict::NoAddress {
            endpoint: b.label(),
        });
    };
    let same_family = |n: &&IpNet| n.addr().is_ipv4() == dst.is_ipv4();
    let Some(src) = a.ep.addresses.iter().find(same_family).copied() else {
        let family = if dst.is_ipv4() { "IPv4" } else { "IPv6" };
        let detail = format!("{} has no {family} address", a.label());
        step(steps, Layer::Address, false, detail);
        return Err(Verdict::NoAddressOfFamily {
            endpoint: a.label(),
            dst,
        });
    };
    step(steps, Layer::Address, true, format!("{src} -> {dst}"));
    Ok((src, dst))
}

/// Layer 1c: both on one network and subnet: otherwise only a router helps.
fn network(
    a: &Side,
    b: &Side,
    (src, dst): (IpNet, IpAddr),
    steps: &mut Vec<Step>,
) -> Result<(), Verdict> {
    if a.ep.network == b.ep.network && src.contains(&dst) {
        let detail = format!("both on {} ({})", a.ep.network, src.trunc());
        step(steps, Layer::Network, true, detail);
        return Ok(());
    }
    let detail = format!(
        "{} is on network {} ({}), {} on {} ({})",
        a.label(),
        a.ep.network,
        src.trunc(),
        b.label(),
        b.ep.network,
        dst
    );
    step(steps, Layer::Network, false, detail);
    Err(Verdict::DifferentNetworks {
        dst,
        subnet: src.trunc(),
    })
}

/// Layer 2: parents and VLAN sub-interfaces (and their lower devices) up on both
/// hosts.
async fn parents(
    a: &Side,
    b: &Side,
    steps: &mut Vec<Step>,
) -> Result<Result<(), Verdict>, DiagnoseError> {
    for s in [a, b] {
        for p in parent_chain(s).await? {
            let ok = p.admin_up && matches!(p.oper_state, OperState::Up | OperState::Unknown);
            step(
                steps,
                Layer::Parent,
                ok,
                format!("{}: {}", s.host, state(&p)),
            );
            if !ok {
                return Ok(Err(Verdict::ParentDown {
                    link: p.name.clone(),
                    host: s.host.clone(),
                }));
            }
        }
    }
    Ok(Ok(()))
}

/// An endpoint's parent, and the VLAN's lower device when the parent is a
/// VLAN.
async fn parent_chain(s: &Side) -> Result<Vec<Interface>, DiagnoseError> {
    let parent = link(&s.channel, &s.ep.parent).await?;
    let mut chain = vec![parent.clone()];
    if let (Some(LinkDetails::Vlan { .. }), Some(lower)) = (&parent.details, &parent.parent) {
        chain.push(link(&s.channel, lower).await?);
    }
    Ok(chain)
}

async fn link(ch: &Channel, name: &str) -> Result<Interface, DiagnoseError> {
    let r = InterfaceServiceClient::new(ch.clone())
        .get(pb::GetInterfaceRequest { name: name.into() })
        .await?
        .into_inner();
    Ok(r.interface
        .ok_or(DiagnoseError::EmptyResponse)?
        .try_into()?)
}

fn counters(e: &EndpointState) -> (u64, u64) {
    e.interface
        .as_ref()
        .map_or((0, 0), |i| (i.counters.tx_packets, i.counters.rx_packets))
}

/// Layer 3: ARP from `a` for `dst`, with both ends' counters before and after:
/// whether the frames arrive tells the switch from the target.
async fn arp(
    a: &Side,
    b: &Side,
    dst: IpAddr,
    steps: &mut Vec<Step>,
) -> Result<Result<(), Verdict>, DiagnoseError> {
    let (a_tx0, b_rx0) = (counters(&a.ep).0, counters(&b.ep).1);
    let arp = ProbeServiceClient::new(a.channel.clone())
        .arp(pb::ArpRequest {
            source: Some(netns_to_pb(&a.ep.netns)),
            interface: a.ep.ifname.clone(),
            address: dst.to_string(),
            timeout_ms: 1000,
            free_check: false,
        })
        .await?
        .into_inner();
    let a_tx1 = counters(&find(&a.channel, &a.host, &a.name).await?).0;
    let b_rx1 = counters(&find(&b.channel, &b.host, &b.name).await?).1;
    let evidence = format!(
        "{} sent {} frame(s), {} received {}",
        a.label(),
        a_tx1.saturating_sub(a_tx0),
        b.label(),
        b_rx1.saturating_sub(b_rx0)
    );
    let answered = !arp.responders.is_empty();
    let ok = answered && !arp.duplicate;
    step(
        steps,
        Layer::Arp,
        ok,
        format!("{}; {evidence}", arp.verdict),
    );
    Ok(match (answered, arp.duplicate) {
        (false, _) => Err(Verdict::ArpUnanswered {
            dst,
            arrived: b_rx1 > b_rx0,
        }),
        (true, true) => Err(Verdict::Duplicate(arp.verdict)),
        (true, false) => Ok(()),
    })
}

/// Layer 4: ICMP echo from `a` to `dst`.
async fn icmp(a: &Side, dst: IpAddr, steps: &mut Vec<Step>) -> Result<Verdict, DiagnoseError> {
    let mut stream = ProbeServiceClient::new(a.channel.clone())
        .ping(pb::PingRequest {
            source: Some(netns_to_pb(&a.ep.netns)),
            interface: String::new(),
            destination: dst.to_string(),
            count: 3,
            interval_ms: 200,
            timeout_ms: 1000,
            payload_size: 0,
        })
        .await?
        .into_inner();
    let mut summary = None;
    while let Some(msg) = futures::StreamExt::next(&mut stream).await {
        if let Some(pb::ping_response::Event::Summary(s)) = msg?.event {
            summary = Some(s);
        }
    }
    let s = summary.ok_or(DiagnoseError::EmptyResponse)?;
    let ok = s.received > 0;
    let detail = format!(
        "{} of {} echo requests answered, avg {:.3} ms",
        s.received,
        s.sent,
        f64::from(s.avg_us) / 1000.0
    );
    step(steps, Layer::Icmp, ok, detail);
    Ok(if ok {
        Verdict::Ok
    } else {
        Verdict::IcmpLost { dst }
    })
}
