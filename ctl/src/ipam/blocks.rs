//! Address blocks for containers. Runtimes (CNI, Docker) create containers
//! on one host without asking the others, so each host of a network gets
//! prefixes of the network's range to allocate from on its own: two hosts
//! can never hand out the same address. Blocks are granted here, from what
//! the agents say they hold, like endpoint addresses: deterministic (lowest
//! free block first, hosts in name order), sticky (a host keeps its
//! blocks), never overlapping each other or any address the fleet uses or
//! excludes, and never taken away while in use.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use ipnet::IpNet;
use linkherd_proto::model::subnet_specials;

use super::Pool;

/// How a network's container blocks are cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockPlan<'a> {
    /// The network's subnet, gateway and reserved addresses.
    pub pool: &'a Pool,
    /// Where blocks are carved from (inside the subnet).
    pub range: IpNet,
    /// Prefix length of each block.
    pub len: u8,
}

/// A block a host holds now, as its agent reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub block: IpNet,
    /// Addresses of it given to containers.
    pub used: u64,
}

/// The blocks of every host after granting, and what could not be done
/// without being an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub blocks: BTreeMap<String, Vec<IpNet>>,
    /// E.g. a nearly full host that got no further block: the range is full.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("containers.block /{len} does not fit in {range}: use /{} to /{}", range.prefix_len(), range.max_prefix_len())]
    Size { len: u8, range: IpNet },
    #[error(
        "{host} holds {block} with {used} container address(es) in use, but {why}; \
         a block in use is never taken away: remove those containers first, or keep the block"
    )]
    InUse {
        host: String,
        block: IpNet,
        used: u64,
        why: String,
    },
    #[error(
        "no free /{len} block left in {range} for {host}; widen containers.range or use a longer block prefix"
    )]
    Exhausted { host: String, range: IpNet, len: u8 },
}

/// An address as a number, for both families.
fn num(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// A prefix as the numbers of its first and last address.
fn span(n: &IpNet) -> (u128, u128) {
    (num(n.network()), num(n.broadcast()))
}

fn net_at(range: &IpNet, start: u128, len: u8) -> Option<IpNet> {
    let addr = match range {
        IpNet::V4(_) => IpAddr::V4(u32::try_from(start).ok()?.into()),
        IpNet::V6(_) => IpAddr::V6(start.into()),
    };
    IpNet::new(addr, len).ok()
}

/// What no block may cover: other blocks, and single addresses.
#[derive(Debug, Default)]
struct Occupied {
    /// Inclusive spans, by start.
    spans: BTreeMap<u128, u128>,
}

impl Occupied {
    fn add(&mut self, (start, end): (u128, u128)) {
        let e = self.spans.entry(start).or_insert(end);
        *e = (*e).max(end);
    }

    /// The end of an occupied span that overlaps `[start, end]`, if any.
    fn overlap(&self, start: u128, end: u128) -> Option<u128> {
        self.spans
            .range(..=end)
            .filter(|(_, e)| **e >= start)
            .map(|(_, e)| *e)
            .max()
    }
}

impl BlockPlan<'_> {
    /// Why `block` may not be a host's (it may while it fits), if it may not.
    fn why_not(&self, block: &IpNet, avoid: &BTreeMap<IpAddr, String>) -> Option<String> {
        let (start, end) = span(block);
        let (rs, re) = span(&self.range);
        if start < rs || end > re {
            return Some(format!("it is not inside containers.range {}", self.range));
        }
        let hit = |a: &IpAddr| (start..=end).contains(&num(*a));
        if let Some((a, who)) = avoid.iter().find(|(a, _)| hit(a)) {
            return Some(format!("it holds {a}, used by {who}"));
        }
        if let Some(g) = self.pool.gateway.filter(hit) {
            return Some(format!("it holds the gateway {g}"));
        }
        if let Some(r) = self.pool.reserved.iter().find(|r| hit(r)) {
            return Some(format!("it holds the reserved address {r}"));
        }
        if let Some(s) = specials(self.pool).into_iter().find(|s| hit(s)) {
            return Some(format!("it holds the subnet's address {s}"));
        }
        None
    }

    /// The lowest free block, skipping whatever is occupied.
    fn lowest_free(&self, occupied: &Occupied) -> Option<IpNet> {
        let size = 1u128 << (self.range.max_prefix_len() - self.len);
        let (mut start, last) = span(&self.range);
        while start.checked_add(size - 1)? <= last {
            let end = start + size - 1;
            match occupied.overlap(start, end) {
                // Past the occupied span, at the next aligned start.
                Some(e) => start = (e / size).checked_add(1)?.checked_mul(size)?,
                None => return net_at(&self.range, start, self.len),
            }
        }
        None
    }
}

/// Grants blocks to `hosts` (every host that is to offer addresses).
///
/// `held`: what each host holds now, kept where it still fits, dropped
/// where it does not and nothing is in use, refused ([`BlockError::InUse`])
/// where it does not and something is. A host holding no block gets one;
/// one whose blocks have less than a quarter free gets one more when the
/// range has room. `avoid`: every address the fleet uses or fixes (endpoint
/// and host-access addresses), with who uses it.
pub fn grant(
    plan: &BlockPlan,
    hosts: &BTreeSet<String>,
    held: &BTreeMap<String, Vec<Held>>,
    avoid: &BTreeMap<IpAddr, String>,
) -> Result<Grants, BlockError> {
    let max = plan.range.max_prefix_len();
    if plan.len < plan.range.prefix_len() || plan.len > max {
        return Err(BlockError::Size {
            len: plan.len,
            range: plan.range,
        });
    }
    let mut occupied = Occupied::default();
    for a in avoid.keys() {
        occupied.add((num(*a), num(*a)));
    }
    let mut out = Grants::default();
    let mut load: BTreeMap<&str, (u64, u128)> = BTreeMap::new();
    keep_held(plan, hosts, held, avoid, &mut occupied, &mut out, &mut load)?;
    for a in plan.pool.gateway.iter().chain(&plan.pool.reserved) {
        occupied.add((num(*a), num(*a)));
    }
    for a in specials(plan.pool) {
        occupied.add((num(a), num(a)));
    }
    for host in hosts {
        let (used, capacity) = load.get(host.as_str()).copied().unwrap_or((0, 0));
        let wanted = capacity == 0 || u128::from(used) * 4 >= capacity * 3;
        if !wanted {
            continue;
        }
        match plan.lowest_free(&occupied) {
            Some(b) => {
                occupied.add(span(&b));
                out.blocks.entry(host.clone()).or_default().push(b);
            }
            None if capacity == 0 => {
                return Err(BlockError::Exhausted {
                    host: host.clone(),
                    range: plan.range,
                    len: plan.len,
                });
            }
            None => out.notes.push(format!(
                "{host} has {used} of its {capacity} container addresses in use, and {} has no free /{} block left",
                plan.range, plan.len
            )),
        }
    }
    Ok(out)
}

/// The held blocks that still fit, into `out` and `occupied`, with each
/// host's use and capacity in `load`; those that do not fit are dropped
/// when unused, refused when in use.
fn keep_held<'h>(
    plan: &BlockPlan,
    hosts: &BTreeSet<String>,
    held: &'h BTreeMap<String, Vec<Held>>,
    avoid: &BTreeMap<IpAddr, String>,
    occupied: &mut Occupied,
    out: &mut Grants,
    load: &mut BTreeMap<&'h str, (u64, u128)>,
) -> Result<(), BlockError> {
    for (host, blocks) in held {
        for h in blocks {
            let why = if !hosts.contains(host) {
                Some(format!(
                    "{host} no longer offers container addresses on this network"
                ))
            } else if out.blocks.values().flatten().any(|b| overlaps(b, &h.block)) {
                Some("it overlaps a block of another host".to_owned())
            } else {
                plan.why_not(&h.block, avoid)
            };
            match why {
                Some(why) if h.used > 0 => {
                    return Err(BlockError::InUse {
                        host: host.clone(),
                        block: h.block,
                        used: h.used,
                        why,
                    });
                }
                Some(_) => {}
                None => {
                    occupied.add(span(&h.block));
                    out.blocks.entry(host.clone()).or_default().push(h.block);
                    let l = load.entry(host.as_str()).or_default();
                    l.0 += h.used;
                    l.1 += 1u128 << (h.block.max_prefix_len() - h.block.prefix_len());
                }
            }
        }
    }
    Ok(())
}

fn specials(pool: &Pool) -> Vec<IpAddr> {
    subnet_specials(&pool.subnet)
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("net")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn pool() -> Pool {
        Pool {
            subnet: net("172.16.10.0/24"),
            gateway: Some(ip("172.16.10.1")),
            range: None,
            reserved: BTreeSet::from([ip("172.16.10.40")]),
            blocks: Vec::new(),
        }
    }

    fn hosts(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|h| (*h).to_owned()).collect()
    }

    fn blocks(g: &Grants, host: &str) -> Vec<String> {
        g.blocks[host].iter().map(ToString::to_string).collect()
    }

    #[test]
    fn blocks_skip_the_gateway_reserved_and_used_addresses_and_stay_put() {
        let pool = pool();
        let plan = BlockPlan {
            pool: &pool,
            range: pool.subnet,
            len: 28,
        };
        // .0/28 holds the network address and the gateway, .16/28 the
        // fixed endpoint .20, .32/28 the reserved .40.
        let avoid = BTreeMap::from([(ip("172.16.10.20"), "no1/b1".to_owned())]);
        let g = grant(&plan, &hosts(&["no2", "no1"]), &BTreeMap::new(), &avoid).expect("grant");
        assert_eq!(blocks(&g, "no1"), ["172.16.10.48/28"]);
        assert_eq!(blocks(&g, "no2"), ["172.16.10.64/28"]);
        // Read back from the agents, they are kept, whatever comes first now.
        let held = BTreeMap::from([
            (
                "no1".to_owned(),
                vec![Held {
                    block: net("172.16.10.48/28"),
                    used: 3,
                }],
            ),
            (
                "no2".to_owned(),
                vec![Held {
                    block: net("172.16.10.64/28"),
                    used: 0,
                }],
            ),
        ]);
        let g2 = grant(&plan, &hosts(&["no0", "no1", "no2"]), &held, &avoid).expect("again");
        assert_eq!(blocks(&g2, "no1"), ["172.16.10.48/28"]);
        assert_eq!(blocks(&g2, "no2"), ["172.16.10.64/28"]);
        assert_eq!(blocks(&g2, "no0"), ["172.16.10.80/28"]);
    }

    #[test]
    fn a_nearly_used_host_gets_another_block_and_a_full_range_is_named() {
        let pool = pool();
        let plan = BlockPlan {
            pool: &pool,
            range: net("172.16.10.192/26"),
            len: 28,
        };
        let held = |used| {
            BTreeMap::from([(
                "no1".to_owned(),
                vec![Held {
                    block: net("172.16.10.192/28"),
                    used,
                }],
            )])
        };
        let g = grant(&plan, &hosts(&["no1"]), &held(11), &BTreeMap::new()).expect("11 of 16");
        assert_eq!(blocks(&g, "no1"), ["172.16.10.192/28"]);
        let g = grant(&plan, &hosts(&["no1"]), &held(12), &BTreeMap::new()).expect("12 of 16");
        assert_eq!(blocks(&g, "no1"), ["172.16.10.192/28", "172.16.10.208/28"]);
        // .240/28 holds the broadcast address: three hosts fit, not four.
        let err = grant(
            &plan,
            &hosts(&["a", "b", "c", "d"]),
            &BTreeMap::new(),
            &BTreeMap::new(),
        )
        .expect_err("full");
        assert_eq!(
            err.to_string(),
            "no free /28 block left in 172.16.10.192/26 for d; \
             widen containers.range or use a longer block prefix"
        );
    }

    #[test]
    fn a_block_in_use_is_never_taken_away_and_an_unused_one_is_released() {
        let pool = pool();
        let plan = BlockPlan {
            pool: &pool,
            range: net("172.16.10.128/25"),
            len: 28,
        };
        let held = |used| {
            BTreeMap::from([(
                "no1".to_owned(),
                vec![Held {
                    block: net("172.16.10.48/28"),
                    used,
                }],
            )])
        };
        let err = grant(&plan, &hosts(&["no1"]), &held(2), &BTreeMap::new()).expect_err("shrunk");
        assert_eq!(
            err.to_string(),
            "no1 holds 172.16.10.48/28 with 2 container address(es) in use, but it is not \
             inside containers.range 172.16.10.128/25; a block in use is never taken away: \
             remove those containers first, or keep the block"
        );
        let g = grant(&plan, &hosts(&["no1"]), &held(0), &BTreeMap::new()).expect("unused");
        assert_eq!(blocks(&g, "no1"), ["172.16.10.128/28"]);
        let err = grant(&plan, &hosts(&[]), &held(1), &BTreeMap::new()).expect_err("host gone");
        assert!(
            err.to_string()
                .contains("but no1 no longer offers container addresses"),
            "{err}"
        );
        let bad = BlockPlan { len: 24, ..plan };
        assert_eq!(
            grant(&bad, &hosts(&["no1"]), &BTreeMap::new(), &BTreeMap::new())
                .expect_err("size")
                .to_string(),
            "containers.block /24 does not fit in 172.16.10.128/25: use /25 to /32"
        );
    }

    #[test]
    fn ipv6_blocks() {
        let pool = Pool {
            subnet: net("fd00:10::/64"),
            gateway: Some(ip("fd00:10::1")),
            range: None,
            reserved: BTreeSet::new(),
            blocks: Vec::new(),
        };
        let plan = BlockPlan {
            pool: &pool,
            range: pool.subnet,
            len: 112,
        };
        let g = grant(
            &plan,
            &hosts(&["a", "b"]),
            &BTreeMap::new(),
            &BTreeMap::new(),
        )
        .expect("v6");
        assert_eq!(blocks(&g, "a"), ["fd00:10::1:0/112"]);
        assert_eq!(blocks(&g, "b"), ["fd00:10::2:0/112"]);
    }

    proptest! {
        #[test]
        fn blocks_never_overlap_anything_stay_sticky_and_are_deterministic(
            len in 26u8..=30,
            n_hosts in 1usize..12,
            avoid in proptest::collection::vec(2u32..255, 0..10),
            used in proptest::collection::vec(0u64..8, 12),
        ) {
            let pool = pool();
            let plan = BlockPlan { pool: &pool, range: pool.subnet, len };
            let host_names: BTreeSet<String> = (0..n_hosts).map(|i| format!("h{i:02}")).collect();
            let at = |i: u32| IpAddr::V4(std::net::Ipv4Addr::from(0xac10_0a00 + i));
            let avoid: BTreeMap<IpAddr, String> =
                avoid.iter().map(|i| (at(*i), format!("ep{i}"))).collect();
            let first = grant(&plan, &host_names, &BTreeMap::new(), &avoid);
            let Ok(first) = first else {
                // Only a full range may refuse.
                prop_assert!(matches!(first, Err(BlockError::Exhausted { .. })), "{:?}", first);
                return Ok(());
            };
            prop_assert_eq!(&grant(&plan, &host_names, &BTreeMap::new(), &avoid).expect("again"), &first);
            let all: Vec<IpNet> = first.blocks.values().flatten().copied().collect();
            for (i, b) in all.iter().enumerate() {
                prop_assert!(plan.why_not(b, &avoid).is_none(), "{} may not be granted", b);
                for c in &all[i + 1..] {
                    prop_assert!(!overlaps(b, c), "{} overlaps {}", b, c);
                }
            }
            // Read back with some use: every block stays with its host.
            let held: BTreeMap<String, Vec<Held>> = first
                .blocks
                .iter()
                .enumerate()
                .map(|(i, (h, bs))| (h.clone(), bs.iter().map(|b| Held { block: *b, used: used[i] }).collect()))
                .collect();
            if let Ok(second) = grant(&plan, &host_names, &held, &avoid) {
                for (h, bs) in &first.blocks {
                    prop_assert_eq!(&second.blocks[h][..bs.len()], &bs[..], "{} lost a block", h);
                }
            }
        }
    }
}
