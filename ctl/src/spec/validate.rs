//! From the spec as written to a checked [`FleetSpec`]: every name, address,
//! VLAN id and reference is checked here, and every problem is collected
//! with its path and position.

use std::{
    cell::RefCell,
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    str::FromStr,
    time::Duration,
};

use ipnet::IpNet;
use linkherd_proto::model::{IfName, MacvlanMode, ObjName, ValidationError, VlanId, bounds::echo};
use serde_saphyr::Location;

use super::{
    FleetSpec, HostSpec, NetworkSpec, SpecIssue, VerifySpec,
    raw::{RawHost, RawNetwork, RawSpec, RawVerify, S},
};
use crate::ipam::{IpamError, Pool};

mod containers;
mod endpoints;

use endpoints::{endpoints, fixed_collisions, host_access, parents, span};

/// Parses the YAML, keeping the path of a field that fails to deserialize.
pub(super) fn deserialize(text: &str) -> Result<RawSpec, SpecIssue> {
    let path = RefCell::new(String::new());
    let res = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            *path.borrow_mut() = e.path().to_string();
            e.into_inner()
        })
    });
    res.map_err(|e| {
        let p = path.into_inner();
        // A `Spanned` leaf shows up as an extra `.value` segment.
        let p = p.strip_suffix(".value").unwrap_or(&p);
        let p = if p.is_empty() || p == "." {
            "(spec)"
        } else {
            p
        };
        let msg = e.to_string();
        let first = msg.lines().next().unwrap_or(&msg);
        let mut problem = strip_position(first).to_owned();
        // Type errors ("invalid u32") do not say what was found; show it.
        if let Some(tok) = e.location().and_then(|l| token_at(text, l))
            && problem.starts_with("invalid ")
            && !problem.contains(tok)
        {
            problem = format!("{problem} (found {tok:?})");
        }
        SpecIssue::at(
            p,
            e.location(),
            problem,
            "see the spec reference in docs/spec.md",
        )
    })
}

/// The scalar starting at `loc`, as written (up to the end of the line or
/// of the flow item).
fn token_at(text: &str, loc: Location) -> Option<&str> {
    let line = text
        .lines()
        .nth(usize::try_from(loc.line()).ok()?.checked_sub(1)?)?;
    let col = usize::try_from(loc.column()).ok()?.checked_sub(1)?;
    let start = line.char_indices().nth(col).map(|(i, _)| i)?;
    let rest = &line[start..];
    let end = rest.find([',', '}', ']', '#']).unwrap_or(rest.len());
    Some(rest[..end].trim()).filter(|t| !t.is_empty())
}

/// Drops the library's own `error: line L column C: ` prefix: the position
/// is reported separately, in the same form as for every other problem.
fn strip_position(msg: &str) -> &str {
    let msg = msg.strip_prefix("error: ").unwrap_or(msg);
    match msg.strip_prefix("line ").and_then(|m| m.split_once(": ")) {
        Some((pos, rest)) if pos.contains("column") => rest,
        _ => msg,
    }
}

/// Collects problems while checking.
#[derive(Default)]
struct Issues(Vec<SpecIssue>);

impl Issues {
    fn push(&mut self, path: &str, loc: Location, problem: String, fix: &str) {
        self.0.push(SpecIssue::at(path, Some(loc), problem, fix));
    }

    /// Records a model validation error at `path`, keeping its fix.
    fn model(&mut self, path: &str, loc: Location, e: ValidationError) {
        self.0.push(SpecIssue::at(
            path,
            Some(loc),
            format!("{:?} {}", e.value, e.problem),
            e.fix,
        ));
    }

    fn ok<T>(&mut self, path: &str, loc: Location, r: Result<T, ValidationError>) -> Option<T> {
        r.map_err(|e| self.model(path, loc, e)).ok()
    }
}

pub(super) fn check(raw: RawSpec) -> Result<FleetSpec, Vec<SpecIssue>> {
    let mut is = Issues::default();
    if raw.hosts.is_empty() {
        is.0.push(SpecIssue::at(
            "hosts",
            None,
            "no hosts are declared",
            "add at least one host with the address of its agent",
        ));
    }
    let hosts: BTreeMap<String, HostSpec> = raw
        .hosts
        .iter()
        .filter_map(|(name, h)| Some((name.clone(), host(&mut is, name, h)?)))
        .collect();
    let mut networks = BTreeMap::new();
    for (name, n) in &raw.networks {
        let path = format!("networks.{name}");
        let Some(obj) = is.ok(&path, n_loc(n), ObjName::parse("name", name)) else {
            continue;
        };
        if let Some(net) = network(&mut is, &path, obj.clone(), n, &raw.hosts, &hosts) {
            networks.insert(obj, net);
        }
    }
    let verify = verify(&mut is, raw.verify.as_ref());
    fixed_collisions(&mut is, &raw);
    if is.0.is_empty() {
        Ok(FleetSpec {
            hosts,
            networks,
            verify,
        })
    } else {
        Err(is.0)
    }
}

/// The best position for a whole network: its first spanned field.
fn n_loc(n: &RawNetwork) -> Location {
    [&n.subnet, &n.subnet_v6, &n.mode]
        .into_iter()
        .flatten()
        .map(|s| s.referenced)
        .next()
        .or(n.vlan.as_ref().map(|v| v.referenced))
        .unwrap_or(Location::UNKNOWN)
}

fn host(is: &mut Issues, name: &str, h: &RawHost) -> Option<HostSpec> {
    let path = format!("hosts.{}", echo(name));
    let addr = &h.address;
    // Host names are printed in plans, matrices and errors, and name files:
    // the same characters as network and endpoint names.
    is.ok(&path, addr.referenced, ObjName::parse("host name", name))?;
    labels(is, &path, addr.referenced, &h.labels)?;
    let ok_scheme = addr.value.starts_with("https://") || addr.value.starts_with("http://");
    if !ok_scheme || addr.value.len() <= "https://".len() {
        is.push(
            &format!("{path}.address"),
            addr.referenced,
            format!("{:?} is not an agent address", echo(&addr.value)),
            "give https://HOST:PORT of the host's linkherd-agent",
        );
        return None;
    }
    let parent = match &h.parent {
        Some(p) => Some(is.ok(
            &format!("{path}.parent"),
            p.referenced,
            IfName::parse("parent", &p.value),
        )?),
        None => None,
    };
    Some(HostSpec {
        address: addr.value.clone(),
        parent,
        labels: h.labels.clone(),
    })
}

/// Labels are free text, but printed in plans and status: keys of at most
/// 64 bytes and values of at most 256, without control characters (a
/// terminal escape or a NUL in a plan is an attack; a value may hold tabs
/// and line breaks).
fn labels(
    is: &mut Issues,
    path: &str,
    loc: Location,
    labels: &std::collections::BTreeMap<String, String>,
) -> Option<()> {
    let control = |c: char| c.is_control() && !matches!(c, '\n' | '\t');
    for (k, v) in labels {
        let at = format!("{path}.labels.{}", echo(k));
        let (problem, fix) = if k.is_empty() || k.len() > 64 || k.chars().any(char::is_control) {
            (
                format!("{:?} is not a label name", echo(k)),
                "use 1-64 bytes of printable text",
            )
        } else if v.len() > 256 || v.chars().any(control) {
            (
                format!("{:?} is not a label value", echo(v)),
                "use at most 256 bytes of printable text",
            )
        } else {
            continue;
        };
        is.push(&at, loc, problem, fix);
        return None;
    }
    Some(())
}

fn parse_ip(is: &mut Issues, path: &str, s: &S<String>) -> Option<IpAddr> {
    IpAddr::from_str(s.value.trim())
        .map_err(|_| {
            is.push(
                path,
                s.referenced,
                format!("{:?} is not an IP address", echo(&s.value)),
                "write e.g. 172.16.10.10 or fd00:10::10",
            )
        })
        .ok()
}

fn parse_net(is: &mut Issues, path: &str, s: &S<String>) -> Option<IpNet> {
    IpNet::from_str(s.value.trim())
        .map_err(|_| {
            is.push(
                path,
                s.referenced,
                format!("{:?} is not a prefix", echo(&s.value)),
                "write e.g. 172.16.10.0/24 or fd00:10::/64",
            )
        })
        .ok()
}

/// One address family's pool: subnet, gateway, range, reserved.
#[allow(clippy::too_many_arguments)]
fn pool(
    is: &mut Issues,
    path: &str,
    v6: bool,
    subnet: Option<&S<String>>,
    gateway: Option<&S<String>>,
    range: Option<&S<String>>,
    reserved: &[S<String>],
) -> Option<Pool> {
    let sfx = if v6 { "_v6" } else { "" };
    let field = |f: &str| format!("{path}.{f}{sfx}");
    let Some(subnet_s) = subnet else {
        for (f, s) in [("gateway", gateway), ("ip_range", range)] {
            if let Some(s) = s {
                is.push(
                    &field(f),
                    s.referenced,
                    format!("is set but subnet{sfx} is not"),
                    &format!("add subnet{sfx}, or remove {f}{sfx}"),
                );
            }
        }
        return None;
    };
    let subnet = parse_net(is, &field("subnet"), subnet_s)?;
    if subnet.addr().is_ipv6() != v6 {
        let want = if v6 { "an IPv6" } else { "an IPv4" };
        is.push(
            &field("subnet"),
            subnet_s.referenced,
            format!("{subnet} is not {want} prefix"),
            "put IPv4 in subnet/gateway/ip_range and IPv6 in the *_v6 fields",
        );
        return None;
    }
    let gw = gateway.and_then(|g| parse_ip(is, &field("gateway"), g));
    let rng = range.and_then(|r| parse_net(is, &field("ip_range"), r));
    let mut res = BTreeSet::new();
    for (i, r) in reserved.iter().enumerate() {
        if let Some(a) = parse_ip(is, &format!("{}[{i}]", field("reserved")), r) {
            res.insert(a);
        }
    }
    let p = Pool {
        subnet,
        gateway: gw,
        range: rng,
        reserved: res,
        blocks: Vec::new(),
    };
    if let Err(IpamError::Pool {
        field: f,
        value,
        problem,
    }) = p.check()
    {
        let loc = match f {
            "gateway" => gateway.map(|s| s.referenced),
            "ip_range" => range.map(|s| s.referenced),
            "reserved" => reserved
                .iter()
                .find(|s| s.value.trim() == value)
                .map(|s| s.referenced),
            _ => Some(subnet_s.referenced),
        };
        is.push(
            &field(f),
            loc.unwrap_or(subnet_s.referenced),
            format!("{value} {problem}"),
            "addresses of a network must lie inside its subnet",
        );
        return None;
    }
    Some(p)
}

/// A network's address pools, and which families the spec declares (a
/// declared family without a pool had an error, reported already).
struct Pools {
    v4: Option<Pool>,
    v6: Option<Pool>,
    declared: (bool, bool),
}

fn network(
    is: &mut Issues,
    path: &str,
    name: ObjName,
    n: &RawNetwork,
    raw_hosts: &BTreeMap<String, RawHost>,
    hosts: &BTreeMap<String, HostSpec>,
) -> Option<NetworkSpec> {
    let before = is.0.len();
    let vlan = n.vlan.as_ref().and_then(|v| {
        is.ok(
            &format!("{path}.vlan"),
            v.referenced,
            VlanId::new("vlan", v.value),
        )
    });
    let pools = pools(is, path, n);
    let mode = mode(is, path, n);
    let mtu = mtu(is, path, n);
    let endpoints = endpoints(is, path, n, raw_hosts, &pools);
    let span = span(is, path, n, raw_hosts);
    let parents = parents(is, path, n, &span, hosts);
    let host_access = host_access(is, path, n, (raw_hosts, &span), &pools);
    let containers = n
        .containers
        .as_ref()
        .and_then(|c| containers::containers(is, path, c, &pools, &span));
    (is.0.len() == before).then_some(NetworkSpec {
        name,
        vlan,
        v4: pools.v4,
        v6: pools.v6,
        mode,
        mtu,
        parents,
        host_access,
        endpoints,
        containers,
    })
}

fn pools(is: &mut Issues, path: &str, n: &RawNetwork) -> Pools {
    let v4 = pool(
        is,
        path,
        false,
        n.subnet.as_ref(),
        n.gateway.as_ref(),
        n.ip_range.as_ref(),
        &n.reserved,
    );
    let v6 = pool(
        is,
        path,
        true,
        n.subnet_v6.as_ref(),
        n.gateway_v6.as_ref(),
        n.ip_range_v6.as_ref(),
        &n.reserved_v6,
    );
    if n.subnet.is_none() && n.subnet_v6.is_none() {
        is.push(
            path,
            n_loc(n),
            "has neither subnet nor subnet_v6".into(),
            "give the network's subnet, e.g. subnet: 172.16.10.0/24",
        );
    }
    Pools {
        v4,
        v6,
        declared: (n.subnet.is_some(), n.subnet_v6.is_some()),
    }
}

fn mode(is: &mut Issues, path: &str, n: &RawNetwork) -> MacvlanMode {
    let Some(m) = &n.mode else {
        return MacvlanMode::Bridge;
    };
    match MacvlanMode::ALL.iter().find(|x| x.as_str() == m.value) {
        Some(x) => *x,
        None => {
            is.push(
                &format!("{path}.mode"),
                m.referenced,
                format!("{:?} is not a macvlan mode", m.value),
                "use bridge, private, vepa, passthru or source",
            );
            MacvlanMode::Bridge
        }
    }
}

fn mtu(is: &mut Issues, path: &str, n: &RawNetwork) -> Option<u32> {
    let m = n.mtu.as_ref()?;
    if (68..=65535).contains(&m.value) {
        return Some(m.value);
    }
    is.push(
        &format!("{path}.mtu"),
        m.referenced,
        format!("{} is out of range", m.value),
        "give an MTU between 68 and 65535",
    );
    None
}

fn verify(is: &mut Issues, v: Option<&RawVerify>) -> VerifySpec {
    let d = VerifySpec::default();
    let Some(v) = v else { return d };
    let timeout = match &v.timeout_ms {
        None => d.timeout,
        Some(t) if (1..=60_000).contains(&t.value) => Duration::from_millis(t.value),
        Some(t) => {
            is.push(
                "verify.timeout_ms",
                t.referenced,
                format!("{} is out of range", t.value),
                "give a probe timeout between 1 and 60000 ms",
            );
            d.timeout
        }
    };
    VerifySpec {
        reach: v.mesh.unwrap_or(d.reach),
        isolation: v.isolation.unwrap_or(d.isolation),
        containers: v.containers.unwrap_or(d.containers),
        mode: match v.mode {
            None => d.mode,
            Some(super::raw::RawVerifyMode::Sampled) => super::VerifyMode::Sampled,
            Some(super::raw::RawVerifyMode::Mesh) => super::VerifyMode::Mesh,
        },
        timeout,
    }
}
