use std::path::PathBuf;

use super::*;

fn spec(text: &str) -> FleetSpec {
    FleetSpec::parse(text, "t.yaml").expect("valid spec")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn names<T>(v: &[T], f: impl Fn(&T) -> String) -> Vec<String> {
    v.iter().map(f).collect()
}

const HOSTS: &str = "hosts:\n  no1: {address: https://a:1, parent: ens192}\n  no2: {address: https://b:1, parent: eth0}\n";

#[test]
fn seed_vlan_puts_each_network_on_each_hosts_own_vlan_parent() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/seed-vlan.yaml");
    let s = FleetSpec::load(&path).expect("seed-vlan.yaml");
    let d = desired(&s, &Observed::default()).expect("desired");
    assert_eq!(d.keys().collect::<Vec<_>>(), ["no1", "no2"]);
    let no1 = &d["no1"];
    assert_eq!(
        names(&no1.vlans, |v| v.name.to_string()),
        ["ens192.10", "ens192.20"]
    );
    assert_eq!(
        names(&no1.vlans, |v| v.parent.to_string()),
        ["ens192", "ens192"]
    );
    let b1 = &no1.endpoints[0];
    assert_eq!(
        (b1.name.as_str(), b1.parent.as_str(), b1.ifname.as_str()),
        ("b1", "ens192.10", "eth0")
    );
    assert_eq!(
        b1.addresses,
        ["172.16.10.10/24".parse::<IpNet>().expect("net")]
    );
    assert_eq!(b1.gateway, Some(ip("172.16.10.1")));
    assert_eq!(b1.netns, NetnsRef::Named("b1".into()));
    assert!(b1.create_netns);
    let no2 = &d["no2"];
    assert_eq!(
        names(&no2.vlans, |v| v.name.to_string()),
        ["eth0.10", "eth0.20"]
    );
    assert_eq!(
        names(&no2.endpoints, |e| format!(
            "{} {} {:?}",
            e.name, e.parent, e.addresses
        )),
        [
            "b3 eth0.10 [172.16.10.11/24]",
            "b4 eth0.20 [172.16.20.11/24]"
        ]
    );
    assert!(no1.host_access.is_empty() && no2.host_access.is_empty());
}

#[test]
fn every_host_speaks_for_every_network_and_teardown_names_the_vlans() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/seed-vlan.yaml");
    let s = FleetSpec::load(&path).expect("seed-vlan.yaml");
    // b2 is no1's only mac_net20 endpoint: without it, no1 must still
    // speak for mac_net20 so that the agent deletes b2.
    let mut without_b2 = s.clone();
    for n in without_b2.networks.values_mut() {
        n.endpoints.retain(|name, _| name.as_str() != "b2");
    }
    let d = desired(&without_b2, &Observed::default()).expect("desired");
    assert_eq!(
        names(&d["no1"].networks, ToString::to_string),
        ["mac_net10", "mac_net20"]
    );
    assert_eq!(names(&d["no1"].endpoints, |e| e.name.to_string()), ["b1"]);
    assert!(d["no1"].absent_vlans.is_empty());

    let t = teardown(&s).expect("teardown");
    for (host, vlans) in [
        ("no1", ["ens192.10", "ens192.20"]),
        ("no2", ["eth0.10", "eth0.20"]),
    ] {
        let h = &t[host];
        assert!(h.endpoints.is_empty() && h.vlans.is_empty() && h.host_access.is_empty());
        assert_eq!(names(&h.absent_vlans, ToString::to_string), vlans);
        assert_eq!(
            names(&h.networks, ToString::to_string),
            ["mac_net10", "mac_net20"]
        );
    }
}

#[test]
fn new_endpoints_get_the_lowest_free_address_and_old_ones_keep_theirs() {
    let s = spec(&format!(
        "{HOSTS}networks:\n  n:\n    subnet: 10.0.0.0/24\n    gateway: 10.0.0.1\n    reserved: [10.0.0.2]\n    \
         host_access: {{no1: 10.0.0.3}}\n    endpoints:\n      a: {{host: no1}}\n      b: {{host: no2}}\n      \
         c: {{host: no1, ip: 10.0.0.4}}\n      d: {{host: no2}}\n"
    ));
    let mut seen = Observed::default();
    // d already has .9 from a previous apply; .5 is used by something else.
    seen.endpoints
        .insert(("n".into(), "d".into()), vec![ip("10.0.0.9")]);
    seen.others.insert(ip("10.0.0.5"), "no2/other/x".into());
    let got = desired(&s, &seen).expect("desired");
    let all: BTreeMap<String, String> = got
        .values()
        .flat_map(|d| d.endpoints.iter())
        .map(|e| (e.name.to_string(), e.addresses[0].to_string()))
        .collect();
    let want: BTreeMap<String, String> = [
        ("a", "10.0.0.6/24"),
        ("b", "10.0.0.7/24"),
        ("c", "10.0.0.4/24"),
        ("d", "10.0.0.9/24"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(all, want);
    // The host-access link on no1 gets its /32 and routes to no1's own endpoints only.
    let access = &got["no1"].host_access[0];
    assert_eq!(access.name.as_str(), "lh-n");
    assert_eq!(access.parent.as_str(), "ens192");
    assert_eq!(
        access.addresses,
        ["10.0.0.3/32".parse::<IpNet>().expect("net")]
    );
    assert_eq!(
        names(&access.routes, ToString::to_string),
        ["10.0.0.6/32", "10.0.0.4/32"]
    );
}

#[test]
fn a_fixed_address_in_use_elsewhere_names_both_users() {
    let s = spec(&format!(
        "{HOSTS}networks:\n  n:\n    subnet: 10.0.0.0/24\n    endpoints:\n      a: {{host: no1, ip: 10.0.0.5}}\n"
    ));
    let mut seen = Observed::default();
    seen.others.insert(ip("10.0.0.5"), "no2/other/x".into());
    let e = desired(&s, &seen).expect_err("collision");
    assert_eq!(
        e.to_string(),
        "networks.n: 10.0.0.5 is wanted by both no2/other/x and a"
    );
}

#[test]
fn an_exhausted_range_is_an_error_naming_the_network() {
    let s = spec(&format!(
        "{HOSTS}networks:\n  n:\n    subnet: 10.0.0.0/24\n    ip_range: 10.0.0.8/31\n    endpoints:\n      \
         a: {{host: no1}}\n      b: {{host: no1}}\n      c: {{host: no2}}\n"
    ));
    let e = desired(&s, &Observed::default()).expect_err("exhausted");
    assert!(
        e.to_string()
            .starts_with("networks.n: no free address left in 10.0.0.8/31 for c"),
        "{e}"
    );
}

#[test]
fn dual_stack_endpoints_get_one_address_of_each_family() {
    let s = spec(&format!(
        "{HOSTS}networks:\n  n:\n    subnet: 10.0.0.0/24\n    gateway: 10.0.0.1\n    subnet_v6: fd00:1::/64\n    \
         endpoints:\n      a: {{host: no1, ip6: 'fd00:1::a'}}\n      b: {{host: no2}}\n"
    ));
    let d = desired(&s, &Observed::default()).expect("desired");
    let a = &d["no1"].endpoints[0];
    assert_eq!(
        names(&a.addresses, ToString::to_string),
        ["10.0.0.2/24", "fd00:1::a/64"]
    );
    let b = &d["no2"].endpoints[0];
    assert_eq!(
        names(&b.addresses, ToString::to_string),
        ["10.0.0.3/24", "fd00:1::1/64"]
    );
}

#[test]
fn a_vlan_name_too_long_for_the_parent_is_an_error() {
    let s = spec(
        "hosts:\n  no1: {address: https://a:1, parent: enp129s0f1np1}\nnetworks:\n  n:\n    vlan: 1000\n    \
         subnet: 10.0.0.0/24\n    endpoints:\n      a: {host: no1}\n",
    );
    let e = desired(&s, &Observed::default()).expect_err("too long");
    assert!(
        e.to_string().starts_with("networks.n on no1: invalid"),
        "{e}"
    );
}

/// What the fleet computes is what an agent accepts: the wire form reads
/// back, through the agent's own validation, to the same desired state.
#[test]
fn every_hosts_desired_state_survives_the_agents_validation() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/seed-vlan.yaml");
    let seed = FleetSpec::load(&path).expect("seed-vlan.yaml");
    let access = spec(&format!(
        "{HOSTS}networks:\n  n:\n    subnet: 10.0.0.0/24\n    gateway: 10.0.0.1\n    subnet_v6: fd00:1::/64\n    \
         mtu: 1400\n    host_access: {{no1: 10.0.0.3}}\n    endpoints:\n      a: {{host: no1, mac: '02:00:00:00:00:0a'}}\n      \
         b: {{host: no2, pid: 1}}\n"
    ));
    for s in [seed, access] {
        for (host, d) in desired(&s, &Observed::default()).expect("desired") {
            let wire = linkherd_proto::pb::DesiredState::from(&d);
            let back = Desired::try_from(wire).unwrap_or_else(|e| panic!("{host}: {e}"));
            assert_eq!(back, d, "{host}");
        }
    }
}

/// A network open to containers, on both hosts, blocks of /28, with one
/// fixed and one allocated endpoint.
fn containers_spec() -> FleetSpec {
    spec(&format!(
        "{HOSTS}networks:\n  mac_net10:\n    vlan: 10\n    subnet: 172.16.10.0/24\n    gateway: 172.16.10.1\n    containers: {{block: 28}}\n    endpoints:\n      b1: {{host: no1, ip: 172.16.10.20}}\n      b3: {{host: no2}}\n"
    ))
}

fn catalog_blocks(d: &BTreeMap<String, Desired>, host: &str) -> Vec<String> {
    let c = &d[host].catalog;
    assert_eq!(c.len(), 1, "{c:?}");
    c[0].v4
        .iter()
        .flat_map(|p| p.blocks.iter().map(ToString::to_string))
        .collect()
}

#[test]
fn each_host_gets_its_own_container_block_and_endpoints_stay_out_of_them() {
    let d = desired(&containers_spec(), &Observed::default()).expect("desired");
    // .0/28 holds the network address and the gateway, .16/28 b1's .20.
    assert_eq!(catalog_blocks(&d, "no1"), ["172.16.10.32/28"]);
    assert_eq!(catalog_blocks(&d, "no2"), ["172.16.10.48/28"]);
    let entry = &d["no2"].catalog[0];
    assert_eq!(
        (
            entry.name.as_str(),
            entry.parent.as_str(),
            entry.vlan.map(|v| v.get())
        ),
        ("mac_net10", "eth0.10", Some(10))
    );
    assert_eq!(
        entry.v4.as_ref().and_then(|p| p.gateway),
        Some(ip("172.16.10.1"))
    );
    // What no2's containers may not take: no1's block, b1's fixed address.
    let v4 = entry.v4.as_ref().expect("v4");
    let excluded: Vec<String> = v4
        .excluded
        .iter()
        .map(|e| format!("{} {}", e.prefix, e.why))
        .collect();
    assert_eq!(
        excluded,
        [
            "172.16.10.32/28 no1's container block",
            "172.16.10.20/32 endpoint no1/b1"
        ]
    );
    assert_eq!(
        v4.why_excluded(ip("172.16.10.40")).as_deref(),
        Some("is taken: no1's container block (172.16.10.32/28)")
    );
    assert_eq!(
        v4.why_excluded(ip("172.16.10.1")).as_deref(),
        Some("is the gateway")
    );
    assert_eq!(v4.why_excluded(ip("172.16.10.50")), None, "no2's own block");
    // b3 is allocated the lowest free address outside every block.
    assert_eq!(
        d["no2"].endpoints[0].addresses,
        ["172.16.10.2/24".parse::<IpNet>().expect("net")]
    );
}

#[test]
fn container_blocks_are_sticky_and_move_off_a_fixed_address() {
    let mut seen = Observed::default();
    let held = |b: &str| vec![b.parse::<IpNet>().expect("net")];
    seen.blocks
        .insert(("mac_net10".into(), "no1".into()), held("172.16.10.192/28"));
    // no2 holds the block b1's fixed address is in: it gets another.
    seen.blocks
        .insert(("mac_net10".into(), "no2".into()), held("172.16.10.16/28"));
    let d = desired(&containers_spec(), &seen).expect("desired");
    assert_eq!(catalog_blocks(&d, "no1"), ["172.16.10.192/28"]);
    assert_eq!(catalog_blocks(&d, "no2"), ["172.16.10.32/28"]);
    // A spec that closes the network to containers takes the catalog away.
    let closed = spec(&format!(
        "{HOSTS}networks:\n  mac_net10:\n    subnet: 172.16.10.0/24\n    endpoints:\n      b1: {{host: no1}}\n"
    ));
    let d = desired(&closed, &seen).expect("desired");
    assert!(d["no1"].catalog.is_empty());
    assert_eq!(
        d["no1"]
            .networks
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>(),
        ["mac_net10"]
    );
}

/// What no1's containers use: `n` addresses of its held .32/28 block, and
/// a static one outside every block.
fn with_containers(n: u8) -> Observed {
    let mut seen = Observed::default();
    let net = || ("mac_net10".to_owned(), "no1".to_owned());
    seen.blocks
        .insert(net(), vec!["172.16.10.32/28".parse().expect("net")]);
    let mut attached: Vec<IpAddr> = (0..n)
        .map(|i| ip(&format!("172.16.10.{}", 32 + i)))
        .collect();
    attached.push(ip("172.16.10.2"));
    for a in &attached {
        seen.others.insert(*a, "no1 container c/eth0".into());
    }
    seen.attached.insert(net(), attached);
    seen
}

#[test]
fn containers_keep_their_block_grow_it_and_are_never_given_to_endpoints() {
    // 3 of 16 in use: the block stays, nothing more; b3 skips the static .2.
    let d = desired(&containers_spec(), &with_containers(3)).expect("desired");
    assert_eq!(catalog_blocks(&d, "no1"), ["172.16.10.32/28"]);
    assert_eq!(
        d["no2"].endpoints[0].addresses,
        ["172.16.10.3/24".parse::<IpNet>().expect("net")]
    );
    // 12 of 16: another block.
    let d = desired(&containers_spec(), &with_containers(12)).expect("desired");
    assert_eq!(
        catalog_blocks(&d, "no1"),
        ["172.16.10.32/28", "172.16.10.48/28"]
    );
    // A range that no longer holds the block in use is refused, named.
    let moved = spec(&format!(
        "{HOSTS}networks:\n  mac_net10:\n    vlan: 10\n    subnet: 172.16.10.0/24\n    gateway: 172.16.10.1\n    containers: {{block: 28, range: 172.16.10.128/25}}\n    endpoints:\n      b1: {{host: no1, ip: 172.16.10.20}}\n      b3: {{host: no2}}\n"
    ));
    let err = desired(&moved, &with_containers(3)).expect_err("shrunk");
    assert_eq!(
        err.to_string(),
        "networks.mac_net10.containers: no1 holds 172.16.10.32/28 with 3 container address(es) in \
         use, but it is not inside containers.range 172.16.10.128/25; a block in use is never \
         taken away: remove those containers first, or keep the block"
    );
}
