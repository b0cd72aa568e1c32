//! Proving an applied fleet works, with the agents' own probes, from inside
//! each endpoint's namespace:
//!
//! - reach (`verify.mesh`): every endpoint asks ARP for every other
//!   endpoint of its network (across hosts) and must get the answer from
//!   that endpoint's MAC, and only from it; then ICMP echo must come back;
//! - isolation (`verify.isolation`): ARP for an endpoint of another network
//!   must go unanswered by it. This is layer 2 on purpose: separate VLANs
//!   are what isolation means here; a router between the subnets may still
//!   forward, which is not a leak;
//! - address check: an RFC 5227 probe for each endpoint's own address must
//!   get no answer (nobody else on the wire uses it).

use std::{collections::BTreeMap, net::IpAddr, time::Duration};

use futures::{StreamExt, stream};
use linkherd_proto::{
    convert::netns_to_pb,
    model::NetnsRef,
    pb::{self, probe_service_client::ProbeServiceClient},
};
use serde::Serialize;
use tonic::transport::Channel;

use crate::{error::CtlError, fleet::ENDPOINT_IFNAME, progress::Task, spec::FleetSpec};

/// Echo requests per reach probe: one lost packet is not a failure.
const PINGS: u32 = 3;
const PING_INTERVAL_MS: u32 = 50;

/// An endpoint as applied: where it lives and what the kernel gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub network: String,
    pub name: String,
    pub host: String,
    pub netns: NetnsRef,
    pub addresses: Vec<IpAddr>,
    /// As its host reports it (lower case).
    pub mac: String,
}

impl Member {
    /// `b1@no1`.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.host)
    }
}

/// The spec's endpoints as their hosts now have them (`observed`: each
/// host's GetState). Endpoints on hosts not in `observed` are left out.
pub fn members(spec: &FleetSpec, observed: &BTreeMap<String, pb::OwnedObjects>) -> Vec<Member> {
    let mut out = Vec::new();
    for (net, n) in &spec.networks {
        for (name, e) in &n.endpoints {
            let Some(state) = observed.get(&e.host) else {
                continue;
            };
            let Some(ep) = state
                .endpoints
                .iter()
                .find(|x| x.network == net.as_str() && x.name == name.as_str())
            else {
                continue;
            };
            out.push(Member {
                network: net.to_string(),
                name: name.to_string(),
                host: e.host.clone(),
                netns: e.netns.clone(),
                addresses: ep
                    .addresses
                    .iter()
                    .filter_map(|a| a.split('/').next()?.parse().ok())
                    .collect(),
                mac: ep.mac.to_ascii_lowercase(),
            });
        }
    }
    out
}

/// Endpoints of the spec on the hosts in `observed` that are not among
/// `found` (its [`members`]), as `b1@no1`: nothing can be proven about them.
pub fn missing(
    spec: &FleetSpec,
    observed: &BTreeMap<String, pb::OwnedObjects>,
    found: &[Member],
) -> Vec<String> {
    spec.networks
        .iter()
        .flat_map(|(net, n)| {
            n.endpoints
                .iter()
                .map(move |(name, e)| (net.as_str(), name.as_str(), e.host.as_str()))
        })
        .filter(|(net, name, host)| {
            observed.contains_key(*host)
                && !found
                    .iter()
                    .any(|m| m.network == *net && m.name == *name && m.host == *host)
        })
        .map(|(_, name, host)| format!("{name}@{host}"))
        .collect()
}

/// What a probe checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    Reach,
    Isolation,
    Address,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Reach => "reach",
            Check::Isolation => "isolation",
            Check::Address => "address",
        }
    }
}

/// One probe: from `members[from]`, about `address` of `members[to]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub check: Check,
    pub from: usize,
    pub to: usize,
    pub address: IpAddr,
}

/// Every probe the verification options ask for.
pub fn probes(members: &[Member], mesh: bool, isolation: bool) -> Vec<Probe> {
    let mut out = Vec::new();
    for (i, m) in members.iter().enumerate() {
        out.extend(m.addresses.iter().map(|a| Probe {
            check: Check::Address,
            from: i,
            to: i,
            address: *a,
        }));
    }
    for (i, a) in members.iter().enumerate() {
        for (j, b) in members.iter().enumerate().filter(|(j, _)| *j != i) {
            // Only addresses of a family the prober has.
            let mut targets = b
                .addresses
                .iter()
                .filter(|t| a.addresses.iter().any(|s| s.is_ipv4() == t.is_ipv4()));
            if a.network == b.network && mesh {
                out.extend(targets.map(|t| Probe {
                    check: Check::Reach,
                    from: i,
                    to: j,
                    address: *t,
                }));
            } else if a.network != b.network
                && isolation
                && let Some(t) = targets.next()
            {
                out.push(Probe {
                    check: Check::Isolation,
                    from: i,
                    to: j,
                    address: *t,
                });
            }
        }
    }
    out
}

/// One probe's result.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Outcome {
    pub check: Check,
    pub network: String,
    pub from: String,
    pub to: String,
    pub address: IpAddr,
    pub ok: bool,
    pub detail: String,
    /// Average ICMP round trip (reach probes that passed).
    pub rtt_us: Option<u32>,
}

/// Probes each agent runs at the same time. A probe mostly waits (ARP
/// collects answers for the whole timeout, to see duplicates), on one of
/// the agent's blocking threads; the agent serves up to 64 calls per
/// connection.
pub const PROBES_PER_HOST: usize = 32;

/// Runs every probe through the agent of the prober's host, all hosts at
/// once and [`PROBES_PER_HOST`] at a time on each, `task` counting them.
/// Outcomes come in the order of `probes`.
pub async fn run(
    members: &[Member],
    probes: &[Probe],
    channels: &BTreeMap<String, Channel>,
    timeout: Duration,
    task: &Task,
) -> Vec<Outcome> {
    let mut by_host: BTreeMap<&str, Vec<(usize, &Probe)>> = BTreeMap::new();
    for (i, p) in probes.iter().enumerate() {
        by_host
            .entry(members[p.from].host.as_str())
            .or_default()
            .push((i, p));
    }
    let hosts = by_host.into_values().map(|list| {
        stream::iter(list)
            .map(|(i, p)| async move { (i, run_probe(members, p, channels, timeout, task).await) })
            .buffer_unordered(PROBES_PER_HOST)
            .collect::<Vec<_>>()
    });
    let mut all: Vec<(usize, Outcome)> = futures::future::join_all(hosts)
        .await
        .into_iter()
        .flatten()
        .collect();
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, o)| o).collect()
}

async fn run_probe(
    members: &[Member],
    p: &Probe,
    channels: &BTreeMap<String, Channel>,
    timeout: Duration,
    task: &Task,
) -> Outcome {
    let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
    let (from, to) = (&members[p.from], &members[p.to]);
    let res = match channels.get(&from.host) {
        Some(ch) => run_one(ch.clone(), p, from, to, timeout_ms).await,
        None => Err(CtlError::Output(format!("no connection to {}", from.host))),
    };
    task.inc();
    let (ok, detail, rtt_us) = match res {
        Ok(v) => v,
        Err(e) => (false, format!("probe failed: {e}"), None),
    };
    Outcome {
        check: p.check,
        network: from.network.clone(),
        from: from.label(),
        to: to.label(),
        address: p.address,
        ok,
        detail,
        rtt_us,
    }
}

type Verdict = (bool, String, Option<u32>);

async fn run_one(
    ch: Channel,
    p: &Probe,
    from: &Member,
    to: &Member,
    timeout_ms: u32,
) -> Result<Verdict, CtlError> {
    let mut client = ProbeServiceClient::new(ch);
    let source = Some(netns_to_pb(&from.netns));
    let arp = client
        .arp(pb::ArpRequest {
            source: source.clone(),
            interface: ENDPOINT_IFNAME.into(),
            address: p.address.to_string(),
            timeout_ms,
            free_check: p.check == Check::Address,
        })
        .await?
        .into_inner();
    let macs: Vec<String> = arp
        .responders
        .iter()
        .map(|r| r.mac.to_ascii_lowercase())
        .collect();
    let by_target = macs.contains(&to.mac);
    match p.check {
        Check::Address => Ok(if macs.is_empty() {
            (true, "free".into(), None)
        } else {
            (
                false,
                format!(
                    "{} of {} is also answered for by {}",
                    p.address,
                    from.label(),
                    macs.join(", ")
                ),
                None,
            )
        }),
        Check::Isolation => Ok(if by_target {
            (
                false,
                format!(
                    "{} ({}) answered ARP for {} from {} of network {}: the networks share a link",
                    to.label(),
                    to.network,
                    p.address,
                    from.label(),
                    from.network
                ),
                None,
            )
        } else {
            (true, "isolated".into(), None)
        }),
        Check::Reach if macs.is_empty() => Ok((
            false,
            format!("no ARP answer for {} within {timeout_ms} ms", p.address),
            None,
        )),
        Check::Reach if !by_target || macs.len() > 1 => Ok((
            false,
            format!(
                "{} answered ARP for {} where only {} ({}) should: {}",
                macs.join(", "),
                p.address,
                to.label(),
                to.mac,
                if by_target {
                    "the address is used twice"
                } else {
                    "another machine has the address"
                }
            ),
            None,
        )),
        Check::Reach => ping(&mut client, source, p.address, timeout_ms).await,
    }
}

async fn ping(
    client: &mut ProbeServiceClient<Channel>,
    source: Option<pb::NetnsTarget>,
    to: IpAddr,
    timeout_ms: u32,
) -> Result<Verdict, CtlError> {
    let mut replies = client
        .ping(pb::PingRequest {
            source,
            interface: ENDPOINT_IFNAME.into(),
            destination: to.to_string(),
            count: PINGS,
            interval_ms: PING_INTERVAL_MS,
            timeout_ms,
            payload_size: 0,
        })
        .await?
        .into_inner();
    let mut summary = None;
    while let Some(ev) = replies.next().await {
        if let Some(pb::ping_response::Event::Summary(s)) = ev?.event {
            summary = Some(s);
        }
    }
    let s = summary.ok_or(CtlError::EmptyResponse)?;
    Ok(if s.received > 0 {
        (
            true,
            format!("{}/{} echo replies", s.received, s.sent),
            Some(s.avg_us),
        )
    } else {
        (
            false,
            format!("ARP answered but no ICMP echo reply ({} sent)", s.sent),
            None,
        )
    })
}

/// The reachability matrix: a row per prober, a column per target; `ok`
/// with the round trip, `isolated`, `FAIL`/`LEAK`, `-` for itself and `.`
/// where nothing was asked; then the address checks and every failure.
pub fn render(members: &[Member], outcomes: &[Outcome]) -> String {
    let mut t = crate::output::table();
    let mut header = vec!["network".to_owned(), "from \\ to".to_owned()];
    header.extend(members.iter().map(Member::label));
    t.set_header(header);
    for a in members {
        let mut row = vec![a.network.clone(), a.label()];
        for b in members {
            row.push(cell(a, b, outcomes));
        }
        t.add_row(row);
    }
    let mut out = vec![t.to_string()];
    let addr: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.check == Check::Address)
        .collect();
    if !addr.is_empty() {
        let free = addr.iter().filter(|o| o.ok).count();
        out.push(format!(
            "address check (RFC 5227): {free} of {} address(es) used only by their endpoint",
            addr.len()
        ));
    }
    for o in outcomes.iter().filter(|o| !o.ok) {
        out.push(format!(
            "FAILED {} {} -> {} ({}): {}",
            o.check.as_str(),
            o.from,
            o.to,
            o.address,
            o.detail
        ));
    }
    out.join("\n")
}

fn cell(a: &Member, b: &Member, outcomes: &[Outcome]) -> String {
    if a == b {
        return "-".into();
    }
    let mine: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.check != Check::Address && o.from == a.label() && o.to == b.label())
        .collect();
    match mine.first().map(|o| o.check) {
        None => ".".into(),
        Some(Check::Isolation) if mine.iter().all(|o| o.ok) => "isolated".into(),
        Some(Check::Isolation) => "LEAK".into(),
        Some(_) if mine.iter().all(|o| o.ok) => {
            let rtts: Vec<u32> = mine.iter().filter_map(|o| o.rtt_us).collect();
            let avg = rtts.iter().map(|r| f64::from(*r)).sum::<f64>() / rtts.len().max(1) as f64;
            format!("ok {:.2}ms", avg / 1000.0)
        }
        Some(_) => "FAIL".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(network: &str, name: &str, host: &str, addrs: &[&str]) -> Member {
        Member {
            network: network.into(),
            name: name.into(),
            host: host.into(),
            netns: NetnsRef::Named(name.into()),
            addresses: addrs.iter().map(|a| a.parse().expect("ip")).collect(),
            mac: format!("02:00:00:00:00:{:02x}", name.len()),
        }
    }

    fn seed() -> Vec<Member> {
        vec![
            member("mac_net10", "b1", "no1", &["172.16.10.10"]),
            member("mac_net10", "b3", "no2", &["172.16.10.11", "fd00::11"]),
            member("mac_net20", "b2", "no1", &["172.16.20.10"]),
        ]
    }

    #[test]
    fn mesh_within_networks_isolation_across_and_an_address_check_each() {
        let m = seed();
        let p = probes(&m, true, true);
        let summary: Vec<(Check, usize, usize, String)> = p
            .iter()
            .map(|p| (p.check, p.from, p.to, p.address.to_string()))
            .collect();
        assert_eq!(
            summary,
            [
                (Check::Address, 0, 0, "172.16.10.10".into()),
                (Check::Address, 1, 1, "172.16.10.11".into()),
                (Check::Address, 1, 1, "fd00::11".into()),
                (Check::Address, 2, 2, "172.16.20.10".into()),
                // b1 has no IPv6: it probes b3's IPv4 only.
                (Check::Reach, 0, 1, "172.16.10.11".into()),
                (Check::Isolation, 0, 2, "172.16.20.10".into()),
                (Check::Reach, 1, 0, "172.16.10.10".into()),
                (Check::Isolation, 1, 2, "172.16.20.10".into()),
                (Check::Isolation, 2, 0, "172.16.10.10".into()),
                (Check::Isolation, 2, 1, "172.16.10.11".into()),
            ]
        );
        assert!(
            probes(&m, false, false)
                .iter()
                .all(|p| p.check == Check::Address)
        );
    }

    fn outcome(check: Check, from: &Member, to: &Member, ok: bool, rtt: Option<u32>) -> Outcome {
        Outcome {
            check,
            network: from.network.clone(),
            from: from.label(),
            to: to.label(),
            address: to.addresses[0],
            ok,
            detail: if ok {
                "fine".into()
            } else {
                "no ARP answer".into()
            },
            rtt_us: rtt,
        }
    }

    #[test]
    fn missing_endpoints_are_those_their_reachable_host_lacks() {
        let spec = FleetSpec::parse(
            "hosts:\n  no1: {address: https://a:1, parent: ens192}\n  no2: {address: https://b:1, parent: eth0}\n\
             networks:\n  n:\n    subnet: 10.0.0.0/24\n    endpoints:\n      b1: {host: no1}\n      \
             b2: {host: no1}\n      b3: {host: no2}\n",
            "t.yaml",
        )
        .expect("spec");
        let b1 = pb::MacvlanEndpoint {
            network: "n".into(),
            name: "b1".into(),
            addresses: vec!["10.0.0.2/24".into()],
            mac: "02:00:00:00:00:01".into(),
            ..Default::default()
        };
        // no2 was not read (skipped): b3 is not counted missing.
        let observed = BTreeMap::from([(
            "no1".to_owned(),
            pb::OwnedObjects {
                endpoints: vec![b1],
                ..Default::default()
            },
        )]);
        let m = members(&spec, &observed);
        assert_eq!(missing(&spec, &observed, &m), ["b2@no1"]);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].addresses, ["10.0.0.2".parse::<IpAddr>().expect("ip")]);
    }

    #[test]
    fn the_matrix_shows_each_pair_and_lists_failures() {
        let m = seed();
        let o = vec![
            outcome(Check::Address, &m[0], &m[0], true, None),
            outcome(Check::Reach, &m[0], &m[1], true, Some(610)),
            outcome(Check::Reach, &m[1], &m[0], false, None),
            outcome(Check::Isolation, &m[0], &m[2], true, None),
            outcome(Check::Isolation, &m[2], &m[0], false, None),
        ];
        let text = render(&m, &o);
        let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
        assert_eq!(
            lines,
            [
                " network    from \\ to  b1@no1  b3@no2     b2@no1",
                " mac_net10  b1@no1     -       ok 0.61ms  isolated",
                " mac_net10  b3@no2     FAIL    -          .",
                " mac_net20  b2@no1     LEAK    .          -",
                "address check (RFC 5227): 1 of 1 address(es) used only by their endpoint",
                "FAILED reach b3@no2 -> b1@no1 (172.16.10.10): no ARP answer",
                "FAILED isolation b2@no1 -> b1@no1 (172.16.10.10): no ARP answer",
            ]
        );
    }
}
