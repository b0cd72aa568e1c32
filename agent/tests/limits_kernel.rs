//! T2 (root): `Watch` streams over the real kernel share one netlink
//! socket (issue 11, problem 3). Before, every stream opened its own: 1100
//! streams from one viewer exhausted the agent's descriptors and it
//! stopped accepting. The only test in this binary, so that nothing else
//! opens descriptors while they are counted.

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
