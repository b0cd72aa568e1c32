//! Which probes prove a fleet: the spec's endpoints as their hosts have
//! them ([`members`]), the ones missing ([`missing`]), and the probes the
//! verification options ask for between them ([`probes`]). Pure: nothing
//! here talks to an agent.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use ipnet::IpNet;
use linkherd_proto::model::{Attachment, NetnsRef, OwnedObjects};
use serde::Serialize;

use crate::{
    fleet::{ENDPOINT_IFNAME, attached},
    spec::{FleetSpec, VerifyMode},
};

/// An endpoint as applied, or a container as attached: where it lives and
/// what the kernel gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub network: String,
    /// The endpoint's name, or the container's `CID/IFNAME`.
    pub name: String,
    pub host: String,
    pub netns: NetnsRef,
    /// Its interface inside `netns`.
    pub ifname: String,
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
pub fn members(spec: &FleetSpec, observed: &BTreeMap<String, OwnedObjects>) -> Vec<Member> {
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
                ifname: ENDPOINT_IFNAME.to_owned(),
                addresses: ep.addresses.iter().map(IpNet::addr).collect(),
                mac: ep.mac.map(|m| m.to_string()).unwrap_or_default(),
            });
        }
    }
    out
}

/// The containers attached to the spec's networks (`attached`: each host's
/// List), as members to probe like endpoints, named `CONTAINER_ID/IFNAME`. Stale ones (their namespace
/// is gone) cannot be probed from and are left out; `status` names them.
pub fn container_members(
    spec: &FleetSpec,
    attached: &BTreeMap<String, Vec<Attachment>>,
) -> Vec<Member> {
    attached
        .iter()
        .flat_map(|(host, list)| {
            attached::of_spec(spec, list)
                .filter(|a| !a.stale)
                .map(move |a| Member {
                    network: a.network.clone(),
                    // The whole id: two containers whose ids share 12
                    // characters must stay two members of the matrix.
                    name: format!("{}/{}", a.container_id, a.inside()),
                    host: host.clone(),
                    netns: NetnsRef::Path(a.netns.clone().into()),
                    ifname: a.inside().to_owned(),
                    addresses: a.addresses.iter().map(IpNet::addr).collect(),
                    mac: a.mac.to_string(),
                })
        })
        .collect()
}

/// Endpoints of the spec on the hosts in `observed` that are not among
/// `found` (its [`members`]), as `b1@no1`: nothing can be proven about them.
pub fn missing(
    spec: &FleetSpec,
    observed: &BTreeMap<String, OwnedObjects>,
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

/// Every probe the verification options ask for: an address check of every
/// address; with `reach`, reach probes within each network; with
/// `isolation`, isolation probes across networks — all pairs in `Mesh`
/// mode, the deterministic sample of [`VerifyMode::Sampled`] otherwise.
pub fn probes(members: &[Member], reach: bool, isolation: bool, mode: VerifyMode) -> Vec<Probe> {
    let mut out = Vec::new();
    for (i, m) in members.iter().enumerate() {
        out.extend(m.addresses.iter().map(|a| Probe {
            check: Check::Address,
            from: i,
            to: i,
            address: *a,
        }));
    }
    match mode {
        VerifyMode::Mesh => out.extend(mesh(members, reach, isolation)),
        VerifyMode::Sampled => {
            if reach {
                out.extend(sampled_reach(members));
            }
            if isolation {
                out.extend(sampled_isolation(members));
            }
        }
    }
    out
}

/// The addresses of `to` in the families `from` has.
fn targets<'a>(from: &'a Member, to: &'a Member) -> impl Iterator<Item = &'a IpAddr> + 'a {
    to.addresses
        .iter()
        .filter(|t| from.addresses.iter().any(|s| s.is_ipv4() == t.is_ipv4()))
}

fn reach_probes(members: &[Member], from: usize, to: usize) -> impl Iterator<Item = Probe> + '_ {
    targets(&members[from], &members[to]).map(move |t| Probe {
        check: Check::Reach,
        from,
        to,
        address: *t,
    })
}

fn isolation_probe(members: &[Member], from: usize, to: usize) -> Option<Probe> {
    targets(&members[from], &members[to]).next().map(|t| Probe {
        check: Check::Isolation,
        from,
        to,
        address: *t,
    })
}

/// Every ordered pair: reach within a network, isolation across.
fn mesh(members: &[Member], reach: bool, isolation: bool) -> Vec<Probe> {
    let mut out = Vec::new();
    for (i, a) in members.iter().enumerate() {
        for (j, b) in members.iter().enumerate().filter(|(j, _)| *j != i) {
            if a.network == b.network && reach {
                out.extend(reach_probes(members, i, j));
            } else if a.network != b.network && isolation {
                out.extend(isolation_probe(members, i, j));
            }
        }
    }
    out
}

/// Member indices by network, each network's by host (both sorted).
fn by_network_and_host(members: &[Member]) -> BTreeMap<&str, BTreeMap<&str, Vec<usize>>> {
    let mut out: BTreeMap<&str, BTreeMap<&str, Vec<usize>>> = BTreeMap::new();
    for (i, m) in members.iter().enumerate() {
        out.entry(&m.network)
            .or_default()
            .entry(&m.host)
            .or_default()
            .push(i);
    }
    out
}

/// Per network: one probe for every pair of its hosts (the direction
/// alternating, the endpoints on each host taking turns), then one from
/// every endpoint not yet probing, to an endpoint of the next host (or of
/// its own host when the network has one). Deterministic.
fn sampled_reach(members: &[Member]) -> Vec<Probe> {
    let mut out = Vec::new();
    for hosts in by_network_and_host(members).values() {
        let hosts: Vec<&Vec<usize>> = hosts.values().collect();
        let (mut sent, mut got) = (vec![0; hosts.len()], vec![0; hosts.len()]);
        let mut probing = BTreeSet::new();
        for a in 0..hosts.len() {
            for b in a + 1..hosts.len() {
                let (src, dst) = if (a + b) % 2 == 0 { (a, b) } else { (b, a) };
                let from = hosts[src][sent[src] % hosts[src].len()];
                let to = hosts[dst][got[dst] % hosts[dst].len()];
                sent[src] += 1;
                got[dst] += 1;
                out.extend(reach_probes(members, from, to));
                probing.insert(from);
            }
        }
        for (h, list) in hosts.iter().enumerate() {
            for (k, &from) in list.iter().enumerate() {
                let peers = if hosts.len() > 1 {
                    hosts[(h + 1) % hosts.len()]
                } else {
                    *list
                };
                let to = peers[(k + 1) % peers.len()];
                if to != from && probing.insert(from) {
                    out.extend(reach_probes(members, from, to));
                }
            }
        }
    }
    out
}

/// Every endpoint against one endpoint of every other network, the
/// targets taking turns (and on another host when there is one).
fn sampled_isolation(members: &[Member]) -> Vec<Probe> {
    let nets = by_network_and_host(members);
    let hosts: BTreeMap<&str, Vec<(&str, &Vec<usize>)>> = nets
        .iter()
        .map(|(n, h)| (*n, h.iter().map(|(k, v)| (*k, v)).collect()))
        .collect();
    let mut out = Vec::new();
    for (i, m) in members.iter().enumerate() {
        for list in hosts
            .iter()
            .filter(|(n, _)| **n != m.network.as_str())
            .map(|(_, l)| l)
        {
            // A host in turn, the next one if it is the prober's own (when
            // there is another), then an endpoint of it in turn: constant
            // work per probe.
            let mut h = i % list.len();
            if list[h].0 == m.host && list.len() > 1 {
                h = (h + 1) % list.len();
            }
            let on = list[h].1;
            out.extend(isolation_probe(members, i, on[(i / list.len()) % on.len()]));
        }
    }
    out
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
            ifname: "eth0".into(),
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
        let p = probes(&m, true, true, VerifyMode::Mesh);
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
            probes(&m, false, false, VerifyMode::Mesh)
                .iter()
                .all(|p| p.check == Check::Address)
        );
    }

    /// `n` hosts with `per` endpoints of one network each.
    fn fleet(network: &str, n: usize, per: usize, base: u8) -> Vec<Member> {
        (0..n)
            .flat_map(|h| {
                (0..per).map(move |e| {
                    let ip = format!("10.{base}.{}.{}", h / 200, (h % 200) * per + e + 1);
                    member(network, &format!("e{h}-{e}"), &format!("h{h:03}"), &[&ip])
                })
            })
            .collect()
    }

    #[test]
    fn the_sampled_plan_covers_every_pair_of_hosts_and_every_endpoint() {
        let (hosts, per) = (100, 2);
        let m = fleet("n", hosts, per, 1);
        let p = probes(&m, true, false, VerifyMode::Sampled);
        let reach: Vec<&Probe> = p.iter().filter(|p| p.check == Check::Reach).collect();
        let mut pairs = BTreeSet::new();
        for r in &reach {
            let (a, b) = (&m[r.from].host, &m[r.to].host);
            assert_ne!(a, b, "a same-host probe where other hosts exist");
            pairs.insert(if a < b { (a, b) } else { (b, a) });
        }
        assert_eq!(pairs.len(), hosts * (hosts - 1) / 2, "every pair of hosts");
        let probing: BTreeSet<usize> = reach.iter().map(|r| r.from).collect();
        assert_eq!(probing.len(), m.len(), "every endpoint probes");
        assert!(
            reach.len() <= hosts * (hosts - 1) / 2 + m.len(),
            "{}",
            reach.len()
        );
        let mesh = probes(&m, true, false, VerifyMode::Mesh);
        assert_eq!(
            mesh.iter().filter(|p| p.check == Check::Reach).count(),
            200 * 199
        );
        assert_eq!(
            p,
            probes(&m, true, false, VerifyMode::Sampled),
            "deterministic"
        );
    }

    #[test]
    fn a_network_on_one_host_still_probes_each_endpoint() {
        let m = fleet("n", 1, 3, 1);
        let p = probes(&m, true, false, VerifyMode::Sampled);
        let pairs: Vec<(usize, usize)> = p
            .iter()
            .filter(|p| p.check == Check::Reach)
            .map(|p| (p.from, p.to))
            .collect();
        assert_eq!(pairs, [(0, 1), (1, 2), (2, 0)]);
    }

    #[test]
    fn sampled_isolation_tests_each_endpoint_against_every_other_network() {
        let mut m = fleet("a", 10, 2, 1);
        m.extend(fleet("b", 10, 2, 2));
        m.extend(fleet("c", 3, 1, 3));
        let p = probes(&m, false, true, VerifyMode::Sampled);
        assert!(p.iter().all(|p| p.check != Check::Reach));
        for (i, me) in m.iter().enumerate() {
            let mine: Vec<&Probe> = p
                .iter()
                .filter(|p| p.check == Check::Isolation && p.from == i)
                .collect();
            let nets: BTreeSet<&str> = mine.iter().map(|p| m[p.to].network.as_str()).collect();
            assert_eq!(mine.len(), 2, "{}", me.label());
            assert!(!nets.contains(me.network.as_str()) && nets.len() == 2);
            assert!(
                mine.iter().all(|p| m[p.to].host != me.host),
                "{}",
                me.label()
            );
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
        let b1 = linkherd_proto::model::EndpointState {
            network: "n".into(),
            name: "b1".into(),
            parent: "ens192".into(),
            mode: linkherd_proto::model::MacvlanMode::Bridge,
            netns: NetnsRef::Named("b1".into()),
            ifname: "eth0".into(),
            addresses: vec!["10.0.0.2/24".parse().expect("cidr")],
            gateway: None,
            mac: Some("02:00:00:00:00:01".parse().expect("mac")),
            mtu: 1500,
            source_macs: vec![],
            owned: true,
            parent_created: false,
            netns_created: true,
            interface: None,
        };
        // no2 was not read (skipped): b3 is not counted missing.
        let observed = BTreeMap::from([(
            "no1".to_owned(),
            OwnedObjects {
                endpoints: vec![b1],
                ..Default::default()
            },
        )]);
        let m = members(&spec, &observed);
        assert_eq!(missing(&spec, &observed, &m), ["b2@no1"]);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].addresses, ["10.0.0.2".parse::<IpAddr>().expect("ip")]);
        assert_eq!(m[0].mac, "02:00:00:00:00:01");
    }

    #[test]
    fn live_containers_of_the_specs_networks_are_members_probed_in_their_namespace() {
        let spec = FleetSpec::parse(
            "hosts:\n  no1: {address: https://a:1, parent: ens192}\n\
             networks:\n  n:\n    subnet: 10.0.0.0/24\n    containers: {block: 28}\n",
            "t.yaml",
        )
        .expect("spec");
        let att = |network: &str, id: &str, stale: bool| Attachment {
            network: network.into(),
            container_id: id.into(),
            ifname: "net1".into(),
            netns: format!("/run/netns/cni-{id}"),
            mac: "02:AA:00:00:00:01".parse().expect("mac"),
            addresses: vec!["10.0.0.17/24".parse().expect("cidr")],
            gateways: vec![],
            parent: "ens192".into(),
            mtu: None,
            stale,
            inside: None,
        };
        let attached = BTreeMap::from([(
            "no1".to_owned(),
            vec![
                att("n", "0123456789abcdef", false),
                att("n", "gone", true),
                att("other", "theirs", false),
            ],
        )]);
        let m = container_members(&spec, &attached);
        assert_eq!(
            m,
            [Member {
                network: "n".into(),
                name: "0123456789abcdef/net1".into(),
                host: "no1".into(),
                netns: NetnsRef::Path("/run/netns/cni-0123456789abcdef".into()),
                ifname: "net1".into(),
                addresses: vec!["10.0.0.17".parse().expect("ip")],
                mac: "02:aa:00:00:00:01".into(),
            }]
        );
    }
}
