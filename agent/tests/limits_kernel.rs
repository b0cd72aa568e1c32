//! T2 (root): the agent's descriptors over the real kernel. `Watch`
//! streams share one netlink socket (issue 11, problem 3: 1100 streams
//! from one viewer exhausted them); connections into namespaces that are
//! gone are closed on a timer (issue 25, problem 10: 100 ADD/DEL cycles
//! left 218 descriptors, holding dead containers' namespaces). Alone in
//! this binary, one test at a time, so that nothing else opens
//! descriptors while they are counted.

use linkherd_agent::testing;

use std::sync::Arc;

use linkherd_agent::net::rtnl::Rtnl;
use linkherd_agent::testing::{Pki, start_agent};
use linkherd_proto::{
    model::Role,
    pb::{
        self, interface_service_client::InterfaceServiceClient, watch_interfaces_response::Event,
    },
};
use test_support::{TestNetns, have_root};
use tonic::Code;

/// The tests of this binary run one at a time (they count descriptors).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

#[tokio::test]
async fn watch_streams_do_not_grow_the_agents_descriptors() {
    if !have_root("lk-watch-fds") {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().await;
    let ns = TestNetns::new("lk-watch-fds");
    ns.ip(&[
        "link", "add", "ens192", "type", "veth", "peer", "name", "sw-no1",
    ]);
    let pki = Pki::new();
    let net = Arc::new(Rtnl::in_netns(ns.path()).expect("netlink"));
    let agent = start_agent(net, &pki, None).await;
    let mut c = InterfaceServiceClient::new(
        agent
            .channel(&pki, Some(Role::Viewer))
            .await
            .expect("connect"),
    );
    let mut open = Vec::new();
    let mut first = None;
    for _ in 0..16 {
        let mut s = c
            .watch(pb::WatchInterfacesRequest {})
            .await
            .expect("watch")
            .into_inner();
        while !matches!(testing::next_event(&mut s).await, Event::Synced(_)) {}
        open.push(s);
        // After the first stream: its subscription is the one socket.
        first.get_or_insert_with(open_fds);
    }
    let first = first.expect("a stream");
    for i in 16..1100 {
        let err = c
            .watch(pb::WatchInterfacesRequest {})
            .await
            .expect_err("over the cap");
        assert_eq!(err.code(), Code::ResourceExhausted, "stream {i}: {err:?}");
    }
    let after = open_fds();
    // Slack for the runtime's own descriptors, none per stream.
    assert!(
        after <= first + 4,
        "descriptors grew with streams: {first} after one stream, {after} after 1100"
    );

    // Every stream sees a kernel change through the shared socket.
    ns.ip(&[
        "link", "add", "veth7", "type", "veth", "peer", "name", "veth8",
    ]);
    for s in &mut open {
        loop {
            if let Event::Added(i) = testing::next_event(s).await
                && i.name == "veth7"
            {
                break;
            }
        }
    }
    // A new client still connects and is served.
    let mut other = InterfaceServiceClient::new(
        agent
            .channel(&pki, Some(Role::Operator))
            .await
            .expect("a new client connects"),
    );
    other
        .list(pb::ListInterfacesRequest {})
        .await
        .expect("served");
}

/// Descriptors that hold a network namespace (`net:[…]`).
fn namespace_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t.to_string_lossy().starts_with("net:["))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_into_deleted_namespaces_are_closed() {
    if !have_root("lk-gone-fds") {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().await;
    let host = TestNetns::new("lk-gone-fds");
    host.ip(&["link", "add", "up0", "type", "veth", "peer", "name", "sw0"]);
    let pki = Pki::new();
    let net = Arc::new(Rtnl::in_netns(host.path()).expect("netlink"));
    let agent = start_agent(net, &pki, None).await;
    let mut mv = pb::macvlan_service_client::MacvlanServiceClient::new(
        agent
            .channel(&pki, Some(Role::Admin))
            .await
            .expect("connect"),
    );
    let (fds, nsfds) = (open_fds(), namespace_fds());
    for i in 0..50 {
        let container = TestNetns::new(&format!("lk-gone-{i}"));
        let ep = pb::MacvlanEndpoint {
            network: "gone".into(),
            name: format!("c{i}"),
            parent: "up0".into(),
            mode: pb::MacvlanMode::Bridge.into(),
            netns: Some(pb::NetnsTarget {
                target: Some(pb::netns_target::Target::Path(
                    container.path().display().to_string(),
                )),
            }),
            addresses: vec![format!("10.90.0.{}/24", i + 10)],
            ..Default::default()
        };
        mv.create(pb::CreateMacvlanRequest {
            endpoint: Some(ep),
            create_netns: false,
        })
        .await
        .expect("add");
        mv.delete(pb::DeleteMacvlanRequest {
            network: "gone".into(),
            name: format!("c{i}"),
            ..Default::default()
        })
        .await
        .expect("del");
        drop(container); // the runtime deletes the namespace after DEL
    }
    // Nothing calls into a namespace any more: the timer alone closes them.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let (fds_after, nsfds_after) = (open_fds(), namespace_fds());
    assert_eq!(
        nsfds_after, nsfds,
        "namespace descriptors left after 50 cycles"
    );
    assert!(
        fds_after <= fds + 4,
        "descriptors grew over 50 cycles: {fds} before, {fds_after} after"
    );
}
