use std::path::PathBuf;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn issues(text: &str) -> Vec<SpecIssue> {
    match FleetSpec::parse(text, "t.yaml") {
        Ok(s) => panic!("expected errors, got {s:?}"),
        Err(e) => e.issues().to_vec(),
    }
}

fn one(text: &str) -> SpecIssue {
    let mut v = issues(text);
    assert_eq!(v.len(), 1, "{v:#?}");
    v.remove(0)
}

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/examples")
        .join(name)
}

const TWO_HOSTS: &str = "hosts:\n  no1: {address: https://a:1, parent: ens192}\n  no2: {address: https://b:1, parent: eth0}\n";

#[test]
fn seed_vlan_example_describes_the_document() {
    let s = FleetSpec::load(&example("seed-vlan.yaml")).expect("seed-vlan.yaml");
    assert_eq!(
        s.hosts["no1"].parent.as_ref().map(|p| p.as_str()),
        Some("ens192")
    );
    assert_eq!(
        s.hosts["no2"].parent.as_ref().map(|p| p.as_str()),
        Some("eth0")
    );
    let n10 = &s.networks[&ObjName::parse("n", "mac_net10").expect("name")];
    assert_eq!(n10.vlan.map(VlanId::get), Some(10));
    let v4 = n10.v4.as_ref().expect("v4");
    assert_eq!(v4.subnet.to_string(), "172.16.10.0/24");
    assert_eq!(v4.gateway, Some(ip("172.16.10.1")));
    assert_eq!(n10.mode, MacvlanMode::Bridge);
    // Spans both hosts, each on its own NIC.
    let parents: Vec<(&str, &str)> = n10
        .parents
        .iter()
        .map(|(h, p)| (h.as_str(), p.as_str()))
        .collect();
    assert_eq!(parents, [("no1", "ens192"), ("no2", "eth0")]);
    let b3 = &n10.endpoints[&ObjName::parse("n", "b3").expect("name")];
    assert_eq!(b3.host, "no2");
    assert_eq!(b3.ip, Some(ip("172.16.10.11")));
    assert_eq!(b3.netns, NetnsRef::Named("b3".into()));
    let n20 = &s.networks[&ObjName::parse("n", "mac_net20").expect("name")];
    assert_eq!(n20.vlan.map(VlanId::get), Some(20));
    assert!(s.verify.reach && s.verify.isolation);
    assert_eq!(s.verify.timeout, Duration::from_millis(1000));
}

#[test]
fn seed_flat_example_describes_the_document() {
    let s = FleetSpec::load(&example("seed-flat.yaml")).expect("seed-flat.yaml");
    let n = &s.networks[&ObjName::parse("n", "macvlan").expect("name")];
    assert_eq!(n.vlan, None);
    let v4 = n.v4.as_ref().expect("v4");
    assert_eq!(v4.gateway, Some(ip("10.0.100.33")));
    assert_eq!(
        v4.range.map(|r| r.to_string()).as_deref(),
        Some("10.0.100.0/24")
    );
    let ips: Vec<Option<IpAddr>> = n.endpoints.values().map(|e| e.ip).collect();
    assert_eq!(ips, [Some(ip("10.0.100.100")), Some(ip("10.0.100.101"))]);
}

#[test]
fn a_bad_endpoint_address_names_path_line_and_column() {
    let text = format!(
        "{TWO_HOSTS}networks:\n  mac_net10:\n    subnet: 172.16.10.0/24\n    gateway: 172.16.10.1\n    endpoints:\n      b3:\n        host: no2\n        ip: 172.16.20.5\n"
    );
    let i = one(&text);
    assert_eq!(i.path, "networks.mac_net10.endpoints.b3.ip");
    assert_eq!((i.line, i.column), (Some(11), Some(13)));
    assert_eq!(
        i.problem,
        "172.16.20.5 is outside the subnet 172.16.10.0/24"
    );
    let shown = FleetSpec::parse(&text, "fleet.yaml")
        .expect_err("bad")
        .to_string();
    assert_eq!(
        shown,
        "fleet.yaml: 11:13: networks.mac_net10.endpoints.b3.ip: 172.16.20.5 is outside the subnet \
         172.16.10.0/24; pick another address, or leave it out to have one allocated"
    );
}

#[test]
fn the_gateway_cannot_be_an_endpoint_address() {
    let text = format!(
        "{TWO_HOSTS}networks:\n  n:\n    subnet: 10.1.0.0/24\n    gateway: 10.1.0.1\n    endpoints:\n      e1: {{host: no1, ip: 10.1.0.1}}\n"
    );
    let i = one(&text);
    assert_eq!(i.path, "networks.n.endpoints.e1.ip");
    assert_eq!(i.problem, "10.1.0.1 is the gateway");
}

#[test]
fn a_misspelt_field_is_refused_with_its_path() {
    let text = format!(
        "{TWO_HOSTS}networks:\n  mac_net10:\n    subnet: 172.16.10.0/24\n    gatway: 172.16.10.1\n"
    );
    let i = one(&text);
    assert_eq!(i.path, "networks.mac_net10.gatway");
    assert!(
        i.problem
            .starts_with("unknown field `gatway`, expected one of vlan, subnet, gateway"),
        "{i}"
    );
    assert_eq!((i.line, i.column), (Some(7), Some(5)), "{i}");
}

#[test]
fn a_wrong_type_is_refused_with_its_path() {
    let text = format!("{TWO_HOSTS}networks:\n  n:\n    subnet: 10.0.0.0/24\n    vlan: ten\n");
    let i = one(&text);
    assert_eq!(i.path, "networks.n.vlan");
    assert_eq!((i.line, i.column), (Some(7), Some(11)), "{i}");
    assert_eq!(i.problem, "invalid u32 (found \"ten\")");
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = format!(
        "{TWO_HOSTS}networks:\n  n:\n    vlan: 4095\n    subnet: 10.0.0.0/24\n    gateway: 10.9.0.1\n    mode: bridged\n    endpoints:\n      e1: {{host: no9}}\n"
    );
    let paths: Vec<String> = issues(&text).into_iter().map(|i| i.path).collect();
    assert_eq!(
        paths,
        [
            "networks.n.vlan",
            "networks.n.gateway",
            "networks.n.mode",
            "networks.n.endpoints.e1.host",
        ]
    );
}

#[test]
fn an_unknown_host_lists_the_known_ones() {
    let text = format!(
        "{TWO_HOSTS}networks:\n  n:\n    subnet: 10.0.0.0/24\n    endpoints:\n      e1: {{host: no3}}\n"
    );
    let i = one(&text);
    assert_eq!(i.path, "networks.n.endpoints.e1.host");
    assert_eq!(i.fix, "use one of: no1, no2");
}

#[test]
fn two_endpoints_fixing_one_address_name_each_other() {
    let text = format!(
        "{TWO_HOSTS}networks:\n  n:\n    subnet: 10.0.0.0/24\n    endpoints:\n      a: {{host: no1, ip: 10.0.0.5}}\n      b: {{host: no2, ip: 10.0.0.5}}\n"
    );
    let i = one(&text);
    assert_eq!(i.path, "networks.n.endpoints.b.ip");
    assert_eq!(i.problem, "10.0.0.5 is also fixed for endpoint a");
}

#[test]
fn a_host_without_a_parent_needs_a_per_network_override() {
    let base = "hosts:\n  no1: {address: https://a:1}\nnetworks:\n  n:\n    subnet: 10.0.0.0/24\n    endpoints:\n      e: {host: no1}\n";
    let i = one(base);
    assert_eq!(i.path, "networks.n");
    assert_eq!(i.fix, "set hosts.no1.parent or networks.n.parents.no1");
    let fixed = format!("{base}    parents:\n      no1: eth7\n");
    let s = FleetSpec::parse(&fixed, "t").expect("override");
    let n = s.networks.values().next().expect("n");
    assert_eq!(n.parents["no1"].as_str(), "eth7");
}

#[test]
fn v6_lives_in_its_own_fields() {
    let text = format!(
        "{TWO_HOSTS}networks:\n  n:\n    subnet_v6: fd00:10::/64\n    gateway_v6: fd00:10::1\n    endpoints:\n      e: {{host: no1, ip6: 'fd00:10::10'}}\n      f: {{host: no2, ip: 10.0.0.1}}\n"
    );
    let i = one(&text);
    assert_eq!(i.path, "networks.n.endpoints.f.ip");
    assert_eq!(i.problem, "10.0.0.1 has no subnet to belong to");
    let ok = format!(
        "{TWO_HOSTS}networks:\n  n:\n    subnet_v6: fd00:10::/64\n    gateway_v6: fd00:10::1\n    endpoints:\n      e: {{host: no1, ip6: 'fd00:10::10'}}\n"
    );
    let s = FleetSpec::parse(&ok, "t").expect("v6 spec");
    let n = s.networks.values().next().expect("n");
    assert_eq!(
        n.v6.as_ref().and_then(|p| p.gateway),
        Some(ip("fd00:10::1"))
    );
    assert_eq!(n.v4, None);
}

#[test]
fn a_multicast_mac_is_refused() {
    let text = format!(
        "{TWO_HOSTS}networks:\n  n:\n    subnet: 10.0.0.0/24\n    endpoints:\n      e: {{host: no1, mac: '01:00:5e:00:00:01'}}\n"
    );
    let i = one(&text);
    assert_eq!(i.path, "networks.n.endpoints.e.mac");
    assert!(i.problem.contains("not a unicast"), "{i}");
}

#[test]
fn explicit_hosts_must_cover_the_endpoints() {
    let text = format!(
        "{TWO_HOSTS}networks:\n  n:\n    subnet: 10.0.0.0/24\n    hosts: [no1]\n    endpoints:\n      e: {{host: no2}}\n"
    );
    let i = one(&text);
    assert_eq!(i.path, "networks.n.endpoints.e.host");
    assert_eq!(i.fix, "add the host to the network's hosts list");
    // Host access too: host access on a host the network does not span.
    let text = format!(
        "{TWO_HOSTS}networks:\n  n:\n    subnet: 10.0.0.0/24\n    hosts: [no1]\n    host_access: {{no2: 10.0.0.9}}\n"
    );
    let i = one(&text);
    assert_eq!(i.path, "networks.n.host_access.no2");
    assert_eq!(i.problem, "\"no2\" is not in networks.n.hosts");
}

#[test]
fn a_missing_file_names_it() {
    let e = FleetSpec::load(std::path::Path::new("/nonexistent/fleet.yaml")).expect_err("missing");
    assert!(
        e.to_string()
            .starts_with("cannot read spec /nonexistent/fleet.yaml:"),
        "{e}"
    );
}

#[test]
fn the_published_schema_is_the_one_the_parser_uses() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/fleet.schema.json");
    let text = std::fs::read_to_string(&path).expect("deploy/fleet.schema.json");
    let published: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        published,
        FleetSpec::json_schema(),
        "regenerate with: linkherdctl spec schema > deploy/fleet.schema.json"
    );
}

#[test]
fn the_schema_refuses_unknown_fields_and_bounds_numbers() {
    let s = FleetSpec::json_schema();
    let net = &s["$defs"]["RawNetwork"];
    assert_eq!(net["additionalProperties"], serde_json::json!(false));
    assert_eq!(net["properties"]["vlan"]["minimum"], 1);
    assert_eq!(net["properties"]["vlan"]["maximum"], 4094);
    let ep = &s["$defs"]["RawEndpoint"];
    assert_eq!(ep["required"], serde_json::json!(["host"]));
    assert!(ep["properties"]["ip"]["description"].is_string());
}

#[test]
fn containers_take_their_range_and_hosts_from_the_network_by_default() {
    let text = format!(
        "{TWO_HOSTS}networks:\n  n:\n    subnet: 172.16.10.0/24\n    ip_range: 172.16.10.128/25\n    hosts: [no1, no2]\n    containers: {{block: 28}}\n  m:\n    subnet: 10.9.0.0/24\n    containers: {{hosts: [no2]}}\n"
    );
    let s = FleetSpec::parse(&text, "t.yaml").expect("valid");
    let net = |n: &str| &s.networks[&ObjName::parse("n", n).expect("name")];
    let c = net("n").containers.as_ref().expect("containers");
    let v4 = c.v4.expect("v4");
    assert_eq!(
        (v4.range.to_string(), v4.len),
        ("172.16.10.128/25".into(), 28)
    );
    assert_eq!(c.hosts.iter().collect::<Vec<_>>(), ["no1", "no2"]);
    // Without a block: static addresses only, on the hosts listed (which
    // the network then spans, with their parents).
    let m = net("m");
    let c = m.containers.as_ref().expect("containers");
    assert_eq!((c.v4, c.v6), (None, None));
    assert_eq!(m.parents.keys().collect::<Vec<_>>(), ["no2"]);
}

#[test]
fn container_blocks_that_cannot_be_cut_are_named() {
    let cases = [
        (
            "containers: {block: 28, range: 172.16.11.0/24}",
            "networks.n.containers.range",
            "172.16.11.0/24 is not inside the subnet 172.16.10.0/24",
        ),
        (
            "containers: {block: 22}",
            "networks.n.containers.block",
            "/22 does not fit in 172.16.10.0/24",
        ),
        (
            "containers: {block_v6: 112}",
            "networks.n.containers.block_v6",
            "is set but the network has no subnet_v6",
        ),
        (
            "containers: {range: 172.16.10.0/25}",
            "networks.n.containers.range",
            "is set but block is not",
        ),
        (
            "containers: {block: 28, hosts: [no2]}",
            "networks.n.containers.hosts[0]",
            "\"no2\" is not a host of this network",
        ),
    ];
    for (containers, path, problem) in cases {
        let text = format!(
            "{TWO_HOSTS}networks:\n  n:\n    subnet: 172.16.10.0/24\n    hosts: [no1]\n    {containers}\n"
        );
        let i = one(&text);
        assert_eq!(
            (i.path.as_str(), i.problem.as_str()),
            (path, problem),
            "{containers}"
        );
    }
}
