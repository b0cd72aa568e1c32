//! Which probes prove a fleet: the spec's endpoints as their hosts have
//! them ([`members`]), the ones missing ([`missing`]), and the probes the
//! verification options ask for between them ([`probes`]). Pure: nothing
//! here talks to an agent.

use std::{collections::BTreeMap, net::IpAddr};

use linkherd_proto::{model::NetnsRef, pb};
use serde::Serialize;

use crate::spec::FleetSpec;

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
}
