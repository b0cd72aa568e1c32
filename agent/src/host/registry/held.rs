//! The addresses held on each catalog network — by attachment records and
//! by reservations — kept up to date as they change, so that a container's
//! address is found without rebuilding anything: whether one is taken is
//! O(log n), and the lowest free one of a block is searched from a floor
//! below which everything is known to be held (amortized O(log n) for the
//! usual lowest-first filling, where scanning from the block's start cost
//! O(n) per call: 20,000 reservations made each request 8× slower).

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    time::Instant,
};

use ipnet::IpNet;

/// Every held address, by network, and the search floors.
#[derive(Debug, Default)]
pub struct Held {
    /// network → address → how many hold it (a reservation and the record
    /// made from it may overlap for a moment).
    by_net: HashMap<String, BTreeMap<IpAddr, u32>>,
    /// (network, block) → the floor of that block's search.
    floors: HashMap<(String, IpNet), Floor>,
}

/// Every address of the block below `at` is held, or unusable under the
/// rules `rules` fingerprints (the subnet's special addresses and the
/// catalog's exclusions): another set of rules starts from the block's
/// start again.
#[derive(Debug, Clone, Copy)]
struct Floor {
    at: IpAddr,
    rules: u64,
}

impl Held {
    pub fn hold(&mut self, network: &str, a: IpAddr) {
        *self
            .by_net
            .entry(network.to_owned())
            .or_default()
            .entry(a)
            .or_insert(0) += 1;
    }

    /// One holder of `a` fewer; when it was the last, the floors of the
    /// blocks it is in come down to it.
    pub fn unhold(&mut self, network: &str, a: IpAddr) {
        let Some(held) = self.by_net.get_mut(network) else {
            return;
        };
        let Some(n) = held.get_mut(&a) else {
            return;
        };
        *n -= 1;
        if *n > 0 {
            return;
        }
        held.remove(&a);
        for ((net, block), floor) in &mut self.floors {
            if net == network && block.contains(&a) && a < floor.at {
                floor.at = a;
            }
        }
    }

    /// The addresses of `network` as one caller sees them: `mine` (the
    /// caller's own, which it may have again) free, `avoid` taken.
    pub fn view<'a>(
        &'a mut self,
        network: &str,
        mine: Vec<IpAddr>,
        avoid: Option<&'a BTreeMap<IpAddr, Instant>>,
    ) -> Taken<'a> {
        Taken {
            network: network.to_owned(),
            held: self.by_net.get(network),
            floors: &mut self.floors,
            mine,
            avoid,
        }
    }
}

/// A caller's view of a network's addresses (see [`Held::view`]).
#[derive(Debug)]
pub struct Taken<'a> {
    network: String,
    held: Option<&'a BTreeMap<IpAddr, u32>>,
    floors: &'a mut HashMap<(String, IpNet), Floor>,
    mine: Vec<IpAddr>,
    avoid: Option<&'a BTreeMap<IpAddr, Instant>>,
}

impl Taken<'_> {
    /// Held by someone other than the caller.
    fn held(&self, a: IpAddr) -> bool {
        let holders = self.held.and_then(|h| h.get(&a)).copied().unwrap_or(0);
        holders > u32::from(self.mine.contains(&a))
    }

    fn avoided(&self, a: IpAddr) -> bool {
        self.avoid.is_some_and(|s| s.contains_key(&a))
    }

    /// Whether someone else holds `a`, or the caller is to avoid it.
    pub fn contains(&self, a: IpAddr) -> bool {
        self.held(a) || self.avoided(a)
    }

    /// The lowest address of `block` that is not taken and that `usable`
    /// accepts (under the rules `rules` fingerprints), searched from the
    /// block's floor, which it then raises.
    pub fn lowest_free(
        &mut self,
        block: IpNet,
        rules: u64,
        usable: impl Fn(IpAddr) -> bool,
    ) -> Option<IpAddr> {
        let key = (self.network.clone(), block);
        let (lo, hi) = (Self::num(block.network()), Self::num(block.broadcast()));
        let floor = self
            .floors
            .get(&key)
            .filter(|f| f.rules == rules)
            .map_or(lo, |f| Self::num(f.at).max(lo));
        // The caller's own addresses are free for it, floor or not.
        let start = self
            .mine
            .iter()
            .filter(|a| block.contains(*a))
            .map(|a| Self::num(*a))
            .fold(floor, u128::min);
        let mut first_unheld = None;
        let mut found = None;
        for x in start..=hi {
            let a = Self::addr(block, x);
            if self.held(a) || !usable(a) {
                continue;
            }
            if self.avoided(a) {
                first_unheld.get_or_insert(a);
                continue;
            }
            found = Some(a);
            break;
        }
        let at = first_unheld
            .or(found)
            .unwrap_or_else(|| Self::addr(block, hi));
        if Self::num(at) >= floor {
            self.floors.insert(key, Floor { at, rules });
        }
        found
    }

    fn num(a: IpAddr) -> u128 {
        match a {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            IpAddr::V6(v6) => u128::from(v6),
        }
    }

    fn addr(block: IpNet, x: u128) -> IpAddr {
        match block {
            // A v4 block's numbers fit in 32 bits.
            IpNet::V4(_) => IpAddr::V4(u32::try_from(x).unwrap_or(u32::MAX).into()),
            IpNet::V6(_) => IpAddr::V6(x.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    const NET: &str = "n";

    fn block() -> IpNet {
        "10.0.0.32/27".parse().expect("block")
    }

    fn at(offset: u8) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 32 + (offset % 32)))
    }

    /// Two sets of rules: .33 unusable always, .40-.47 only under rules 2.
    fn usable(rules: u64) -> impl Fn(IpAddr) -> bool {
        move |a: IpAddr| {
            let IpAddr::V4(v4) = a else { return false };
            let last = v4.octets()[3];
            last != 33 && !(rules == 2 && (40..48).contains(&last))
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Take {
            rules: u64,
            avoid: Vec<u8>,
            mine: Vec<u8>,
        },
        HoldAt(u8),
        Free(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1..=2u64, prop::collection::vec(0..32u8, 0..3), prop::collection::vec(0..32u8, 0..2))
                .prop_map(|(rules, avoid, mine)| Op::Take { rules, avoid, mine }),
            1 => (0..32u8).prop_map(Op::HoldAt),
            3 => (0..32u8).prop_map(Op::Free),
        ]
    }

    /// The lowest free address, as the scan from the block's start gave it.
    fn naive(
        held: &BTreeMap<IpAddr, u32>,
        mine: &[IpAddr],
        avoid: &BTreeSet<IpAddr>,
        rules: u64,
    ) -> Option<IpAddr> {
        (0..32).map(at).find(|a| {
            let holders = held.get(a).copied().unwrap_or(0);
            holders <= u32::from(mine.contains(a)) && !avoid.contains(a) && usable(rules)(*a)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The floors never make the search miss a free address, whatever
        /// is held, freed, avoided, the caller's own, or the rules.
        #[test]
        fn the_floor_search_finds_what_a_full_scan_finds(ops in prop::collection::vec(op(), 1..80)) {
            let mut h = Held::default();
            let mut model: BTreeMap<IpAddr, u32> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Take { rules, avoid, mine } => {
                        let avoid_at: BTreeMap<IpAddr, Instant> =
                            avoid.iter().map(|o| (at(*o), Instant::now())).collect();
                        let avoid_set: BTreeSet<IpAddr> = avoid_at.keys().copied().collect();
                        let mine: Vec<IpAddr> =
                            mine.iter().map(|o| at(*o)).filter(|a| model.contains_key(a)).collect();
                        let want = naive(&model, &mine, &avoid_set, rules);
                        let got = h
                            .view(NET, mine, (!avoid_at.is_empty()).then_some(&avoid_at))
                            .lowest_free(block(), rules, usable(rules));
                        prop_assert_eq!(got, want);
                        if let Some(a) = got {
                            h.hold(NET, a);
                            *model.entry(a).or_insert(0) += 1;
                        }
                    }
                    Op::HoldAt(o) => {
                        h.hold(NET, at(o));
                        *model.entry(at(o)).or_insert(0) += 1;
                    }
                    Op::Free(o) => {
                        if let Some(n) = model.get_mut(&at(o)) {
                            *n -= 1;
                            if *n == 0 {
                                model.remove(&at(o));
                            }
                            h.unhold(NET, at(o));
                        }
                    }
                }
            }
        }
    }

    /// Lowest-first filling of a large block starts each search at the
    /// floor: the 20,000th address is found without scanning the first.
    #[test]
    fn a_full_block_is_not_scanned_again() {
        let mut h = Held::default();
        let block: IpNet = "fd00::/112".parse().expect("block");
        let calls = std::cell::Cell::new(0u64);
        let counting = |_: IpAddr| {
            calls.set(calls.get() + 1);
            true
        };
        for _ in 0..20_000 {
            let a = h
                .view(NET, vec![], None)
                .lowest_free(block, 1, counting)
                .expect("room");
            h.hold(NET, a);
        }
        assert!(
            calls.get() < 2 * 20_000,
            "{} addresses looked at",
            calls.get()
        );
        let last = h.view(NET, vec![], None).lowest_free(block, 1, counting);
        assert_eq!(last, Some("fd00::4e20".parse().expect("ip")));
    }
}
