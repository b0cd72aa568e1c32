//! Which network of this host's catalog a `docker network create` means,
//! and whether what it says (`--subnet`, `--gateway`, `-o parent=`,
//! `-o macvlan_mode=`) matches the fleet's values here. Docker never tells
//! a driver the network's name — IPAM's RequestPool and the driver's
//! CreateNetwork carry only the subnet, the options and an id — so the
//! catalog network is the one named by `linkherd.network`, else the one
//! with that subnet. Pure: messages are for a Docker user, and name the
//! fleet's value and the fix.

use std::{collections::BTreeMap, net::IpAddr};

use ipnet::IpNet;
use linkherd_proto::model::{CatalogNetwork, CatalogPool};
use serde_json::Value;

use super::{
    shown,
    wire::{ADDRESS_SPACE, IpamData, NETWORK_OPTION},
};
use linkherd_proto::model::bounds::echo;

/// At most this many networks are listed in a message.
const LISTED: usize = 12;

/// The driver options linkherd takes; the fleet spec sets the rest.
const OPTIONS: [&str; 3] = ["parent", "macvlan_mode", NETWORK_OPTION];

fn family(v6: bool) -> &'static str {
    if v6 { "IPv6" } else { "IPv4" }
}

pub fn pool(net: &CatalogNetwork, v6: bool) -> Option<&CatalogPool> {
    if v6 { net.v6.as_ref() } else { net.v4.as_ref() }
}

/// `mac_net10 (--subnet=172.16.10.0/24), ...` for the family.
fn listing(nets: &[CatalogNetwork], v6: bool) -> String {
    let mut names: Vec<String> = nets
        .iter()
        .filter_map(|n| pool(n, v6).map(|p| format!("{} (--subnet={})", n.name, p.subnet)))
        .take(LISTED)
        .collect();
    if names.is_empty() {
        names.push(format!("none with an {} subnet", family(v6)));
    }
    names.join(", ")
}

pub fn unknown(name: &str) -> String {
    format!(
        "network {} is not in this host's linkherd catalog; add it to the fleet spec \
         (with containers: ...) and run linkherdctl apply, then create the Docker network again",
        shown(name)
    )
}

/// The catalog network a pool request (or a CreateNetwork) means: `name`
/// when given, checked against `subnet`; else the one with `subnet`.
pub fn which<'a>(
    nets: &'a [CatalogNetwork],
    name: Option<&str>,
    subnet: &str,
    v6: bool,
) -> Result<&'a CatalogNetwork, String> {
    let asked = match subnet {
        "" => None,
        s => Some(s.parse::<IpNet>().map_err(|_| {
            format!(
                "--subnet {} is not a prefix such as 172.16.10.0/24",
                shown(s)
            )
        })?),
    };
    if let Some(name) = name {
        let net = nets
            .iter()
            .find(|n| n.name.as_str() == name)
            .ok_or_else(|| unknown(name))?;
        let Some(p) = pool(net, v6) else {
            return Err(format!(
                "{} has no {} subnet in the fleet",
                echo(name),
                family(v6)
            ));
        };
        return match asked {
            Some(s) if s != p.subnet => Err(format!(
                "--subnet={s} is not {name}'s: the fleet's subnet of {name} is {}; give that, \
                 or leave --subnet out",
                p.subnet
            )),
            _ => Ok(net),
        };
    }
    let Some(asked) = asked else {
        return Err(format!(
            "Docker does not tell a network driver the network's name: give the fleet's \
             subnet, one of {}, or --ipam-opt {NETWORK_OPTION}=NAME -o {NETWORK_OPTION}=NAME",
            listing(nets, v6)
        ));
    };
    let with: Vec<&CatalogNetwork> = nets
        .iter()
        .filter(|n| pool(n, v6).is_some_and(|p| p.subnet == asked))
        .collect();
    match with.as_slice() {
        [one] => Ok(one),
        [] => Err(format!(
            "no network of this host's linkherd catalog has subnet {asked} (it has {}); add it \
             to the fleet spec (with containers: ...) and run linkherdctl apply",
            listing(nets, v6)
        )),
        many => Err(format!(
            "several networks of this host's catalog have subnet {asked} ({}); say which with \
             --ipam-opt {NETWORK_OPTION}=NAME -o {NETWORK_OPTION}=NAME",
            many.iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The gateway Docker asks for (empty: whatever the fleet's is).
pub fn gateway(net: &CatalogNetwork, v6: bool, asked: &str) -> Result<IpAddr, String> {
    let Some(gw) = pool(net, v6).and_then(|p| p.gateway) else {
        return Err(format!(
            "{} has no {} gateway in the fleet, and Docker needs one for a network: set the \
             gateway in the fleet spec and run linkherdctl apply",
            net.name,
            family(v6)
        ));
    };
    match asked {
        "" => Ok(gw),
        a if a.parse::<IpAddr>().ok() == Some(gw) => Ok(gw),
        a => Err(format!(
            "--gateway={a} is not {}'s: the fleet's gateway of {} is {gw}; give that, or leave \
             --gateway out",
            net.name, net.name
        )),
    }
}

/// The rest of a CreateNetwork: linkherd's IPAM, the subnets and gateways
/// the pools gave, and the driver options.
pub fn check_network(
    net: &CatalogNetwork,
    generic: &BTreeMap<String, String>,
    v4: &[IpamData],
    v6: &[IpamData],
) -> Result<(), String> {
    for (data, is_v6) in [(v4, false), (v6, true)] {
        for d in data {
            check_data(net, d, is_v6)?;
        }
        if data.len() > 1 {
            return Err(format!(
                "a linkherd network has one {} subnet, the fleet's; give one --subnet",
                family(is_v6)
            ));
        }
    }
    check_options(net, generic)
}

fn check_data(net: &CatalogNetwork, d: &IpamData, v6: bool) -> Result<(), String> {
    if let Some(name) = d.aux_addresses.keys().next() {
        return Err(format!(
            "--aux-address {} is not used by linkherd: addresses kept from containers are \
             the fleet spec's (other hosts' blocks, endpoints' fixed addresses); leave it out",
            echo(name)
        ));
    }
    if d.address_space != ADDRESS_SPACE {
        return Err(format!(
            "create the network with --ipam-driver linkherd: {}'s addresses come from this \
             host's blocks, which Docker's own IPAM does not know",
            net.name
        ));
    }
    which(
        std::slice::from_ref(net),
        Some(net.name.as_str()),
        &d.pool,
        v6,
    )?;
    // Docker sends the gateway as ADDRESS/PREFIX.
    let asked = d.gateway.split('/').next().unwrap_or_default();
    gateway(net, v6, asked).map(drop)
}

fn check_options(net: &CatalogNetwork, generic: &BTreeMap<String, String>) -> Result<(), String> {
    if let Some(k) = generic.keys().find(|k| !OPTIONS.contains(&k.as_str())) {
        return Err(format!(
            "option {} is not one linkherd takes (it takes {}); the fleet spec sets the rest",
            shown(k),
            OPTIONS.join(", ")
        ));
    }
    if let Some(p) = generic.get("parent")
        && p != net.parent.as_str()
    {
        return Err(format!(
            "-o parent={p} is not {}'s on this host: the fleet's parent here is {}; give that, \
             or leave -o parent out",
            net.name, net.parent
        ));
    }
    if let Some(m) = generic.get("macvlan_mode")
        && !m.eq_ignore_ascii_case(net.mode.as_str())
    {
        return Err(format!(
            "-o macvlan_mode={m} is not {}'s: the fleet's mode is {}",
            net.name,
            net.mode.as_str()
        ));
    }
    Ok(())
}

/// `-o` options as strings (Docker sends them so; anything else is refused).
pub fn generic_options(
    options: &BTreeMap<String, Value>,
) -> Result<BTreeMap<String, String>, String> {
    let Some(generic) = options.get(super::wire::GENERIC) else {
        return Ok(BTreeMap::new());
    };
    let Value::Object(map) = generic else {
        return Err("the network's options are not a map of strings".to_owned());
    };
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            other => Err(format!(
                "option {} is {}, not a string",
                shown(k),
                echo(&other.to_string())
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use linkherd_proto::model::{IfName, MacvlanMode, ObjName};

    use super::*;

    fn net(name: &str, subnet: &str, gw: &str, parent: &str) -> CatalogNetwork {
        CatalogNetwork {
            name: ObjName::parse("n", name).expect("name"),
            parent: IfName::parse("p", parent).expect("parent"),
            vlan: None,
            mode: MacvlanMode::Bridge,
            mtu: None,
            v4: Some(CatalogPool {
                subnet: subnet.parse().expect("subnet"),
                gateway: Some(gw.parse().expect("gw")),
                blocks: Vec::new(),
                excluded: Vec::new(),
            }),
            v6: None,
        }
    }

    fn catalog() -> Vec<CatalogNetwork> {
        vec![
            net("mac_net10", "172.16.10.0/24", "172.16.10.1", "ens192.10"),
            net("mac_net20", "172.16.20.0/24", "172.16.20.1", "ens192.20"),
        ]
    }

    #[test]
    fn the_subnet_or_the_name_picks_the_network() {
        let c = catalog();
        assert_eq!(
            which(&c, None, "172.16.20.0/24", false)
                .expect("by subnet")
                .name
                .as_str(),
            "mac_net20"
        );
        assert_eq!(
            which(&c, Some("mac_net10"), "", false)
                .expect("by name")
                .name
                .as_str(),
            "mac_net10"
        );
        let err = which(&c, None, "", false).expect_err("neither");
        assert!(
            err.contains(
                "mac_net10 (--subnet=172.16.10.0/24), mac_net20 (--subnet=172.16.20.0/24)"
            ),
            "{err}"
        );
        let err = which(&c, Some("mac_net10"), "172.16.99.0/24", false).expect_err("drift");
        assert_eq!(
            err,
            "--subnet=172.16.99.0/24 is not mac_net10's: the fleet's subnet of mac_net10 is 172.16.10.0/24; give that, or leave --subnet out"
        );
        let err = which(&c, Some("mac_net30"), "", false).expect_err("unknown");
        assert!(err.starts_with("network \"mac_net30\" is not in this host's linkherd catalog; add it to the fleet spec"), "{err}");
        let err = which(&c, None, "10.0.0.0/8", false).expect_err("no such subnet");
        assert!(
            err.starts_with("no network of this host's linkherd catalog has subnet 10.0.0.0/8"),
            "{err}"
        );
        assert!(
            which(&c, None, "172.16.10.0/24", true)
                .expect_err("v6")
                .contains("none with an IPv6 subnet")
        );
    }

    #[test]
    fn drifting_values_are_refused_with_the_fleets() {
        let c = catalog();
        let ok = IpamData {
            address_space: ADDRESS_SPACE.into(),
            pool: "172.16.10.0/24".into(),
            gateway: "172.16.10.1/24".into(),
            aux_addresses: BTreeMap::new(),
        };
        let parent = BTreeMap::from([("parent".to_owned(), "ens192.10".to_owned())]);
        check_network(&c[0], &parent, std::slice::from_ref(&ok), &[]).expect("the document's own");
        let other = BTreeMap::from([("parent".to_owned(), "eth0.10".to_owned())]);
        assert_eq!(
            check_network(&c[0], &other, std::slice::from_ref(&ok), &[]).expect_err("parent"),
            "-o parent=eth0.10 is not mac_net10's on this host: the fleet's parent here is ens192.10; give that, or leave -o parent out"
        );
        let aux = IpamData {
            aux_addresses: BTreeMap::from([("router".to_owned(), "172.16.10.5".to_owned())]),
            ..IpamData::default()
        };
        assert!(
            check_network(&c[0], &parent, &[aux], &[])
                .expect_err("aux")
                .starts_with("--aux-address router is not used by linkherd")
        );
        let gw = IpamData {
            gateway: "172.16.10.254/24".into(),
            ..ok
        };
        assert_eq!(
            check_network(&c[0], &parent, &[gw], &[]).expect_err("gateway"),
            "--gateway=172.16.10.254 is not mac_net10's: the fleet's gateway of mac_net10 is 172.16.10.1; give that, or leave --gateway out"
        );
        let default_ipam = IpamData {
            address_space: "LocalDefault".into(),
            pool: "172.16.10.0/24".into(),
            ..IpamData::default()
        };
        assert!(
            check_network(&c[0], &parent, &[default_ipam], &[])
                .expect_err("ipam")
                .starts_with("create the network with --ipam-driver linkherd")
        );
        let odd = BTreeMap::from([("ipvlan_mode".to_owned(), "l2".to_owned())]);
        let ok = IpamData {
            address_space: ADDRESS_SPACE.into(),
            pool: "172.16.10.0/24".into(),
            ..IpamData::default()
        };
        assert!(
            check_network(&c[0], &odd, &[ok], &[])
                .expect_err("option")
                .starts_with("option \"ipvlan_mode\" is not one linkherd takes")
        );
    }
}
