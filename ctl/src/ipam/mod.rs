//! Address management for a fleet without a database: the agents are the
//! truth. Addresses the spec's endpoints already have are kept (sticky);
//! new ones are allocated deterministically — lowest free address first, in
//! the order of the endpoints' keys — from the pool's range, never the
//! network, broadcast, gateway or reserved addresses, and never one in use
//! anywhere in the fleet.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use ipnet::IpNet;
use linkherd_proto::model::is_subnet_special;

pub mod blocks;

/// Where a network's addresses come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub subnet: IpNet,
    pub gateway: Option<IpAddr>,
    /// Allocate only from here (must lie inside the subnet); default: all.
    pub range: Option<IpNet>,
    /// Never allocated (routers, VIPs, ...).
    pub reserved: BTreeSet<IpAddr>,
    /// Never allocated to endpoints: the hosts' container blocks.
    pub blocks: Vec<IpNet>,
}

/// An endpoint that needs an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    /// Unique in the network, e.g. `no1/b1`.
    pub key: String,
    /// An address the spec fixes.
    pub fixed: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("{field} {value}: {problem}")]
    Pool {
        field: &'static str,
        value: String,
        problem: String,
    },
    #[error("{key}: {addr} {problem}")]
    Unusable {
        key: String,
        addr: IpAddr,
        problem: String,
    },
    #[error("{addr} is wanted by both {a} and {b}")]
    Collision { addr: IpAddr, a: String, b: String },
    #[error("no free address left in {range} for {key} ({used} in use or excluded)")]
    Exhausted {
        key: String,
        range: IpNet,
        used: usize,
    },
}

impl Pool {
    /// Checks the pool on its own: subnet without host bits, gateway, range and
    /// reserved addresses inside it.
    pub fn check(&self) -> Result<(), IpamError> {
        let bad = |field, value: String, problem: &str| IpamError::Pool {
            field,
            value,
            problem: problem.to_owned(),
        };
        if self.subnet.trunc() != self.subnet {
            return Err(bad(
                "subnet",
                self.subnet.to_string(),
                &format!("has host bits set; write {}", self.subnet.trunc()),
            ));
        }
        if let Some(g) = self.gateway {
            if !self.subnet.contains(&g) {
                return Err(bad(
                    "gateway",
                    g.to_string(),
                    &format!("is outside the subnet {}", self.subnet),
                ));
            }
            if self.special(g) {
                return Err(bad(
                    "gateway",
                    g.to_string(),
                    "is the subnet's network or broadcast address",
                ));
            }
        }
        if let Some(r) = self.range
            && !(self.subnet.contains(&r.network()) && self.subnet.contains(&r.broadcast()))
        {
            return Err(bad(
                "ip_range",
                r.to_string(),
                &format!("is not inside the subnet {}", self.subnet),
            ));
        }
        if let Some(r) = self.reserved.iter().find(|r| !self.subnet.contains(*r)) {
            return Err(bad(
                "reserved",
                r.to_string(),
                &format!("is outside the subnet {}", self.subnet),
            ));
        }
        Ok(())
    }

    /// The network address, and for IPv4 the broadcast address.
    fn special(&self, a: IpAddr) -> bool {
        is_subnet_special(&self.subnet, a)
    }

    /// Why `a` cannot be an endpoint's address, if it cannot.
    pub fn why_unusable(&self, a: IpAddr) -> Option<String> {
        if !self.subnet.contains(&a) {
            return Some(format!("is outside the subnet {}", self.subnet));
        }
        if self.special(a) {
            return Some("is the subnet's network or broadcast address".into());
        }
        if self.gateway == Some(a) {
            return Some("is the gateway".into());
        }
        if self.reserved.contains(&a) {
            return Some("is reserved".into());
        }
        if let Some(b) = self.blocks.iter().find(|b| b.contains(&a)) {
            return Some(format!("is inside the container block {b}"));
        }
        None
    }

    fn candidates(&self) -> Box<dyn Iterator<Item = IpAddr> + '_> {
        match self.range.unwrap_or(self.subnet) {
            IpNet::V4(r) => Box::new(r.hosts().map(IpAddr::V4)),
            IpNet::V6(r) => Box::new(r.hosts().map(IpAddr::V6)),
        }
    }
}

/// Assigns an address to every want.
///
/// `current` holds the addresses endpoints of this network have now (by
/// key); `taken` every address in use in the fleet, with who uses it.
pub fn allocate(
    pool: &Pool,
    wants: &[Want],
    current: &BTreeMap<String, IpAddr>,
    taken: &BTreeMap<IpAddr, String>,
) -> Result<BTreeMap<String, IpAddr>, IpamError> {
    pool.check()?;
    let mut wants: Vec<&Want> = wants.iter().collect();
    wants.sort_by(|a, b| a.key.cmp(&b.key));
    let mut c = Claims {
        pool,
        taken,
        out: BTreeMap::new(),
        owner: BTreeMap::new(),
    };
    // Fixed addresses first, then the ones endpoints already have.
    for w in &wants {
        if let Some(addr) = w.fixed {
            c.claim(&w.key, addr)?;
        }
    }
    for w in &wants {
        if w.fixed.is_none()
            && let Some(addr) = current
                .get(&w.key)
                .copied()
                .filter(|a| pool.why_unusable(*a).is_none())
            && !c.owner.contains_key(&addr)
        {
            c.claim(&w.key, addr)?;
        }
    }
    for w in &wants {
        if c.out.contains_key(&w.key) {
            continue;
        }
        let free = pool.candidates().find(|a| {
            pool.why_unusable(*a).is_none() && !c.owner.contains_key(a) && !taken.contains_key(a)
        });
        match free {
            Some(a) => c.claim(&w.key, a)?,
            None => {
                return Err(IpamError::Exhausted {
                    key: w.key.clone(),
                    range: pool.range.unwrap_or(pool.subnet),
                    used: c.owner.len() + taken.len(),
                });
            }
        }
    }
    Ok(c.out)
}

/// The addresses given out so far, and to whom.
struct Claims<'a> {
    pool: &'a Pool,
    taken: &'a BTreeMap<IpAddr, String>,
    out: BTreeMap<String, IpAddr>,
    owner: BTreeMap<IpAddr, String>,
}

impl Claims<'_> {
    fn claim(&mut self, key: &str, addr: IpAddr) -> Result<(), IpamError> {
        if let Some(problem) = self.pool.why_unusable(addr) {
            return Err(IpamError::Unusable {
                key: key.to_owned(),
                addr,
                problem,
            });
        }
        let other = self
            .owner
            .get(&addr)
            .or_else(|| self.taken.get(&addr).filter(|o| o.as_str() != key));
        if let Some(other) = other {
            return Err(IpamError::Collision {
                addr,
                a: other.clone(),
                b: key.to_owned(),
            });
        }
        self.owner.insert(addr, key.to_owned());
        self.out.insert(key.to_owned(), addr);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn want(key: &str) -> Want {
        Want {
            key: key.into(),
            fixed: None,
        }
    }

    fn seed_pool() -> Pool {
        Pool {
            subnet: "10.0.100.0/24".parse().expect("net"),
            gateway: Some(ip("10.0.100.33")),
            range: Some("10.0.100.96/27".parse().expect("net")),
            reserved: BTreeSet::new(),
            blocks: Vec::new(),
        }
    }

    #[test]
    fn the_documents_flat_example() {
        // ip_range 10.0.100.96/27: node_1 and node_2 get .97 and .98, in key
        // order; the document pins them at .100 and .101 instead.
        let got = allocate(
            &seed_pool(),
            &[want("no2/node_2"), want("no1/node_1")],
            &BTreeMap::new(),
            &BTreeMap::new(),
        )
        .expect("alloc");
        assert_eq!(got["no1/node_1"], ip("10.0.100.97"));
        assert_eq!(got["no2/node_2"], ip("10.0.100.98"));
        let fixed = [
            Want {
                key: "no1/node_1".into(),
                fixed: Some(ip("10.0.100.100")),
            },
            Want {
                key: "no2/node_2".into(),
                fixed: Some(ip("10.0.100.101")),
            },
        ];
        let got =
            allocate(&seed_pool(), &fixed, &BTreeMap::new(), &BTreeMap::new()).expect("alloc");
        assert_eq!(got["no2/node_2"], ip("10.0.100.101"));
    }

    #[test]
    fn sticky_addresses_and_fleet_wide_uniqueness() {
        let current = BTreeMap::from([("no1/b1".to_owned(), ip("10.0.100.120"))]);
        let taken = BTreeMap::from([(ip("10.0.100.97"), "no3/other".to_owned())]);
        let got = allocate(
            &seed_pool(),
            &[want("no1/b1"), want("no1/b2")],
            &current,
            &taken,
        )
        .expect("alloc");
        assert_eq!(got["no1/b1"], ip("10.0.100.120"), "kept");
        assert_eq!(
            got["no1/b2"],
            ip("10.0.100.98"),
            ".97 is used elsewhere in the fleet"
        );
    }

    #[test]
    fn errors_name_the_culprits() {
        let both = [
            Want {
                key: "no1/b1".into(),
                fixed: Some(ip("10.0.100.100")),
            },
            Want {
                key: "no2/b3".into(),
                fixed: Some(ip("10.0.100.100")),
            },
        ];
        assert_eq!(
            allocate(&seed_pool(), &both, &BTreeMap::new(), &BTreeMap::new())
                .expect_err("collision")
                .to_string(),
            "10.0.100.100 is wanted by both no1/b1 and no2/b3"
        );
        let gw = [Want {
            key: "no1/b1".into(),
            fixed: Some(ip("10.0.100.33")),
        }];
        assert_eq!(
            allocate(&seed_pool(), &gw, &BTreeMap::new(), &BTreeMap::new())
                .expect_err("gateway")
                .to_string(),
            "no1/b1: 10.0.100.33 is the gateway"
        );
        let mut tiny = seed_pool();
        tiny.range = Some("10.0.100.96/31".parse().expect("net"));
        let err = allocate(
            &tiny,
            &[want("a"), want("b"), want("c")],
            &BTreeMap::new(),
            &BTreeMap::new(),
        )
        .expect_err("exhausted");
        assert!(
            matches!(err, IpamError::Exhausted { ref key, .. } if key == "c"),
            "{err}"
        );
        let mut bad = seed_pool();
        bad.gateway = Some(ip("10.0.101.1"));
        assert_eq!(
            allocate(&bad, &[], &BTreeMap::new(), &BTreeMap::new())
                .expect_err("pool")
                .to_string(),
            "gateway 10.0.101.1: is outside the subnet 10.0.100.0/24"
        );
    }

    #[test]
    fn ipv6_pools() {
        let pool = Pool {
            subnet: "fd00:10::/64".parse().expect("net"),
            gateway: Some(ip("fd00:10::1")),
            range: None,
            reserved: BTreeSet::new(),
            blocks: Vec::new(),
        };
        let got = allocate(
            &pool,
            &[want("a"), want("b")],
            &BTreeMap::new(),
            &BTreeMap::new(),
        )
        .expect("alloc");
        assert_eq!((got["a"], got["b"]), (ip("fd00:10::2"), ip("fd00:10::3")));
    }

    proptest! {
        #[test]
        fn allocations_never_collide_and_respect_the_pool(
            prefix in 24u8..=29,
            n in 0usize..40,
            sticky in proptest::collection::vec(0u32..256, 0..8),
            reserved in proptest::collection::vec(0u32..256, 0..4),
        ) {
            let subnet: IpNet = format!("172.16.10.0/{prefix}").parse().expect("net");
            let host = |i: u32| IpAddr::V4(std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(172, 16, 10, 0)) + i));
            let pool = Pool {
                subnet,
                gateway: Some(host(1)),
                range: None,
                reserved: reserved.iter().map(|r| host(r % (1 << (32 - u32::from(prefix))))).collect(),
                blocks: Vec::new(),
            };
            let wants: Vec<Want> = (0..n).map(|i| want(&format!("h/e{i:02}"))).collect();
            let current: BTreeMap<String, IpAddr> = sticky.iter().enumerate().map(|(i, s)| (format!("h/e{i:02}"), host(*s))).collect();
            match allocate(&pool, &wants, &current, &BTreeMap::new()) {
                Ok(got) => {
                    prop_assert_eq!(got.len(), n);
                    let distinct: BTreeSet<_> = got.values().collect();
                    prop_assert_eq!(distinct.len(), n, "duplicate addresses");
                    for (k, a) in &got {
                        prop_assert!(pool.why_unusable(*a).is_none(), "{} got unusable {}", k, a);
                    }
                    // Sticky: each usable current address stays with its
                    // endpoint, unless an earlier key (in key order) has it.
                    let mut kept = BTreeSet::new();
                    for w in &wants {
                        if let Some(c) = current.get(&w.key).filter(|c| pool.why_unusable(**c).is_none())
                            && kept.insert(*c)
                        {
                            prop_assert_eq!(got[&w.key], *c, "{} lost its address", w.key);
                        }
                    }
                    // Deterministic.
                    prop_assert_eq!(allocate(&pool, &wants, &current, &BTreeMap::new()).expect("again"), got);
                }
                Err(IpamError::Exhausted { .. }) => {
                    let usable = pool.candidates().filter(|a| pool.why_unusable(*a).is_none()).count();
                    prop_assert!(n > usable, "exhausted with {} wants and {} usable", n, usable);
                }
                Err(e) => prop_assert!(false, "unexpected error {}", e),
            }
        }
    }
}
