//! The services over mTLS against the real kernel, inside a private network
//! namespace with a veth pair standing in for the NIC (root only). Every
//! assertion is checked with `ip -j`, independently of the agent.

use linkherd_agent::testing;

use std::{sync::Arc, time::Duration};

use linkherd_agent::net::rtnl::Rtnl;
use linkherd_agent::testing::{Pki, start_agent};
use linkherd_proto::{
    model::Role,
    pb::{
        self, interface_service_client::InterfaceServiceClient, watch_interfaces_response::Event,
    },
};
use test_support::{TestNetns, have_root};

fn promiscuity(ns: &TestNetns, dev: &str) -> (u64, bool) {
    let j = ns.link_json(dev);
    let flags: Vec<String> = serde_json::from_value(j["flags"].clone()).expect("flags");
    (
        j["promiscuity"].as_u64().expect("promiscuity"),
        flags.iter().any(|f| f == "PROMISC"),
    )
}

async fn setup(tag: &str) -> Option<(TestNetns, Pki, testing::RunningAgent)> {
    if !have_root(tag) {
        return None;
    }
    let ns = TestNetns::new(tag);
    ns.ip(&[
        "link", "add", "ens192", "type", "veth", "peer", "name", "sw-no1",
    ]);
    let pki = Pki::new();
    let net = Arc::new(Rtnl::in_netns(ns.path()).expect("netlink"));
    let agent = start_agent(net, &pki, None).await;
    Some((ns, pki, agent))
}

#[tokio::test]
async fn promisc_on_off_is_visible_in_ip_and_idempotent() {
    let Some((ns, pki, agent)) = setup("gk-promisc").await else {
        return;
    };
    let mut c = InterfaceServiceClient::new(
        agent
            .channel(&pki, Some(Role::Admin))
            .await
            .expect("connect"),
    );
    let req = |enabled| pb::SetPromiscuousRequest {
        name: "ens192".into(),
        enabled,
        lease_seconds: 0,
    };

    let r = c.set_promiscuous(req(true)).await.expect("on").into_inner();
    assert_eq!(r.outcome(), pb::Outcome::Changed);
    assert_eq!(promiscuity(&ns, "ens192"), (1, true));
    let i = r.interface.expect("iface");
    assert_eq!((i.promiscuous, i.promiscuity), (true, 1));

    let r = c
        .set_promiscuous(req(true))
        .await
        .expect("again")
        .into_inner();
    assert_eq!(r.outcome(), pb::Outcome::Unchanged);
    assert_eq!(promiscuity(&ns, "ens192"), (1, true), "no double count");

    c.set_promiscuous(req(false)).await.expect("off");
    assert_eq!(promiscuity(&ns, "ens192"), (0, false));
}

#[tokio::test]
async fn promisc_lease_expiry_reverts_in_the_kernel() {
    let Some((ns, pki, agent)) = setup("gk-lease").await else {
        return;
    };
    let mut c = InterfaceServiceClient::new(
        agent
            .channel(&pki, Some(Role::Admin))
            .await
            .expect("connect"),
    );
    c.set_promiscuous(pb::SetPromiscuousRequest {
        name: "ens192".into(),
        enabled: true,
        lease_seconds: 1,
    })
    .await
    .expect("on with lease");
    assert_eq!(promiscuity(&ns, "ens192"), (1, true));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while promiscuity(&ns, "ens192").1 {
        assert!(
            std::time::Instant::now() < deadline,
            "lease did not revert within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(promiscuity(&ns, "ens192"), (0, false));
}

#[tokio::test]
async fn mtu_and_admin_state_are_applied_and_bad_values_refused() {
    let Some((ns, pki, agent)) = setup("gk-mtu").await else {
        return;
    };
    let mut c = InterfaceServiceClient::new(
        agent
            .channel(&pki, Some(Role::Admin))
            .await
            .expect("connect"),
    );
    c.set_mtu(pb::SetMtuRequest {
        name: "ens192".into(),
        mtu: 9000,
    })
    .await
    .expect("mtu");
    assert_eq!(ns.link_json("ens192")["mtu"], 9000);
    let err = c
        .set_mtu(pb::SetMtuRequest {
            name: "ens192".into(),
            mtu: 65_536,
        })
        .await
        .expect_err("too big");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        ns.link_json("ens192")["mtu"],
        9000,
        "unchanged after refusal"
    );

    c.set_up(pb::SetUpRequest {
        name: "ens192".into(),
        up: true,
    })
    .await
    .expect("up");
    let flags: Vec<String> =
        serde_json::from_value(ns.link_json("ens192")["flags"].clone()).expect("flags");
    assert!(flags.iter().any(|f| f == "UP"), "{flags:?}");

    // The agent reports what `ip` reports.
    let got = c
        .get(pb::GetInterfaceRequest {
            name: "ens192".into(),
        })
        .await
        .expect("get")
        .into_inner();
    let i = got.interface.expect("iface");
    let j = ns.link_json("ens192");
    assert_eq!(i.mac, j["address"].as_str().expect("mac"));
    assert_eq!(u64::from(i.index), j["ifindex"].as_u64().expect("index"));
    assert_eq!(i.parent, "sw-no1");
    assert_eq!(i.kind_name, "veth");
}

#[tokio::test]
async fn watch_sees_a_link_created_with_ip() {
    let Some((ns, pki, agent)) = setup("gk-watch").await else {
        return;
    };
    let mut c = InterfaceServiceClient::new(
        agent
            .channel(&pki, Some(Role::Viewer))
            .await
            .expect("connect"),
    );
    let mut stream = c
        .watch(pb::WatchInterfacesRequest {})
        .await
        .expect("watch")
        .into_inner();
    while !matches!(testing::next_event(&mut stream).await, Event::Synced(_)) {}
    let started = std::time::Instant::now();
    ns.ip(&[
        "link", "add", "mv0", "link", "ens192", "type", "macvlan", "mode", "bridge",
    ]);
    let added = loop {
        if let Event::Added(i) = testing::next_event(&mut stream).await {
            break i;
        }
    };
    let latency = started.elapsed();
    assert_eq!(added.name, "mv0");
    assert_eq!(added.kind(), pb::LinkKind::Macvlan);
    assert_eq!(added.parent, "ens192");
    match added.details {
        Some(pb::interface::Details::Macvlan(m)) => assert_eq!(m.mode(), pb::MacvlanMode::Bridge),
        other => panic!("macvlan details missing: {other:?}"),
    }
    assert!(latency < Duration::from_secs(2), "event took {latency:?}");

    ns.ip(&["addr", "add", "10.0.100.100/24", "dev", "mv0"]);
    loop {
        if let Event::Changed(ch) = testing::next_event(&mut stream).await
            && ch.fields.iter().any(|f| f == "addresses")
        {
            let i = ch.interface.expect("iface");
            assert_eq!(i.addresses[0].cidr, "10.0.100.100/24");
            break;
        }
    }
    ns.ip(&["link", "del", "mv0"]);
    loop {
        if let Event::Removed(r) = testing::next_event(&mut stream).await {
            assert_eq!(r.name, "mv0");
            break;
        }
    }
}
