//! Issue 11, "a failed subsystem is visible and recovers" (root only): the
//! agent's netlink request connection that dies — a panic in its task, an
//! error on its socket — is re-created. Before, every later netlink call
//! failed while health still said SERVING.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use linkherd_agent::net::{NetOps, rtnl::Rtnl};
use linkherd_agent::testing::{Pki, start_agent};
use linkherd_proto::{
    model::Role,
    pb::{self, interface_service_client::InterfaceServiceClient},
};
use test_support::{TestNetns, have_root};

/// The interface names the agent lists over gRPC, once it answers.
async fn listed_once_answering(
    c: &mut InterfaceServiceClient<tonic::transport::Channel>,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match c.list(pb::ListInterfacesRequest::default()).await {
            Ok(r) => {
                return r
                    .into_inner()
                    .interfaces
                    .into_iter()
                    .map(|i| i.name)
                    .collect();
            }
            Err(e) => assert!(
                Instant::now() < deadline,
                "the agent still fails 5 s after its connection died: {e:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_netlink_connection_that_dies_is_re_created() {
    if !have_root("nl-reconnect") {
        return;
    }
    let ns = TestNetns::new("nl-reconnect");
    ns.ip(&[
        "link", "add", "nlr0", "type", "veth", "peer", "name", "nlr0p",
    ]);
    let net = Arc::new(Rtnl::in_netns(ns.path()).expect("netlink"));
    let pki = Pki::new();
    let agent = start_agent(net.clone(), &pki, None).await;
    let ch = agent
        .channel(&pki, Some(Role::Viewer))
        .await
        .expect("viewer");
    let mut c = InterfaceServiceClient::new(ch);
    assert!(
        listed_once_answering(&mut c)
            .await
            .contains(&"nlr0".to_owned())
    );
    for round in 1..=3 {
        net.break_connection();
        let names = listed_once_answering(&mut c).await;
        assert!(
            names.contains(&"nlr0".to_owned()),
            "round {round}: {names:?}"
        );
        // The answer came from a new connection, not a lucky old one.
        assert_eq!(net.reconnects(), round, "round {round}");
        // And the agent changes things again through it.
        let up = net
            .link(&"nlr0".parse().expect("name"))
            .await
            .expect("link");
        net.set_up(up.index, round % 2 == 1).await.expect("set up");
        let now = ns.link_json("nlr0");
        assert_eq!(
            now["flags"].to_string().contains("\"UP\""),
            round % 2 == 1,
            "round {round}: {now}"
        );
    }
}
