//! The kernel contract: what linkherd relies on from [`NetOps`], checked
//! against both the real kernel and the fake, so the fake cannot drift.
#![allow(dead_code)]

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use linkherd_agent::net::{NetError, NetEvent, NetOps};
use linkherd_proto::model::{IfName, LinkKind, OperState};

/// Changes made behind the agent's back, the way an operator with `ip` would.
#[async_trait]
pub trait Fixture: Send + Sync {
    async fn add_veth(&self, a: &str, b: &str);
    async fn del_link(&self, name: &str);
    async fn add_addr(&self, name: &str, cidr: &str);
    /// Whether this kernel has 802.1Q, judged independently of the agent.
    fn vlan_expected(&self) -> bool;
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

/// Generates one `#[tokio::test]` per contract case, each with a fresh
/// environment from `$make` (an async fn returning `Option<Env>`; `None`
/// skips, e.g. without root).
#[macro_export]
macro_rules! contract_tests {
    ($make:path) => {
        contract_tests!(@each $make,
            lists_loopback, veth_pair_is_described, unknown_links_are_not_found,
            promisc_flag_and_counter, up_down_and_veth_carrier, mtu_within_device_limits,
            addresses_are_reported, watch_reports_changes, capabilities_match_the_kernel);
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
