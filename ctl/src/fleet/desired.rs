//! From a fleet spec to what each host should have: addresses assigned by
//! the fleet IPAM, VLAN sub-interfaces on each host's own parent NIC,
//! endpoints and host-access links. The result is what `HostService.Plan`
//! and `Apply` take, one [`Desired`] per host.

use std::{collections::BTreeMap, net::IpAddr};

use ipnet::IpNet;
use linkherd_proto::model::{
    CatalogNetwork, CatalogPool, Desired, EndpointSpec, Excluded, HostAccessSpec, IfName, NetnsRef,
    ValidationError, VlanProtocol, VlanSpec, default_host_access_name, default_vlan_name,
};

use crate::{
    ipam::{
        self, IpamError, Pool, Want,
        blocks::{self, BlockError, BlockPlan, Held},
    },
    spec::{FleetSpec, NetworkSpec},
};

/// The interface name endpoints get inside their namespace.
pub const ENDPOINT_IFNAME: &str = "eth0";

/// What the fleet has now, as far as addresses go (read from the agents:
/// they are the truth, there is no database).
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Addresses the spec's endpoints have now, by network and endpoint.
    pub endpoints: BTreeMap<(String, String), Vec<IpAddr>>,
    /// Addresses in use by anything else, with a description of the user
    /// (`no2/mac_net10/old` or `no1 lh-mac_net10`).
    pub others: BTreeMap<IpAddr, String>,
    /// The container blocks each host's catalog holds, by network and host.
    pub blocks: BTreeMap<(String, String), Vec<IpNet>>,
    /// The addresses containers are attached with, by network and host.
    pub attached: BTreeMap<(String, String), Vec<IpAddr>>,
}

/// Why a host's desired state cannot be computed from the spec.
#[derive(Debug, thiserror::Error)]
pub enum DesiredError {
    #[error("networks.{network}: {source}")]
    Ipam { network: String, source: IpamError },
    #[error("networks.{network}.containers: {source}")]
    Blocks { network: String, source: BlockError },
    #[error("networks.{network} on {host}: {source}")]
    Name {
        network: String,
        host: String,
        source: Box<ValidationError>,
    },
    #[error(transparent)]
    Model(Box<ValidationError>),
}

/// The desired state of every host the spec uses, in host order.
pub fn desired(
    spec: &FleetSpec,
    seen: &Observed,
) -> Result<BTreeMap<String, Desired>, DesiredError> {
    // Every host of the spec, even one without networks: its owned state
    // is what the spec says, so endpoints removed from the spec go away.
    let mut out = spoken_for(spec);
    let ifname =
        IfName::parse("ifname", ENDPOINT_IFNAME).map_err(|e| DesiredError::Model(Box::new(e)))?;
    for net in spec.networks.values() {
        let grants = grants(net, seen)?;
        let addrs = addresses(net, seen, &grants)?;
        for (host, parent) in &net.parents {
            let d = out.entry(host.clone()).or_default();
            let link = match net.vlan {
                Some(id) => {
                    let name =
                        default_vlan_name(parent, id).map_err(|source| DesiredError::Name {
                            network: net.name.to_string(),
                            host: host.clone(),
                            source: Box::new(source),
                        })?;
                    // Two networks may share a VLAN: it is listed once.
                    if !d.vlans.iter().any(|v| v.name == name) {
                        d.vlans.push(VlanSpec {
                            parent: parent.clone(),
                            id,
                            protocol: VlanProtocol::Ieee8021Q,
                            name: name.clone(),
                            mtu: None,
                        });
                    }
                    name
                }
                None => parent.clone(),
            };
            endpoints_on(net, host, (&link, &ifname), &addrs, d);
            // Runtimes attach only where the spec opens the network to them.
            if net
                .containers
                .as_ref()
                .is_some_and(|c| c.hosts.contains(host))
            {
                d.catalog.push(catalog_entry(net, link, host, &grants));
            }
        }
    }
    for d in out.values_mut() {
        d.catalog.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(out)
}

/// The network as `host` offers it to container runtimes: on `link`, with
/// its blocks of `grants` (both families), and what its containers may not
/// take.
fn catalog_entry(
    net: &NetworkSpec,
    link: IfName,
    host: &str,
    grants: &BTreeMap<String, Vec<IpNet>>,
) -> CatalogNetwork {
    let excluded = excluded_for(net, host, grants);
    let pool = |p: &Pool| {
        let family = |n: &IpNet| n.addr().is_ipv4() == p.subnet.addr().is_ipv4();
        let mine = grants.get(host).into_iter().flatten();
        CatalogPool {
            subnet: p.subnet,
            gateway: p.gateway,
            blocks: mine.filter(|b| family(b)).copied().collect(),
            excluded: excluded
                .iter()
                .filter(|e| family(&e.prefix))
                .cloned()
                .collect(),
        }
    };
    CatalogNetwork {
        name: net.name.clone(),
        parent: link,
        vlan: net.vlan,
        mode: net.mode,
        mtu: net.mtu,
        v4: net.v4.as_ref().map(pool),
        v6: net.v6.as_ref().map(pool),
    }
}

/// What containers on `host` may not take: the other hosts' blocks, the
/// fixed endpoint and host-access addresses, the reserved ones.
fn excluded_for(
    net: &NetworkSpec,
    host: &str,
    grants: &BTreeMap<String, Vec<IpNet>>,
) -> Vec<Excluded> {
    let mut out: Vec<Excluded> = grants
        .iter()
        .filter(|(h, _)| h.as_str() != host)
        .flat_map(|(h, bs)| {
            bs.iter().map(move |b| Excluded {
                prefix: *b,
                why: format!("{h}'s container block"),
            })
        })
        .collect();
    let single = |a: IpAddr, why: String| Excluded {
        prefix: IpNet::from(a),
        why,
    };
    for (name, e) in &net.endpoints {
        for a in [e.ip, e.ip6].into_iter().flatten() {
            out.push(single(a, format!("endpoint {}/{name}", e.host)));
        }
    }
    for (h, a) in &net.host_access {
        out.push(single(*a, format!("{h} host access")));
    }
    for p in [&net.v4, &net.v6].into_iter().flatten() {
        out.extend(p.reserved.iter().map(|a| single(*a, "reserved".to_owned())));
    }
    out
}

/// The container blocks of every host that offers them (both families),
/// around what the agents hold now and every address the fleet uses.
fn grants(
    net: &NetworkSpec,
    seen: &Observed,
) -> Result<BTreeMap<String, Vec<IpNet>>, DesiredError> {
    let mut out: BTreeMap<String, Vec<IpNet>> = BTreeMap::new();
    let Some(c) = &net.containers else {
        return Ok(out);
    };
    for (want, pool) in [(c.v4, &net.v4), (c.v6, &net.v6)] {
        let (Some(want), Some(pool)) = (want, pool) else {
            continue;
        };
        let v4 = pool.subnet.addr().is_ipv4();
        let held: BTreeMap<String, Vec<Held>> = seen
            .blocks
            .iter()
            .filter(|((n, _), _)| n == net.name.as_str())
            .map(|((n, host), bs)| {
                let attached = seen.attached.get(&(n.clone(), host.clone()));
                let used = |b: &IpNet| {
                    let inside = attached.into_iter().flatten().filter(|a| b.contains(*a));
                    u64::try_from(inside.count()).unwrap_or(u64::MAX)
                };
                let mine = bs.iter().filter(|b| b.addr().is_ipv4() == v4);
                let held = mine
                    .map(|b| Held {
                        block: *b,
                        used: used(b),
                    })
                    .collect();
                (host.clone(), held)
            })
            .collect();
        let plan = BlockPlan {
            pool,
            range: want.range,
            len: want.len,
        };
        let mut avoid = in_use(net, pool, seen);
        // A host's containers are in its blocks by design: they count as
        // the block's use, not against keeping it.
        for (host, hs) in &held {
            let attached = seen.attached.get(&(net.name.to_string(), host.clone()));
            for a in attached.into_iter().flatten() {
                if hs.iter().any(|h| h.block.contains(a)) {
                    avoid.remove(a);
                }
            }
        }
        let granted = blocks::grant(&plan, &c.hosts, &held, &avoid).map_err(|source| {
            DesiredError::Blocks {
                network: net.name.to_string(),
                source,
            }
        })?;
        for (host, bs) in granted.blocks {
            out.entry(host).or_default().extend(bs);
        }
    }
    Ok(out)
}

/// Every address of the pool's subnet that the fleet uses or the spec
/// fixes, with who has it: no block may hold one.
fn in_use(net: &NetworkSpec, pool: &Pool, seen: &Observed) -> BTreeMap<IpAddr, String> {
    let mut taken = taken_by_others(net, pool, seen);
    for (name, e) in &net.endpoints {
        let key = (net.name.to_string(), name.to_string());
        let current = seen.endpoints.get(&key).into_iter().flatten();
        for a in [e.ip, e.ip6].iter().flatten().chain(current) {
            if pool.subnet.contains(a) {
                taken.insert(*a, format!("{}/{name}", e.host));
            }
        }
    }
    taken
}

/// Every host of the spec with nothing on it yet, but speaking for every
/// network of the spec: so an endpoint the spec no longer lists on a host
/// is deleted even when the network has no other endpoint left there.
fn spoken_for(spec: &FleetSpec) -> BTreeMap<String, Desired> {
    spec.hosts
        .keys()
        .map(|h| {
            let d = Desired {
                networks: spec.networks.keys().cloned().collect(),
                ..Desired::default()
            };
            (h.clone(), d)
        })
        .collect()
}

/// What `destroy` converges every host to: none of the spec's endpoints
/// or host access, and none of the VLAN sub-interfaces its networks use
/// (those linkherd made; a VLAN that was there before is left).
pub fn teardown(spec: &FleetSpec) -> Result<BTreeMap<String, Desired>, DesiredError> {
    let mut out = spoken_for(spec);
    for net in spec.networks.values() {
        let Some(id) = net.vlan else { continue };
        for (host, parent) in &net.parents {
            let name = default_vlan_name(parent, id).map_err(|source| DesiredError::Name {
                network: net.name.to_string(),
                host: host.clone(),
                source: Box::new(source),
            })?;
            let d = out.entry(host.clone()).or_default();
            if !d.absent_vlans.contains(&name) {
                d.absent_vlans.push(name);
            }
        }
    }
    Ok(out)
}

/// Every endpoint's addresses (v4 then v6), by endpoint name.
fn addresses(
    net: &NetworkSpec,
    seen: &Observed,
    grants: &BTreeMap<String, Vec<IpNet>>,
) -> Result<BTreeMap<String, Vec<IpNet>>, DesiredError> {
    let mut out: BTreeMap<String, Vec<IpNet>> = BTreeMap::new();
    let pools = [
        (&net.v4, IpAddr::is_ipv4 as fn(&IpAddr) -> bool),
        (&net.v6, IpAddr::is_ipv6),
    ];
    for (pool, family) in pools {
        let Some(pool) = pool else { continue };
        // Endpoints never get an address of a container block.
        let pool = &Pool {
            blocks: grants.values().flatten().copied().collect(),
            ..pool.clone()
        };
        let wants: Vec<Want> = net
            .endpoints
            .iter()
            .map(|(name, e)| Want {
                key: name.to_string(),
                fixed: [e.ip, e.ip6].into_iter().flatten().find(family),
            })
            .collect();
        let current: BTreeMap<String, IpAddr> = net
            .endpoints
            .keys()
            .filter_map(|name| {
                let have = seen
                    .endpoints
                    .get(&(net.name.to_string(), name.to_string()))?;
                Some((name.to_string(), *have.iter().find(|a| family(a))?))
            })
            .collect();
        let taken = taken_by_others(net, pool, seen);
        let got = ipam::allocate(pool, &wants, &current, &taken).map_err(|source| {
            DesiredError::Ipam {
                network: net.name.to_string(),
                source,
            }
        })?;
        let prefix = pool.subnet.prefix_len();
        for (name, addr) in got {
            // The prefix is valid for the family by construction of the pool.
            if let Ok(n) = IpNet::new(addr, prefix) {
                out.entry(name).or_default().push(n);
            }
        }
    }
    Ok(out)
}

/// Addresses in the pool's subnet that are not this network's endpoints':
/// other users, and host-access links.
fn taken_by_others(net: &NetworkSpec, pool: &Pool, seen: &Observed) -> BTreeMap<IpAddr, String> {
    let mut taken: BTreeMap<IpAddr, String> = seen
        .others
        .iter()
        .filter(|(a, _)| pool.subnet.contains(*a))
        .map(|(a, who)| (*a, who.clone()))
        .collect();
    for (host, a) in &net.host_access {
        taken.insert(*a, format!("{host} host access"));
    }
    taken
}

fn endpoints_on(
    net: &NetworkSpec,
    host: &str,
    (link, ifname): (&IfName, &IfName),
    addrs: &BTreeMap<String, Vec<IpNet>>,
    d: &mut Desired,
) {
    let gateway = net
        .v4
        .as_ref()
        .and_then(|p| p.gateway)
        .or(net.v6.as_ref().and_then(|p| p.gateway));
    let mut local = Vec::new();
    for (name, e) in net.endpoints.iter().filter(|(_, e)| e.host == host) {
        let addresses = addrs.get(name.as_str()).cloned().unwrap_or_default();
        local.extend(addresses.iter().map(|a| IpNet::from(a.addr())));
        d.endpoints.push(EndpointSpec {
            network: net.name.clone(),
            name: name.clone(),
            parent: link.clone(),
            mode: net.mode,
            create_netns: matches!(e.netns, NetnsRef::Named(_)),
            netns: e.netns.clone(),
            ifname: ifname.clone(),
            addresses,
            gateway,
            mac: e.mac,
            mtu: net.mtu,
            source_macs: Vec::new(),
        });
    }
    if let Some(a) = net.host_access.get(host) {
        d.host_access.push(HostAccessSpec {
            network: net.name.clone(),
            parent: link.clone(),
            name: default_host_access_name(&net.name),
            addresses: vec![IpNet::from(*a)],
            // The host-access link reaches this host's own endpoints; the others are
            // reached through the parent as usual.
            routes: local,
        });
    }
}

#[cfg(test)]
mod tests;
