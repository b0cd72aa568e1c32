//! The kernel contract: what linkherd relies on from [`NetOps`], checked
//! against both the real kernel and the fake, so the fake cannot drift.
#![allow(dead_code)]

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use linkherd_agent::net::{LinkSetup, NetError, NetEvent, NetOps, NewLink, NewLinkKind, Route};
use linkherd_proto::model::{
    IfName, LinkDetails, LinkKind, MacAddr, MacvlanMode, OperState, VlanId, VlanProtocol,
};

/// Changes made behind the agent's back, the way an operator with `ip` would.
#[async_trait]
pub trait Fixture: Send + Sync {
    async fn add_veth(&self, a: &str, b: &str);
    async fn del_link(&self, name: &str);
    async fn add_addr(&self, name: &str, cidr: &str);
    /// Whether this kernel has 802.1Q, judged independently of the agent.
    fn vlan_expected(&self) -> bool;
    async fn add_bridge_with_port(&self, bridge: &str, port: &str);
    /// A test-unique name for a named namespace (cleaned up by the fixture).
    fn netns_name(&self, base: &str) -> String;
}

pub struct Env {
    pub net: Arc<dyn NetOps>,
    pub fx: Box<dyn Fixture>,
}

fn name(s: &str) -> IfName {
    IfName::parse("name", s).expect("valid name")
}

async fn next_event(
    rx: &mut linkherd_agent::net::EventStream,
    want: impl Fn(&NetEvent) -> bool,
) -> NetEvent {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let ev = rx.recv().await.expect("event stream ended");
            if want(&ev) {
                return ev;
            }
        }
    })
    .await
    .expect("event within 5 s")
}

pub async fn lists_loopback(env: Env) {
    let links = env.net.links().await.expect("links");
    let lo = links.iter().find(|l| l.name == "lo").expect("lo listed");
    assert_eq!(lo.kind, LinkKind::Loopback);
    assert_eq!(lo.index, 1);
    assert!(
        links.windows(2).all(|w| w[0].index < w[1].index),
        "sorted by index"
    );
}

pub async fn veth_pair_is_described(env: Env) {
    env.fx.add_veth("ct-a", "ct-b").await;
    let a = env.net.link(&name("ct-a")).await.expect("ct-a");
    let b = env.net.link(&name("ct-b")).await.expect("ct-b");
    assert_eq!(a.kind, LinkKind::Veth);
    assert_eq!(a.kind_name, "veth");
    assert_eq!(a.parent_index, b.index, "veth parent is its peer");
    assert_eq!(a.parent.as_deref(), Some("ct-b"));
    assert_eq!((a.mtu, a.min_mtu, a.max_mtu), (1500, 68, 65535));
    assert!(a.mac.is_some_and(|m| !m.is_multicast() && !m.is_zero()));
    assert!(!a.admin_up);
    assert_eq!(a.oper_state, OperState::Down);
    assert_eq!((a.promiscuous, a.promiscuity), (false, 0));
    let by_index = env.net.link_by_index(a.index).await.expect("by index");
    assert_eq!(by_index.name, "ct-a");
}

pub async fn unknown_links_are_not_found(env: Env) {
    let err = env.net.link(&name("ct-nope")).await.expect_err("missing");
    assert!(matches!(err, NetError::NotFound { .. }), "{err:?}");
    let err = env.net.link_by_index(99_999).await.expect_err("missing");
    assert!(matches!(err, NetError::NotFound { .. }), "{err:?}");
    let err = env
        .net
        .set_promisc(99_999, true)
        .await
        .expect_err("missing");
    assert!(matches!(err, NetError::NotFound { .. }), "{err:?}");
}

pub async fn promisc_flag_and_counter(env: Env) {
    env.fx.add_veth("ct-p", "ct-q").await;
    let l = env.net.link(&name("ct-p")).await.expect("link");
    env.net.set_promisc(l.index, true).await.expect("on");
    let on = env.net.link_by_index(l.index).await.expect("link");
    assert!(on.promiscuous);
    assert_eq!(on.promiscuity, l.promiscuity + 1);
    assert!(on.flags.iter().any(|f| f == "PROMISC"), "{:?}", on.flags);
    // Setting the flag again does not count twice.
    env.net.set_promisc(l.index, true).await.expect("on again");
    assert_eq!(
        env.net
            .link_by_index(l.index)
            .await
            .expect("link")
            .promiscuity,
        l.promiscuity + 1
    );
    env.net.set_promisc(l.index, false).await.expect("off");
    let off = env.net.link_by_index(l.index).await.expect("link");
    assert_eq!((off.promiscuous, off.promiscuity), (false, l.promiscuity));
    assert!(!off.flags.iter().any(|f| f == "PROMISC"));
}

pub async fn up_down_and_veth_carrier(env: Env) {
    env.fx.add_veth("ct-u", "ct-v").await;
    let u = env.net.link(&name("ct-u")).await.expect("u");
    let v = env.net.link(&name("ct-v")).await.expect("v");
    env.net.set_up(u.index, true).await.expect("up");
    let u1 = env.net.link_by_index(u.index).await.expect("u");
    assert!(u1.admin_up && u1.flags.iter().any(|f| f == "UP"));
    // No carrier while the peer is down.
    assert_eq!(u1.oper_state, OperState::LowerLayerDown);
    env.net.set_up(v.index, true).await.expect("peer up");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let u2 = env.net.link_by_index(u.index).await.expect("u");
        if u2.oper_state == OperState::Up {
            assert!(u2.flags.iter().any(|f| f == "LOWER_UP"), "{:?}", u2.flags);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "carrier never came up: {:?}",
            u2.oper_state
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    env.net.set_up(u.index, false).await.expect("down");
    let u3 = env.net.link_by_index(u.index).await.expect("u");
    assert!(!u3.admin_up);
    assert_eq!(u3.oper_state, OperState::Down);
}

pub async fn mtu_within_device_limits(env: Env) {
    env.fx.add_veth("ct-m", "ct-n").await;
    let m = env.net.link(&name("ct-m")).await.expect("m");
    env.net.set_mtu(m.index, 9000).await.expect("9000");
    assert_eq!(env.net.link_by_index(m.index).await.expect("m").mtu, 9000);
    let err = env.net.set_mtu(m.index, 70_000).await.expect_err("too big");
    assert!(matches!(err, NetError::Invalid { .. }), "{err:?}");
    let err = env.net.set_mtu(m.index, 60).await.expect_err("too small");
    assert!(matches!(err, NetError::Invalid { .. }), "{err:?}");
    assert_eq!(
        env.net.link_by_index(m.index).await.expect("m").mtu,
        9000,
        "unchanged on error"
    );
}

pub async fn addresses_are_reported(env: Env) {
    env.fx.add_veth("ct-x", "ct-y").await;
    env.fx.add_addr("ct-x", "10.77.0.1/24").await;
    env.fx.add_addr("ct-x", "fd00:77::1/64").await;
    let x = env.net.link(&name("ct-x")).await.expect("x");
    let addrs: Vec<String> = x.addresses.iter().map(ToString::to_string).collect();
    assert!(addrs.contains(&"10.77.0.1/24".to_owned()), "{addrs:?}");
    assert!(addrs.contains(&"fd00:77::1/64".to_owned()), "{addrs:?}");
    let all = env.net.links().await.expect("links");
    let x2 = all.iter().find(|l| l.name == "ct-x").expect("listed");
    assert_eq!(x2.addresses, x.addresses, "list and get agree");
}

/// An RFC 5227 probe from one end of a veth pair is answered by the other
/// end for its address, and by nobody for an unused one; the prober's own
/// address does not count.
pub async fn address_probe_finds_who_uses_it(env: Env) {
    env.fx.add_veth("ct-p", "ct-q").await;
    env.fx.add_addr("ct-p", "10.78.0.1/24").await;
    env.fx.add_addr("ct-q", "10.78.0.2/24").await;
    let p = env.net.link(&name("ct-p")).await.expect("p");
    let q = env.net.link(&name("ct-q")).await.expect("q");
    env.net.set_up(q.index, true).await.expect("q up");
    env.net.set_up(p.index, true).await.expect("p up");
    let mac = p.mac.expect("p mac");
    let wait = Duration::from_millis(300);
    // Carrier may take a moment on a fresh veth: ask until answered.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let users = loop {
        let users = env
            .net
            .probe_address(p.index, mac, "10.78.0.2".parse().expect("ip"), wait)
            .await
            .expect("probe");
        if !users.is_empty() || tokio::time::Instant::now() > deadline {
            break users;
        }
    };
    assert_eq!(users, vec![q.mac.expect("q mac")]);
    let free = env
        .net
        .probe_address(p.index, mac, "10.78.0.99".parse().expect("ip"), wait)
        .await
        .expect("probe");
    assert_eq!(free, Vec::<MacAddr>::new());
}

pub async fn watch_reports_changes(env: Env) {
    let mut rx = env.net.watch().await.expect("watch");
    env.fx.add_veth("ct-w", "ct-z").await;
    let w = env.net.link(&name("ct-w")).await.expect("w");
    next_event(&mut rx, |e| *e == NetEvent::Link { index: w.index }).await;
    env.fx.add_addr("ct-w", "10.78.0.1/24").await;
    next_event(&mut rx, |e| *e == NetEvent::Address { index: w.index }).await;
    env.net.set_promisc(w.index, true).await.expect("promisc");
    next_event(&mut rx, |e| *e == NetEvent::Link { index: w.index }).await;
    env.fx.del_link("ct-w").await;
    let ev = next_event(
        &mut rx,
        |e| matches!(e, NetEvent::LinkRemoved { index, .. } if *index == w.index),
    )
    .await;
    assert_eq!(
        ev,
        NetEvent::LinkRemoved {
            index: w.index,
            name: "ct-w".into()
        }
    );
}

pub async fn capabilities_match_the_kernel(env: Env) {
    let caps = env.net.capabilities().await;
    assert_eq!(caps.vlan, env.fx.vlan_expected());
    assert!(caps.macvlan);
    assert_eq!(caps.macvlan_modes.len(), 5);
    assert!(caps.netns);
    if !caps.vlan {
        assert!(
            caps.notes.iter().any(|n| n.contains("module 8021q")),
            "{:?}",
            caps.notes
        );
    }
    // The probe creates nothing.
    let links = env.net.links().await.expect("links");
    assert!(links.iter().all(|l| !l.name.contains("capprobe")));
}

fn macvlan(name: &str, parent_index: u32, mode: MacvlanMode) -> NewLink {
    NewLink {
        name: self::name(name),
        kind: NewLinkKind::Macvlan {
            parent_index,
            mode,
            source_macs: Vec::new(),
        },
        mtu: None,
        mac: None,
        alias: String::new(),
        group: 0,
        target: None,
    }
}

pub async fn macvlan_created_inside_a_named_namespace(env: Env) {
    env.fx.add_veth("ct-a", "ct-b").await;
    let parent = env.net.link(&name("ct-a")).await.expect("parent");
    let ns = env.fx.netns_name("mv");
    env.net.create_netns(&ns).await.expect("create netns");
    assert!(env.net.netns_names().await.expect("names").contains(&ns));
    let file = std::path::PathBuf::from("/run/netns").join(&ns);
    let mac = MacAddr([0x02, 0x42, 0xac, 0x10, 0x0a, 0x0a]);
    let link = NewLink {
        mtu: Some(1400),
        mac: Some(mac),
        alias: "linkherd:v1 ep net=n1 name=e1".into(),
        group: 4242,
        target: Some(file.clone()),
        ..macvlan("eth0", parent.index, MacvlanMode::Bridge)
    };
    env.net.add_link(&link).await.expect("add macvlan in netns");
    // Created where asked, not here.
    assert!(matches!(
        env.net.link(&name("eth0")).await,
        Err(NetError::NotFound { .. })
    ));
    let inside = env.net.netns(&file).await.expect("netns ops");
    let e = inside.link(&name("eth0")).await.expect("eth0 inside");
    assert_eq!(e.kind, LinkKind::Macvlan);
    assert_eq!(
        e.details,
        Some(LinkDetails::Macvlan {
            mode: MacvlanMode::Bridge,
            source_macs: vec![]
        })
    );
    assert_eq!((e.mtu, e.mac, e.group), (1400, Some(mac), 4242));
    assert_eq!(e.alias.as_deref(), Some("linkherd:v1 ep net=n1 name=e1"));
    assert_eq!(e.parent_index, parent.index);
    assert_eq!(e.parent, None, "the parent lives in another namespace");
    assert!(!e.admin_up, "created down");

    inside
        .add_address(e.index, "10.80.0.2/24".parse().expect("cidr"))
        .await
        .expect("addr");
    let err = inside
        .add_address(e.index, "10.80.0.2/24".parse().expect("cidr"))
        .await
        .expect_err("dup");
    assert!(matches!(err, NetError::AlreadyExists { .. }), "{err:?}");
    inside
        .enable_announce(&name("eth0"))
        .await
        .expect("announce");
    inside.set_up(e.index, true).await.expect("up");
    let default = Route {
        dest: "0.0.0.0/0".parse().expect("cidr"),
        gateway: Some("10.80.0.1".parse().expect("ip")),
        index: e.index,
    };
    inside.add_route(&default).await.expect("default route");
    let routes = inside.routes().await.expect("routes");
    assert!(routes.contains(&default), "{routes:?}");
    assert!(
        routes
            .iter()
            .any(|r| r.dest == "10.80.0.0/24".parse().expect("cidr") && r.index == e.index)
    );
    let err = inside.add_route(&default).await.expect_err("twice");
    assert!(matches!(err, NetError::AlreadyExists { .. }), "{err:?}");

    // A link named like one of this namespace's own (eth0 on the host, say)
    // can still be created in another namespace.
    env.fx.add_veth("eth1", "eth1-peer").await;
    env.net
        .add_link(&NewLink {
            target: Some(file.clone()),
            ..macvlan("eth1", parent.index, MacvlanMode::Bridge)
        })
        .await
        .expect("eth1 inside although the host has an eth1");
    let eth1 = inside.link(&name("eth1")).await.expect("eth1 inside");
    assert_eq!(eth1.kind, LinkKind::Macvlan);
    inside.del_link(eth1.index).await.expect("delete eth1");
    assert_eq!(
        env.net.link(&name("eth1")).await.expect("host eth1").kind,
        LinkKind::Veth
    );

    inside.del_link(e.index).await.expect("delete");
    assert!(matches!(
        inside.link(&name("eth0")).await,
        Err(NetError::NotFound { .. })
    ));
    drop(inside);
    env.net.delete_netns(&ns).await.expect("delete netns");
    assert!(matches!(
        env.net.netns(&file).await,
        Err(NetError::NotFound { .. })
    ));
    assert!(!env.net.netns_names().await.expect("names").contains(&ns));
    let err = env.net.create_netns(&ns).await;
    assert!(err.is_ok(), "the name is free again: {err:?}");
    env.net.delete_netns(&ns).await.expect("delete again");
}

/// The calls an endpoint create makes instead of listings: a link set up
/// in one call, its own routes, its own addresses, one namespace looked up
/// by name — each answering for that one only, next to another link.
pub async fn targeted_reads_and_setup_in_one_call(env: Env) {
    env.fx.add_veth("tr-a", "tr-b").await;
    let parent = env.net.link(&name("tr-a")).await.expect("parent");
    let ns = env.fx.netns_name("tr");
    assert!(!env.net.netns_exists(&ns).await.expect("lookup"));
    env.net.create_netns(&ns).await.expect("create netns");
    assert!(env.net.netns_exists(&ns).await.expect("lookup"));
    assert!(
        !env.net
            .netns_exists("../etc")
            .await
            .expect("a path is no name")
    );
    let file = std::path::PathBuf::from("/run/netns").join(&ns);
    let inside = env.net.netns(&file).await.expect("netns ops");
    let mut index = Vec::new();
    for (i, ifname) in ["e1", "e2"].into_iter().enumerate() {
        let link = NewLink {
            mac: Some(MacAddr([0x02, 0, 0, 0, 0x7e, i as u8 + 1])),
            target: Some(file.clone()),
            ..macvlan(ifname, parent.index, MacvlanMode::Bridge)
        };
        env.net.add_link(&link).await.expect("add macvlan");
        index.push(inside.link(&name(ifname)).await.expect("link").index);
    }
    let cidr = |s: &str| -> ipnet::IpNet { s.parse().expect("cidr") };
    let default = Route {
        dest: cidr("0.0.0.0/0"),
        gateway: Some("10.81.0.1".parse().expect("ip")),
        index: index[0],
    };
    let setup = LinkSetup {
        addresses: vec![cidr("10.81.0.2/24"), cidr("10.82.0.2/24")],
        up: true,
        routes: vec![default.clone()],
    };
    let e1 = inside.setup_link(index[0], &setup).await.expect("setup e1");
    assert!(e1.admin_up, "{e1:?}");
    let v4: Vec<_> = e1
        .addresses
        .iter()
        .filter(|a| a.addr().is_ipv4())
        .copied()
        .collect();
    assert_eq!(v4, setup.addresses);
    let e2_setup = LinkSetup {
        addresses: vec![cidr("10.83.0.2/24")],
        up: true,
        routes: Vec::new(),
    };
    inside
        .setup_link(index[1], &e2_setup)
        .await
        .expect("setup e2");
    let e1 = inside.link(&name("e1")).await.expect("e1");
    assert!(!e1.addresses.contains(&cidr("10.83.0.2/24")), "{e1:?}");
    let via1 = inside.routes_via(index[0]).await.expect("routes of e1");
    assert!(via1.contains(&default), "{via1:?}");
    assert!(
        via1.iter().any(|r| r.dest == cidr("10.81.0.0/24")),
        "{via1:?}"
    );
    assert!(via1.iter().all(|r| r.index == index[0]), "{via1:?}");
    let via2 = inside.routes_via(index[1]).await.expect("routes of e2");
    assert!(
        via2.iter().any(|r| r.dest == cidr("10.83.0.0/24")),
        "{via2:?}"
    );
    assert!(!via2.iter().any(|r| r.dest.prefix_len() == 0), "{via2:?}");
    assert_eq!(inside.routes_via(99_999).await.expect("no such link"), []);
    // A failing step fails the call: the same address again.
    let again = inside
        .setup_link(index[1], &e2_setup)
        .await
        .expect_err("twice");
    assert!(matches!(again, NetError::AlreadyExists { .. }), "{again:?}");
    drop(inside);
    env.net.delete_netns(&ns).await.expect("delete netns");
    assert!(!env.net.netns_exists(&ns).await.expect("lookup"));
}

pub async fn link_creation_rules(env: Env) {
    env.fx.add_veth("ct-p", "ct-q").await;
    let p = env.net.link(&name("ct-p")).await.expect("p");
    let lo = env.net.link(&name("lo")).await.expect("lo");

    let err = env
        .net
        .add_link(&macvlan("mv-lo", lo.index, MacvlanMode::Bridge))
        .await
        .expect_err("lo");
    assert!(
        matches!(err, NetError::Invalid { .. }),
        "macvlan on lo: {err:?}"
    );
    let err = env
        .net
        .add_link(&NewLink {
            mtu: Some(9000),
            ..macvlan("mv-big", p.index, MacvlanMode::Bridge)
        })
        .await
        .expect_err("mtu");
    assert!(
        matches!(err, NetError::Invalid { .. }),
        "mtu above parent: {err:?}"
    );
    let err = env
        .net
        .add_link(&macvlan("mv-x", 99_999, MacvlanMode::Bridge))
        .await
        .expect_err("parent");
    assert!(
        matches!(err, NetError::NotFound { .. }),
        "missing parent: {err:?}"
    );

    let mac = MacAddr([0x02, 0, 0, 0, 0, 0x11]);
    env.net
        .add_link(&NewLink {
            mac: Some(mac),
            ..macvlan("mv-1", p.index, MacvlanMode::Bridge)
        })
        .await
        .expect("mv-1");
    let err = env
        .net
        .add_link(&macvlan("mv-1", p.index, MacvlanMode::Bridge))
        .await
        .expect_err("dup");
    assert!(
        matches!(err, NetError::AlreadyExists { .. }),
        "duplicate name: {err:?}"
    );
    // A duplicate MAC on the same parent is only refused when the second
    // link comes up (the kernel checks in macvlan_open).
    let mv1 = env.net.link(&name("mv-1")).await.expect("mv-1");
    env.net.set_up(p.index, true).await.expect("parent up");
    env.net.set_up(mv1.index, true).await.expect("mv-1 up");
    env.net
        .add_link(&NewLink {
            mac: Some(mac),
            ..macvlan("mv-2", p.index, MacvlanMode::Bridge)
        })
        .await
        .expect("created while down");
    let mv2 = env.net.link(&name("mv-2")).await.expect("mv-2");
    let err = env
        .net
        .set_up(mv2.index, true)
        .await
        .expect_err("mac in use");
    assert!(
        matches!(err, NetError::Busy { .. }),
        "duplicate MAC on the parent: {err:?}"
    );
    env.net.del_link(mv2.index).await.expect("delete mv-2");
    let err = env
        .net
        .add_link(&macvlan("mv-pt", p.index, MacvlanMode::Passthru))
        .await
        .expect_err("pt");
    assert!(
        matches!(err, NetError::Invalid { .. }),
        "passthru on a used parent: {err:?}"
    );

    env.fx.add_bridge_with_port("ct-br", "ct-q").await;
    let q = env.net.link(&name("ct-q")).await.expect("q");
    assert_eq!(q.master.as_deref(), Some("ct-br"));
    let err = env
        .net
        .add_link(&macvlan("mv-q", q.index, MacvlanMode::Bridge))
        .await
        .expect_err("port");
    assert!(
        matches!(err, NetError::Busy { .. }),
        "parent is a bridge port: {err:?}"
    );

    let vlan = NewLink {
        name: name("ct-p.10"),
        kind: NewLinkKind::Vlan {
            parent_index: p.index,
            id: VlanId::new("id", 10).expect("id"),
            protocol: VlanProtocol::Ieee8021Q,
        },
        ..macvlan("unused", p.index, MacvlanMode::Bridge)
    };
    let res = env.net.add_link(&vlan).await;
    if env.fx.vlan_expected() {
        res.expect("vlan");
        let v = env.net.link(&name("ct-p.10")).await.expect("vlan link");
        assert_eq!(
            v.details,
            Some(LinkDetails::Vlan {
                id: 10,
                protocol: VlanProtocol::Ieee8021Q,
                reorder_header: true
            })
        );
        let err = env
            .net
            .add_link(&NewLink {
                name: name("ct-p.x"),
                ..vlan.clone()
            })
            .await
            .expect_err("dup id");
        assert!(matches!(err, NetError::AlreadyExists { .. }), "{err:?}");
    } else {
        let err = res.expect_err("no 8021q");
        assert!(matches!(err, NetError::Unsupported { .. }), "{err:?}");
    }
}

pub async fn group_delete_and_cascade(env: Env) {
    env.fx.add_veth("ct-g", "ct-h").await;
    let g = env.net.link(&name("ct-g")).await.expect("g");
    for (n, group) in [("mv-g1", 4343), ("mv-g2", 4343), ("mv-g3", 4344)] {
        env.net
            .add_link(&NewLink {
                group,
                ..macvlan(n, g.index, MacvlanMode::Private)
            })
            .await
            .expect(n);
    }
    env.net.del_group(4343).await.expect("group delete");
    let names: Vec<String> = env
        .net
        .links()
        .await
        .expect("links")
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert!(
        !names.contains(&"mv-g1".to_owned()) && !names.contains(&"mv-g2".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"mv-g3".to_owned()),
        "other groups stay: {names:?}"
    );
    env.net.del_group(4343).await.expect("empty group is fine");
    // Deleting the lower device takes its macvlans with it.
    env.net.del_link(g.index).await.expect("delete parent");
    let names: Vec<String> = env
        .net
        .links()
        .await
        .expect("links")
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert!(
        !names.iter().any(|n| n == "mv-g3" || n == "ct-h"),
        "{names:?}"
    );
}

/// Generates one `#[tokio::test]` per contract case, each with a fresh
/// environment from `$make` (an async fn returning `Option<Env>`; `None`
/// skips, e.g. without root).
#[macro_export]
macro_rules! contract_tests {
    ($make:path) => {
        contract_tests!(@each $make,
            lists_loopback, veth_pair_is_described, unknown_links_are_not_found,
            promisc_flag_and_counter, up_down_and_veth_carrier, mtu_within_device_limits,
            addresses_are_reported, address_probe_finds_who_uses_it, watch_reports_changes, capabilities_match_the_kernel,
            macvlan_created_inside_a_named_namespace, targeted_reads_and_setup_in_one_call,
            link_creation_rules, group_delete_and_cascade);
    };
    (@each $make:path, $($case:ident),*) => {$(
        #[tokio::test]
        async fn $case() {
            if let Some((env, _guard)) = $make(stringify!($case)).await {
                contract::$case(env).await;
            }
        }
    )*};
}
