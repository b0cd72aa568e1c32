//! The network catalog over the full gRPC stack and the fake kernel: put,
//! changed and removed only by transactions (planned, journaled, rolled
//! back like every step), read by viewers through NetworkService, kept in
//! the state directory across a restart, and refused when malformed.

use linkherd_agent::testing;

use std::sync::Arc;

use linkherd_agent::net::fake::FakeKernel;
use linkherd_agent::testing::{Pki, start_agent};
use linkherd_proto::{model::Role, pb};
use pb::{host_service_client::HostServiceClient, network_service_client::NetworkServiceClient};
use tonic::{Code, transport::Channel};

fn net(blocks: &[&str]) -> pb::CatalogNetwork {
    pb::CatalogNetwork {
        name: "mac_net10".into(),
        parent: "ens192.10".into(),
        vlan_id: 10,
        mode: pb::MacvlanMode::Bridge.into(),
        mtu: 0,
        v4: Some(pb::CatalogPool {
            subnet: "172.16.10.0/24".into(),
            gateway: "172.16.10.1".into(),
            blocks: blocks.iter().map(|b| (*b).to_owned()).collect(),
            excluded: vec![pb::Excluded {
                prefix: "172.16.10.200/32".into(),
                why: "endpoint no2/b3".into(),
            }],
        }),
        v6: None,
    }
}

fn desired(catalog: Vec<pb::CatalogNetwork>) -> Option<pb::DesiredState> {
    Some(pb::DesiredState {
        networks: vec!["mac_net10".into()],
        catalog,
        ..Default::default()
    })
}

/// Applies and confirms `catalog`; the change words applied.
async fn apply(
    host: &mut HostServiceClient<Channel>,
    catalog: Vec<pb::CatalogNetwork>,
) -> Vec<String> {
    let desired = desired(catalog).expect("desired");
    testing::apply_confirmed(host, desired)
        .await
        .iter()
        .map(|c| format!("{} {}: {}", c.object_kind, c.object, c.detail))
        .collect()
}

async fn listed(viewer: &mut NetworkServiceClient<Channel>) -> Vec<pb::CatalogNetwork> {
    viewer
        .list(pb::ListNetworksRequest {})
        .await
        .expect("list")
        .into_inner()
        .networks
}

#[tokio::test]
async fn the_catalog_is_transactional_durable_and_readable_by_viewers() {
    let dir = tempfile::tempdir().expect("state");
    let fake = Arc::new(FakeKernel::with_vlan_support());
    let pki = Pki::new();
    let agent = start_agent(fake.clone(), &pki, Some(dir.path())).await;
    let mut host =
        HostServiceClient::new(agent.channel(&pki, Some(Role::Admin)).await.expect("admin"));
    let mut viewer = NetworkServiceClient::new(
        agent
            .channel(&pki, Some(Role::Viewer))
            .await
            .expect("viewer"),
    );
    let err = viewer
        .get(pb::GetNetworkRequest {
            name: "mac_net10".into(),
        })
        .await
        .expect_err("empty catalog");
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(
        err.message(),
        "network \"mac_net10\" is not in this host's catalog; add it to the fleet spec \
         (with containers: ...) and apply"
    );
    // A huge name is refused as a name, and not echoed whole.
    let err = viewer
        .get(pb::GetNetworkRequest {
            name: "n".repeat(1 << 20),
        })
        .await
        .expect_err("huge");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().len() < 1024, "{} bytes", err.message().len());

    assert_eq!(
        apply(&mut host, vec![net(&["172.16.10.48/28"])]).await,
        ["network mac_net10: on ens192.10, 172.16.10.0/24 blocks 172.16.10.48/28"]
    );
    assert_eq!(listed(&mut viewer).await, [net(&["172.16.10.48/28"])]);
    let file = dir.path().join("networks/mac_net10.json");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("record")).expect("json");
    assert_eq!(record["format"], 1);
    assert_eq!(
        record["v4"]["blocks"],
        serde_json::json!(["172.16.10.48/28"])
    );
    assert_eq!(
        record["v4"]["excluded"],
        serde_json::json!([{"prefix": "172.16.10.200/32", "why": "endpoint no2/b3"}])
    );

    // The same again plans nothing; a second block is an update, which a
    // rollback takes back, to the byte.
    let plan = host
        .plan(pb::PlanRequest {
            desired: desired(vec![net(&["172.16.10.48/28"])]),
        })
        .await
        .expect("plan")
        .into_inner();
    assert_eq!(plan.changes, []);
    let a = host
        .apply(pb::ApplyRequest {
            desired: desired(vec![net(&["172.16.10.48/28", "172.16.10.64/28"])]),
            expected_generation: plan.generation,
            confirm_timeout_seconds: 60,
            ..Default::default()
        })
        .await
        .expect("grow")
        .into_inner();
    assert_eq!(
        a.applied[0].detail,
        "v4 172.16.10.0/24 [172.16.10.48/28] -> 172.16.10.0/24 [172.16.10.48/28 172.16.10.64/28]"
    );
    let r = host
        .rollback(pb::RollbackRequest { txn_id: a.txn_id })
        .await
        .expect("rollback")
        .into_inner();
    assert_eq!(
        r.reverted[0].detail,
        "restored network mac_net10 in the catalog"
    );
    assert_eq!(listed(&mut viewer).await, [net(&["172.16.10.48/28"])]);
    let state = host
        .get_state(pb::GetStateRequest {})
        .await
        .expect("state")
        .into_inner();
    assert_eq!(state.generation, plan.generation, "exactly as before");
    assert_eq!(
        state.owned.expect("owned").catalog,
        [net(&["172.16.10.48/28"])]
    );

    // A restarted agent has it still; a state that speaks for the network
    // without listing it removes it.
    drop((host, viewer, agent));
    let agent = start_agent(fake.clone(), &pki, Some(dir.path())).await;
    let mut host =
        HostServiceClient::new(agent.channel(&pki, Some(Role::Admin)).await.expect("admin"));
    let mut viewer = NetworkServiceClient::new(
        agent
            .channel(&pki, Some(Role::Viewer))
            .await
            .expect("viewer"),
    );
    assert_eq!(listed(&mut viewer).await, [net(&["172.16.10.48/28"])]);
    assert_eq!(
        apply(&mut host, Vec::new()).await,
        ["network mac_net10: on ens192.10, 172.16.10.0/24 blocks 172.16.10.48/28"]
    );
    assert_eq!(listed(&mut viewer).await, []);
    assert!(!file.exists(), "record left behind");
}

#[tokio::test]
async fn a_malformed_catalog_is_refused_with_its_path() {
    let fake = Arc::new(FakeKernel::with_vlan_support());
    let pki = Pki::new();
    let agent = start_agent(fake, &pki, None).await;
    let mut host =
        HostServiceClient::new(agent.channel(&pki, Some(Role::Admin)).await.expect("admin"));
    let err = host
        .plan(pb::PlanRequest {
            desired: desired(vec![net(&["172.16.10.48/28", "172.16.10.56/29"])]),
        })
        .await
        .expect_err("overlap");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "invalid desired.catalog[0].v4.blocks[1] \"172.16.10.56/29\": overlaps the block \
         172.16.10.48/28; grant blocks that do not overlap"
    );
    let twice = vec![net(&["172.16.10.48/28"]), net(&["172.16.10.64/28"])];
    let err = host
        .plan(pb::PlanRequest {
            desired: desired(twice),
        })
        .await
        .expect_err("twice");
    assert!(
        err.message().contains("desired.catalog[1].name"),
        "{}",
        err.message()
    );
}
