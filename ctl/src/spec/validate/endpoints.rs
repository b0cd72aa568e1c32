//! The endpoints and host access of each network: their hosts and
//! parents, their addresses inside the network's pools, their namespaces
//! and MACs, and the fixed addresses no two may share.

use std::{collections::BTreeMap, net::IpAddr, str::FromStr};

use linkherd_proto::model::{IfName, MacAddr, NetnsRef, ObjName};
use serde_saphyr::Location;

use crate::spec::{
    EndpointDecl, HostSpec,
    raw::{RawEndpoint, RawHost, RawNetwork, RawSpec, S},
};

use super::{Issues, Pools, parse_ip};

pub(super) fn endpoints(
    is: &mut Issues,
    path: &str,
    n: &RawNetwork,
    raw_hosts: &BTreeMap<String, RawHost>,
    pools: &Pools,
) -> BTreeMap<ObjName, EndpointDecl> {
    let mut out = BTreeMap::new();
    for (ename, e) in &n.endpoints {
        let epath = format!("{path}.endpoints.{ename}");
        if let Some((obj, decl)) = endpoint(is, &epath, ename, e, raw_hosts, pools) {
            out.insert(obj, decl);
        }
    }
    out
}

/// The hosts the network spans: stated (and then covering every endpoint),
/// or those with endpoints or host access.
pub(super) fn span(
    is: &mut Issues,
    path: &str,
    n: &RawNetwork,
    raw_hosts: &BTreeMap<String, RawHost>,
) -> BTreeMap<String, Location> {
    let mut span: BTreeMap<String, Location> = BTreeMap::new();
    let Some(list) = &n.hosts else {
        for e in n.endpoints.values() {
            span.entry(e.host.value.clone())
                .or_insert(e.host.referenced);
        }
        span.extend(n.host_access.iter().map(|(h, a)| (h.clone(), a.referenced)));
        let offered = n.containers.as_ref().and_then(|c| c.hosts.as_ref());
        for h in offered.into_iter().flatten() {
            if raw_hosts.contains_key(&h.value) {
                span.entry(h.value.clone()).or_insert(h.referenced);
            }
        }
        return span;
    };
    for (i, h) in list.iter().enumerate() {
        if !raw_hosts.contains_key(&h.value) {
            unknown_host(is, &format!("{path}.hosts[{i}]"), h, raw_hosts);
        }
        span.insert(h.value.clone(), h.referenced);
    }
    for (ename, e) in &n.endpoints {
        if raw_hosts.contains_key(&e.host.value) && !span.contains_key(&e.host.value) {
            is.push(
                &format!("{path}.endpoints.{ename}.host"),
                e.host.referenced,
                format!("{:?} is not in {path}.hosts", e.host.value),
                "add the host to the network's hosts list",
            );
        }
    }
    span
}

/// The parent NIC on every spanned host: the network's override, else the
/// host's own.
pub(super) fn parents(
    is: &mut Issues,
    path: &str,
    n: &RawNetwork,
    span: &BTreeMap<String, Location>,
    hosts: &BTreeMap<String, HostSpec>,
) -> BTreeMap<String, IfName> {
    for (h, s) in n.parents.iter().filter(|(h, _)| !span.contains_key(*h)) {
        is.push(
            &format!("{path}.parents.{h}"),
            s.referenced,
            format!("host {h:?} is not part of this network"),
            "remove the override or add the host to the network",
        );
    }
    let mut parents = BTreeMap::new();
    for (h, loc) in span {
        let Some(hs) = hosts.get(h) else { continue };
        let parent = match n.parents.get(h) {
            Some(p) => is.ok(
                &format!("{path}.parents.{h}"),
                p.referenced,
                IfName::parse("parent", &p.value),
            ),
            None => {
                if hs.parent.is_none() {
                    is.push(
                        path,
                        *loc,
                        format!("no parent NIC for host {h:?}"),
                        &format!("set hosts.{h}.parent or {path}.parents.{h}"),
                    );
                }
                hs.parent.clone()
            }
        };
        if let Some(p) = parent {
            parents.insert(h.clone(), p);
        }
    }
    parents
}

/// Host access addresses, on declared and spanned hosts, in the pools.
pub(super) fn host_access(
    is: &mut Issues,
    path: &str,
    n: &RawNetwork,
    (raw_hosts, span): (&BTreeMap<String, RawHost>, &BTreeMap<String, Location>),
    pools: &Pools,
) -> BTreeMap<String, IpAddr> {
    let mut out = BTreeMap::new();
    for (h, a) in &n.host_access {
        let hpath = format!("{path}.host_access.{h}");
        let problem = if !raw_hosts.contains_key(h) {
            Some((
                format!("{h:?} is not a declared host"),
                "use a name from hosts",
            ))
        } else if !span.contains_key(h) {
            Some((
                format!("{h:?} is not in {path}.hosts"),
                "add the host to the network's hosts list",
            ))
        } else {
            None
        };
        if let Some((problem, fix)) = problem {
            is.push(&hpath, a.referenced, problem, fix);
            continue;
        }
        if let Some(ip) = parse_ip(is, &hpath, a) {
            in_pool(is, &hpath, a.referenced, ip, pools);
            out.insert(h.clone(), ip);
        }
    }
    out
}

pub(super) fn unknown_host(
    is: &mut Issues,
    path: &str,
    h: &S<String>,
    hosts: &BTreeMap<String, RawHost>,
) {
    let known: Vec<&str> = hosts.keys().map(String::as_str).collect();
    is.push(
        path,
        h.referenced,
        format!("{:?} is not a declared host", h.value),
        &format!("use one of: {}", known.join(", ")),
    );
}

/// Checks that a fixed address belongs to the family's subnet and is usable.
pub(super) fn in_pool(is: &mut Issues, path: &str, loc: Location, ip: IpAddr, pools: &Pools) {
    let (pool, declared) = if ip.is_ipv4() {
        (&pools.v4, pools.declared.0)
    } else {
        (&pools.v6, pools.declared.1)
    };
    let Some(p) = pool else {
        if declared {
            // The subnet itself is wrong, and reported already.
            return;
        }
        let fam = if ip.is_ipv4() { "subnet" } else { "subnet_v6" };
        is.push(
            path,
            loc,
            format!("{ip} has no {fam} to belong to"),
            &format!("add {fam} to the network"),
        );
        return;
    };
    if let Some(problem) = p.why_unusable(ip) {
        is.push(
            path,
            loc,
            format!("{ip} {problem}"),
            "pick another address, or leave it out to have one allocated",
        );
    }
}

pub(super) fn endpoint(
    is: &mut Issues,
    path: &str,
    name: &str,
    e: &RawEndpoint,
    hosts: &BTreeMap<String, RawHost>,
    pools: &Pools,
) -> Option<(ObjName, EndpointDecl)> {
    let before = is.0.len();
    let obj = is.ok(path, e.host.referenced, ObjName::parse("name", name));
    if !hosts.contains_key(&e.host.value) {
        unknown_host(is, &format!("{path}.host"), &e.host, hosts);
    }
    let netns = netns(is, path, name, e);
    let mut addr = |field: &str, s: &Option<S<String>>, v6: bool| {
        let s = s.as_ref()?;
        let p = format!("{path}.{field}");
        let ip = parse_ip(is, &p, s)?;
        if ip.is_ipv6() != v6 {
            is.push(
                &p,
                s.referenced,
                format!("{ip} is the wrong address family"),
                "put IPv4 in ip and IPv6 in ip6",
            );
            return None;
        }
        Some((ip, s.referenced, p))
    };
    let ip = addr("ip", &e.ip, false);
    let ip6 = addr("ip6", &e.ip6, true);
    for (a, loc, p) in ip.iter().chain(ip6.iter()) {
        in_pool(is, p, *loc, *a, pools);
    }
    let mac = e.mac.as_ref().and_then(|m| mac(is, path, m));
    if is.0.len() != before {
        return None;
    }
    Some((
        obj?,
        EndpointDecl {
            host: e.host.value.clone(),
            netns: netns?,
            ip: ip.map(|x| x.0),
            ip6: ip6.map(|x| x.0),
            mac,
        },
    ))
}

/// The endpoint's namespace: named, a process's, or named after it.
pub(super) fn netns(is: &mut Issues, path: &str, name: &str, e: &RawEndpoint) -> Option<NetnsRef> {
    match (&e.netns, &e.pid) {
        (Some(_), Some(p)) => {
            is.push(
                &format!("{path}.pid"),
                p.referenced,
                "both netns and pid are set".into(),
                "give one of them",
            );
            None
        }
        (Some(n), None) => is.ok(
            &format!("{path}.netns"),
            n.referenced,
            NetnsRef::named("netns", &n.value),
        ),
        (None, Some(p)) => is.ok(
            &format!("{path}.pid"),
            p.referenced,
            NetnsRef::pid("pid", p.value),
        ),
        // The endpoint's own name is the natural namespace name (b1 in b1).
        (None, None) => is.ok(path, e.host.referenced, NetnsRef::named("netns", name)),
    }
}

/// A fixed MAC, which must be unicast.
pub(super) fn mac(is: &mut Issues, path: &str, m: &S<String>) -> Option<MacAddr> {
    let mac = is.ok(
        &format!("{path}.mac"),
        m.referenced,
        MacAddr::parse("mac", &m.value),
    )?;
    if mac.is_multicast() || mac.is_zero() {
        is.push(
            &format!("{path}.mac"),
            m.referenced,
            format!("{mac} is not a unicast address"),
            "use a unicast MAC (first octet even), e.g. 02:42:ac:10:0a:0a",
        );
        return None;
    }
    Some(mac)
}

/// Two endpoints fixing the same address, or MAC, in one network, or one
/// namespace holding two endpoints of the same network on one host.
pub(super) fn fixed_collisions(is: &mut Issues, raw: &RawSpec) {
    for (nname, n) in &raw.networks {
        let mut seen: BTreeMap<(String, &str), (&str, Location)> = BTreeMap::new();
        for (ename, e) in &n.endpoints {
            let path = format!("networks.{nname}.endpoints.{ename}");
            let keys = [
                (
                    "ip",
                    e.ip.as_ref()
                        .map(|s| (s.value.trim().to_owned(), s.referenced)),
                ),
                (
                    "ip6",
                    e.ip6
                        .as_ref()
                        .map(|s| (s.value.trim().to_owned(), s.referenced)),
                ),
                (
                    "mac",
                    e.mac
                        .as_ref()
                        .map(|s| (s.value.trim().to_ascii_lowercase(), s.referenced)),
                ),
            ];
            for (field, v) in keys {
                let Some((value, loc)) = v else { continue };
                let canon = match field {
                    "mac" => value.clone(),
                    _ => match IpAddr::from_str(&value) {
                        Ok(a) => a.to_string(),
                        Err(_) => continue,
                    },
                };
                match seen.get(&(canon.clone(), field)) {
                    Some((other, _)) => is.push(
                        &format!("{path}.{field}"),
                        loc,
                        format!("{value} is also fixed for endpoint {other}"),
                        "give each endpoint its own address, or leave one out to allocate",
                    ),
                    None => {
                        seen.insert((canon, field), (ename.as_str(), loc));
                    }
                }
            }
        }
    }
}
