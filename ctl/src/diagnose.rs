//! `linkherdctl probe diagnose`: why does (not) one endpoint reach another?
//!
//! Checks in layer order, and stops at the first layer that explains a
//! failure: the endpoints themselves (up, addressed, same network and
//! subnet), their parents and VLAN sub-interfaces, ARP (do frames get an
//! answer?), then ICMP. Interface counters read before and after the probes
//! back each verdict with numbers.

use std::process::ExitCode;

use linkherd_proto::{
    convert::netns_to_pb,
    model::{EndpointState, Interface, LinkDetails, OperState},
    pb::{
        self, interface_service_client::InterfaceServiceClient,
        macvlan_service_client::MacvlanServiceClient, probe_service_client::ProbeServiceClient,
    },
};
use serde::Serialize;
use tonic::transport::Channel;

use crate::{cli::Ctx, config::Selection, error::CtlError, output};

/// One checked layer.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub layer: &'static str,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub steps: Vec<Step>,
    /// The failing layer, or "ok".
    pub verdict: String,
}

#[derive(Debug)]
struct Side {
    host: String,
    name: String,
    ch: Channel,
    ep: EndpointState,
}

fn split(s: &str) -> Result<(String, String), CtlError> {
    s.split_once('/')
        .map(|(h, e)| (h.to_owned(), e.to_owned()))
        .filter(|(h, e)| !h.is_empty() && !e.is_empty())
        .ok_or_else(|| CtlError::Output(format!("{s:?} is not HOST/ENDPOINT, e.g. no1/b1")))
}

async fn side(ctx: &Ctx, spec: &str) -> Result<Side, CtlError> {
    let (host, name) = split(spec)?;
    let sel = Selection {
        host: Some(host.clone()),
        agent: None,
        ..ctx.selection.clone()
    };
    let (target, _) = sel.resolve()?;
    let ch = target.connect().await?;
    let ep = find(&ch, &host, &name).await?;
    Ok(Side { host, name, ch, ep })
}

async fn find(ch: &Channel, host: &str, name: &str) -> Result<EndpointState, CtlError> {
    let list = MacvlanServiceClient::new(ch.clone())
        .list(pb::ListMacvlansRequest {})
        .await?
        .into_inner();
    let found = list
        .endpoints
        .into_iter()
        .find(|e| e.name == name || format!("{}/{}", e.network, e.name) == name)
        .ok_or_else(|| CtlError::Output(format!("no endpoint {name} on {host}")))?;
    Ok(found.try_into()?)
}

async fn link(ch: &Channel, name: &str) -> Result<Interface, CtlError> {
    let r = InterfaceServiceClient::new(ch.clone())
        .get(pb::GetInterfaceRequest { name: name.into() })
        .await?
        .into_inner();
    crate::cli::decode_interface(r.interface)
}

fn up(i: &Interface) -> bool {
    i.admin_up && matches!(i.oper_state, OperState::Up | OperState::Unknown)
}

fn state(i: &Interface) -> String {
    format!(
        "{} is {}/{}",
        i.name,
        if i.admin_up { "up" } else { "down" },
        i.oper_state.as_str()
    )
}

/// The parent chain of an endpoint on its host: parent, and the VLAN's
/// lower device when the parent is a VLAN.
async fn parents(s: &Side) -> Result<Vec<Interface>, CtlError> {
    let parent = link(&s.ch, &s.ep.parent).await?;
    let mut chain = vec![parent.clone()];
    if let (Some(LinkDetails::Vlan { .. }), Some(lower)) = (&parent.details, &parent.parent) {
        chain.push(link(&s.ch, lower).await?);
    }
    Ok(chain)
}

fn counters(e: &EndpointState) -> (u64, u64) {
    e.interface
        .as_ref()
        .map_or((0, 0), |i| (i.counters.tx_packets, i.counters.rx_packets))
}

/// Runs the diagnosis and prints it; exit status 0 only when `from` reaches `to`.
pub async fn run(ctx: &Ctx, from: &str, to: &str) -> Result<ExitCode, CtlError> {
    let a = side(ctx, from).await?;
    let b = side(ctx, to).await?;
    let report = diagnose(&a, &b).await?;
    output::print(ctx.format, &report, |r| {
        let mut out: Vec<String> = r
            .steps
            .iter()
            .map(|s| {
                format!(
                    "{} {:<10} {}",
                    if s.ok { "ok  " } else { "FAIL" },
                    s.layer,
                    s.detail
                )
            })
            .collect();
        out.push(format!("verdict: {}", r.verdict));
        out.join("\n")
    })?;
    Ok(if report.verdict == "ok" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn diagnose(a: &Side, b: &Side) -> Result<Report, CtlError> {
    let mut steps = Vec::new();
    let report = |steps: Vec<Step>, verdict: String| Report {
        from: format!("{}/{}", a.host, a.name),
        to: format!("{}/{}", b.host, b.name),
        steps,
        verdict,
    };

    // 1. The endpoints themselves.
    for s in [a, b] {
        let Some(i) = &s.ep.interface else { continue };
        // Administratively down is the endpoint's own fault; up but without
        // carrier points below it, at the parent, checked next.
        let ok = i.admin_up;
        steps.push(Step {
            layer: "endpoint",
            ok,
            detail: format!("{}/{}: {} in {}", s.host, s.name, state(i), s.ep.netns),
        });
        if !ok {
            return Ok(report(
                steps,
                format!(
                    "endpoint {}/{} is down: bring {} up",
                    s.host, s.name, i.name
                ),
            ));
        }
    }
    let Some(dst) = b.ep.addresses.first().map(|n| n.addr()) else {
        steps.push(Step {
            layer: "address",
            ok: false,
            detail: format!("{}/{} has no address", b.host, b.name),
        });
        return Ok(report(
            steps,
            format!("endpoint {}/{} has no address", b.host, b.name),
        ));
    };
    let Some(src) =
        a.ep.addresses
            .iter()
            .find(|n| n.addr().is_ipv4() == dst.is_ipv4())
    else {
        steps.push(Step {
            layer: "address",
            ok: false,
            detail: format!(
                "{}/{} has no {} address",
                a.host,
                a.name,
                if dst.is_ipv4() { "IPv4" } else { "IPv6" }
            ),
        });
        return Ok(report(
            steps,
            format!(
                "endpoint {}/{} has no address of {dst}'s family",
                a.host, a.name
            ),
        ));
    };
    steps.push(Step {
        layer: "address",
        ok: true,
        detail: format!("{src} -> {dst}"),
    });
    if a.ep.network != b.ep.network || !src.contains(&dst) {
        let detail = format!(
            "{}/{} is on network {} ({}), {}/{} on {} ({})",
            a.host,
            a.name,
            a.ep.network,
            src.trunc(),
            b.host,
            b.name,
            b.ep.network,
            dst
        );
        steps.push(Step {
            layer: "network",
            ok: false,
            detail,
        });
        return Ok(report(
            steps,
            format!(
                "the endpoints are on different networks: {dst} is not in {}; they need a router between them, or the same network",
                src.trunc()
            ),
        ));
    }
    steps.push(Step {
        layer: "network",
        ok: true,
        detail: format!("both on {} ({})", a.ep.network, src.trunc()),
    });

    // 2. Parents and VLAN sub-interfaces on both hosts.
    for s in [a, b] {
        for p in parents(s).await? {
            let ok = up(&p);
            steps.push(Step {
                layer: "parent",
                ok,
                detail: format!("{}: {}", s.host, state(&p)),
            });
            if !ok {
                return Ok(report(
                    steps,
                    format!("{} on {} is down: bring it up", p.name, s.host),
                ));
            }
        }
    }

    // 3. ARP, with counters before and after.
    let (a_tx0, _) = counters(&a.ep);
    let (_, b_rx0) = counters(&b.ep);
    let mut probe = ProbeServiceClient::new(a.ch.clone());
    let source = Some(netns_to_pb(&a.ep.netns));
    let arp = probe
        .arp(pb::ArpRequest {
            source: source.clone(),
            interface: a.ep.ifname.clone(),
            address: dst.to_string(),
            timeout_ms: 1000,
            free_check: false,
        })
        .await?
        .into_inner();
    let a2 = find(&a.ch, &a.host, &a.name).await?;
    let b2 = find(&b.ch, &b.host, &b.name).await?;
    let (a_tx1, _) = counters(&a2);
    let (_, b_rx1) = counters(&b2);
    let evidence = format!(
        "{}/{} sent {} frame(s), {}/{} received {}",
        a.host,
        a.name,
        a_tx1.saturating_sub(a_tx0),
        b.host,
        b.name,
        b_rx1.saturating_sub(b_rx0)
    );
    if arp.responders.is_empty() {
        steps.push(Step {
            layer: "arp",
            ok: false,
            detail: format!("{}; {evidence}", arp.verdict),
        });
        let why = if b_rx1 > b_rx0 {
            "the request arrived but nothing answered: check the target's address and mode"
                .to_owned()
        } else {
            "the frames leave but never arrive: the switch or hypervisor drops frames from unknown MACs (enable promiscuous mode / \"forged transmits\" on the port), or the VLAN is not trunked to both hosts".to_owned()
        };
        return Ok(report(steps, format!("ARP for {dst} is unanswered: {why}")));
    }
    steps.push(Step {
        layer: "arp",
        ok: !arp.duplicate,
        detail: format!("{}; {evidence}", arp.verdict),
    });
    if arp.duplicate {
        return Ok(report(steps, arp.verdict));
    }

    // 4. ICMP.
    let mut stream = probe
        .ping(pb::PingRequest {
            source,
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
    let s = summary.ok_or(CtlError::EmptyResponse)?;
    let ok = s.received > 0;
    steps.push(Step {
        layer: "icmp",
        ok,
        detail: format!(
            "{} of {} echo requests answered, avg {:.3} ms",
            s.received,
            s.sent,
            f64::from(s.avg_us) / 1000.0
        ),
    });
    if !ok {
        return Ok(report(
            steps,
            format!(
                "ARP is answered but ICMP to {dst} is lost: something filters it (firewall in the namespace or on the path)"
            ),
        ));
    }
    Ok(report(steps, "ok".into()))
}
