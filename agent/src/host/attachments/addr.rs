//! Which addresses an attachment gets: the one asked for, checked against
//! the catalog's rules; else the one this key had (sticky); else the lowest
//! free address of this host's blocks. The caller holds the lock and passes
//! its view of what others hold (see `registry::held`).

use std::{
    hash::{Hash, Hasher},
    net::IpAddr,
};

use ipnet::IpNet;
use linkherd_proto::model::{CatalogNetwork, CatalogPool, ValidationError, is_subnet_special};

use crate::{error::Error, host::registry::held::Taken};

/// The addresses for an attach on `net`: `asked` (any family), `before`
/// (what this key had), `taken` (other attachments' addresses here).
pub fn choose(
    net: &CatalogNetwork,
    asked: &[IpAddr],
    before: &[IpNet],
    taken: &mut Taken<'_>,
) -> Result<Vec<IpNet>, Error> {
    if let Some(a) = asked.iter().find(|a| pool_of(net, **a).is_none()) {
        let family = if a.is_ipv4() { "IPv4" } else { "IPv6" };
        return Err(Error::Invalid(ValidationError::new(
            "addresses",
            a.to_string(),
            format!("network {} has no {family} subnet", net.name),
            "ask for an address of the network's subnet",
        )));
    }
    let mut out = Vec::new();
    for pool in [&net.v4, &net.v6].into_iter().flatten() {
        let v4 = pool.subnet.addr().is_ipv4();
        let mine: Vec<IpAddr> = asked
            .iter()
            .filter(|a| a.is_ipv4() == v4)
            .copied()
            .collect();
        let addr = match mine.as_slice() {
            [a] => {
                check_asked(pool, *a, taken)?;
                *a
            }
            [] => match sticky(before, v4, taken).or_else(|| lowest_free(pool, taken)) {
                Some(a) => a,
                None if pool.blocks.is_empty() => continue,
                None => {
                    return Err(Error::Precondition(format!(
                        "no free address left in this host's blocks of {} ({}); free some, or \
                         the next apply grants another block when the range has room",
                        net.name,
                        pool.blocks
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(" ")
                    )));
                }
            },
            _ => {
                return Err(Error::Invalid(ValidationError::new(
                    "addresses",
                    format!("{mine:?}"),
                    "asks for more than one address of a family",
                    "ask for at most one address of each family",
                )));
            }
        };
        // The prefix length is the subnet's, valid for its family.
        out.extend(IpNet::new(addr, pool.subnet.prefix_len()).ok());
    }
    if out.is_empty() {
        return Err(Error::Precondition(format!(
            "network {} gives containers no addresses on this host (it has no blocks here); \
             ask for one (podman --ip), or set containers.block in the fleet spec and apply",
            net.name
        )));
    }
    Ok(out)
}

fn pool_of(net: &CatalogNetwork, a: IpAddr) -> Option<&CatalogPool> {
    [&net.v4, &net.v6]
        .into_iter()
        .flatten()
        .find(|p| p.subnet.addr().is_ipv4() == a.is_ipv4())
}

/// An asked-for address, by the catalog's rules.
fn check_asked(pool: &CatalogPool, a: IpAddr, taken: &Taken<'_>) -> Result<(), Error> {
    if let Some(why) = pool.why_excluded(a) {
        return Err(Error::Precondition(format!(
            "address {a} {why}; ask for another"
        )));
    }
    if special(pool, a) {
        return Err(Error::Precondition(format!(
            "address {a} is the subnet's network or broadcast address; ask for another"
        )));
    }
    if taken.contains(a) {
        return Err(Error::Exists(format!(
            "address {a} is attached to another container on this host already; ask for another"
        )));
    }
    Ok(())
}

fn special(pool: &CatalogPool, a: IpAddr) -> bool {
    is_subnet_special(&pool.subnet, a)
}

/// What this key had, of the family, unless another has it now.
fn sticky(before: &[IpNet], v4: bool, taken: &Taken<'_>) -> Option<IpAddr> {
    before
        .iter()
        .map(IpNet::addr)
        .find(|a| a.is_ipv4() == v4 && !taken.contains(*a))
}

/// The lowest address of the blocks no one has, skipping what the catalog
/// excludes (blocks never hold it; a hand-edited catalog might).
fn lowest_free(pool: &CatalogPool, taken: &mut Taken<'_>) -> Option<IpAddr> {
    let rules = rules_of(pool);
    let usable = |a: IpAddr| pool.why_excluded(a).is_none() && !special(pool, a);
    pool.blocks
        .iter()
        .find_map(|b| taken.lowest_free(*b, rules, usable))
}

/// A fingerprint of what makes a pool's address unusable (its subnet, its
/// gateway, its exclusions): the search floors hold while it does not
/// change.
fn rules_of(pool: &CatalogPool) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    pool.subnet.hash(&mut h);
    pool.gateway.hash(&mut h);
    for e in &pool.excluded {
        e.prefix.hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use linkherd_proto::model::{Excluded, IfName, MacvlanMode, ObjName};

    use super::*;
    use crate::host::registry::held::Held;

    /// What `addrs` hold on mac_net10.
    fn holding(addrs: &BTreeSet<IpAddr>) -> Held {
        let mut h = Held::default();
        for a in addrs {
            h.hold("mac_net10", *a);
        }
        h
    }

    fn pick(
        asked: &[IpAddr],
        before: &[IpNet],
        taken: &BTreeSet<IpAddr>,
    ) -> Result<Vec<IpNet>, Error> {
        choose(
            &net(),
            asked,
            before,
            &mut holding(taken).view("mac_net10", vec![], None),
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn net() -> CatalogNetwork {
        CatalogNetwork {
            name: ObjName::parse("n", "mac_net10").expect("name"),
            parent: IfName::parse("p", "ens192.10").expect("name"),
            vlan: None,
            mode: MacvlanMode::Bridge,
            mtu: None,
            v4: Some(CatalogPool {
                subnet: "172.16.10.0/24".parse().expect("net"),
                gateway: Some(ip("172.16.10.1")),
                blocks: vec!["172.16.10.48/30".parse().expect("net")],
                excluded: vec![Excluded {
                    prefix: "172.16.10.64/28".parse().expect("net"),
                    why: "no2's container block".into(),
                }],
            }),
            v6: None,
        }
    }

    #[test]
    fn lowest_free_then_sticky_then_full() {
        let none = BTreeSet::new();
        let got = pick(&[], &[], &none).expect("first");
        assert_eq!(got, ["172.16.10.48/24".parse::<IpNet>().expect("net")]);
        let taken = BTreeSet::from([ip("172.16.10.48"), ip("172.16.10.49")]);
        let got = pick(&[], &[], &taken).expect("next");
        assert_eq!(got[0].addr(), ip("172.16.10.50"));
        let before = ["172.16.10.51/24".parse::<IpNet>().expect("net")];
        assert_eq!(
            pick(&[], &before, &taken).expect("sticky")[0].addr(),
            ip("172.16.10.51")
        );
        let all = (48..=51).map(|x| ip(&format!("172.16.10.{x}"))).collect();
        let err = pick(&[], &[], &all).expect_err("full");
        assert!(
            err.to_string().contains(
                "no free address left in this host's blocks of mac_net10 (172.16.10.48/30)"
            ),
            "{err}"
        );
    }

    #[test]
    fn an_asked_address_names_the_rule_it_breaks() {
        let taken = BTreeSet::from([ip("172.16.10.20")]);
        let cases = [
            (
                "172.16.10.1",
                "address 172.16.10.1 is the gateway; ask for another",
            ),
            (
                "172.16.10.70",
                "address 172.16.10.70 is taken: no2's container block (172.16.10.64/28); ask for another",
            ),
            (
                "172.16.11.5",
                "address 172.16.11.5 is outside the subnet 172.16.10.0/24; ask for another",
            ),
            (
                "172.16.10.255",
                "address 172.16.10.255 is the subnet's network or broadcast address; ask for another",
            ),
            (
                "172.16.10.20",
                "address 172.16.10.20 is attached to another container on this host already; ask for another",
            ),
            (
                "fd00::5",
                "network mac_net10 has no IPv6 subnet; ask for an address of the network's subnet",
            ),
        ];
        for (a, msg) in cases {
            let err = pick(&[ip(a)], &[], &taken).expect_err(a);
            assert!(err.to_string().ends_with(msg), "{a}: {err}");
        }
        // Outside the blocks but allowed: the rules, not the blocks, bound it.
        assert_eq!(
            pick(&[ip("172.16.10.10")], &[], &taken).expect("ok")[0].addr(),
            ip("172.16.10.10")
        );
    }
}
