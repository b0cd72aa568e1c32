//! A state directory written by an older agent is loaded by this one.
//!
//! `tests/fixtures/state-be8f319/` was written by the agent at commit
//! be8f319 (before the renovation of its modules) running
//! [`write_state_fixture`] over the fake kernel: a confirmed catalog network,
//! an endpoint on an automatic VLAN parent, host access, a container
//! attachment, a promiscuous-mode lease and a transaction left pending. The
//! test below rebuilds the same kernel objects, lays the fixture over the
//! state directory, starts today's agent on it and checks that every record
//! is read (nothing kept aside as corrupt), the lease and the pending
//! transaction recovered as they would have been then.

use linkherd_agent::testing;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use linkherd_agent::net::{NetOps, fake::FakeKernel};
use linkherd_agent::testing::{Pki, RunningAgent, start_agent};
use linkherd_proto::{
    model::{IfName, Role},
    pb::{
        self, attachment_service_client::AttachmentServiceClient,
        host_service_client::HostServiceClient, interface_service_client::InterfaceServiceClient,
        macvlan_service_client::MacvlanServiceClient, netns_target::Target,
        network_service_client::NetworkServiceClient,
    },
};
use serde_json::Value;

/// The pid whose namespace the container attachment lives in.
const CONTAINER_PID: u32 = 4242;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state-be8f319")
}

fn kernel() -> Arc<FakeKernel> {
    let fake = Arc::new(FakeKernel::with_vlan_support());
    fake.add_veth("ens192", "sw").expect("nic");
    fake.add_process_netns(CONTAINER_PID);
    fake
}

fn catalog() -> pb::CatalogNetwork {
    pb::CatalogNetwork {
        name: "mac_net10".into(),
        parent: "ens192.10".into(),
        vlan_id: 10,
        mode: pb::MacvlanMode::Bridge.into(),
        mtu: 0,
        v4: Some(pb::CatalogPool {
            subnet: "172.16.10.0/24".into(),
            gateway: "172.16.10.1".into(),
            blocks: vec!["172.16.10.48/28".into()],
            excluded: vec![],
        }),
        v6: None,
    }
}

fn endpoint(name: &str, ip: &str) -> pb::MacvlanEndpoint {
    pb::MacvlanEndpoint {
        network: "mac_net10".into(),
        name: name.into(),
        parent: "ens192.10".into(),
        mode: pb::MacvlanMode::Bridge.into(),
        netns: Some(pb::NetnsTarget {
            target: Some(Target::Name(name.into())),
        }),
        addresses: vec![ip.into()],
        gateway: "172.16.10.1".into(),
        ..Default::default()
    }
}

fn desired(endpoints: Vec<pb::MacvlanEndpoint>) -> pb::DesiredState {
    pb::DesiredState {
        endpoints,
        host_access: vec![pb::HostAccess {
            network: "mac_net10".into(),
            parent: "ens192.10".into(),
            addresses: vec!["172.16.10.254/32".into()],
            routes: vec!["172.16.10.10/32".into()],
            ..Default::default()
        }],
        networks: vec!["mac_net10".into()],
        catalog: vec![catalog()],
        ..Default::default()
    }
}

/// What the fixture holds, made through the public API: b1 confirmed with
/// the catalog and host access, a container attached, a lease on ens192,
/// then b2 applied and left pending.
async fn populate(agent: &RunningAgent, pki: &Pki) {
    let admin = agent.channel(pki, Some(Role::Admin)).await.expect("admin");
    let mut host = HostServiceClient::new(admin.clone());
    testing::apply_confirmed(&mut host, desired(vec![endpoint("b1", "172.16.10.10/24")])).await;
    AttachmentServiceClient::new(admin.clone())
        .attach(pb::AttachRequest {
            network: "mac_net10".into(),
            container_id: "c0ffee".into(),
            netns: format!("/proc/{CONTAINER_PID}/ns/net"),
            ifname: "eth0".into(),
            ..Default::default()
        })
        .await
        .expect("attach");
    InterfaceServiceClient::new(admin)
        .set_promiscuous(pb::SetPromiscuousRequest {
            name: "ens192".into(),
            enabled: true,
            lease_seconds: 3600,
        })
        .await
        .expect("lease");
    let generation = host
        .get_state(pb::GetStateRequest {})
        .await
        .expect("state")
        .into_inner()
        .generation;
    host.apply(pb::ApplyRequest {
        desired: Some(desired(vec![
            endpoint("b1", "172.16.10.10/24"),
            endpoint("b2", "172.16.10.11/24"),
        ])),
        expected_generation: generation,
        confirm_timeout_seconds: 3600,
        ..Default::default()
    })
    .await
    .expect("pending apply");
}

/// Writes the fixture into `$LINKHERD_STATE_FIXTURE` (an empty directory).
/// Run by hand to make a fixture of the agent as it is:
/// `LINKHERD_STATE_FIXTURE=DIR cargo test -p linkherd-agent --test
/// fake state_fixture:: -- --ignored`. The audit log and the agent's unix
/// socket are not part of a fixture.
#[tokio::test]
#[ignore = "writes a fixture; run by hand"]
async fn write_state_fixture() {
    let out = PathBuf::from(std::env::var("LINKHERD_STATE_FIXTURE").expect("output directory"));
    let pki = Pki::new();
    let agent = start_agent(kernel(), &pki, Some(&out)).await;
    populate(&agent, &pki).await;
    agent.agent.context().audit.flush().await;
    drop(agent);
    std::fs::remove_file(out.join("audit.log")).expect("audit log");
}

/// Copies `from` into `to`, files and directories, replacing what is there.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read fixture") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn a_state_directory_of_be8f319_is_loaded() {
    // The kernel as the old agent left it: the same calls, recorded under
    // the fixture's agent id so that its aliases name the same agent.
    let fake = kernel();
    let state = tempfile::tempdir().expect("state");
    let dir = state.path();
    std::fs::copy(fixture().join("agent.json"), dir.join("agent.json")).expect("agent id");
    let pki = Pki::new();
    let before = start_agent(fake.clone(), &pki, Some(dir)).await;
    populate(&before, &pki).await;
    drop(before);
    // The old agent's files, over what this one wrote. Its journal's
    // transaction and its lease ran out long ago.
    for sub in ["endpoints", "networks", "attachments", "txn"] {
        let _ = std::fs::remove_dir_all(dir.join(sub));
    }
    copy_tree(&fixture(), dir);
    let ens192 = IfName::parse("n", "ens192").expect("name");
    assert!(fake.link(&ens192).await.expect("nic").promiscuous);

    let agent = start_agent(fake.clone(), &pki, Some(dir)).await;
    let viewer = agent
        .channel(&pki, Some(Role::Viewer))
        .await
        .expect("viewer");

    // Nothing was kept aside as unreadable.
    let names = files(dir);
    assert!(
        names.iter().all(|n| !n.contains(".corrupt-")),
        "kept aside: {names:?}"
    );
    // The pending transaction was rolled back at start: b2 and its
    // namespace are gone, its journal is empty, b1 is as it was.
    assert_eq!(files(&dir.join("txn")), Vec::<String>::new());
    assert_eq!(
        files(&dir.join("endpoints")),
        ["mac_net10+b1.json".to_owned()]
    );
    assert_eq!(fake.netns_names().await.expect("netns"), ["b1".to_owned()]);
    let eps = MacvlanServiceClient::new(viewer.clone())
        .list(pb::ListMacvlansRequest {})
        .await
        .expect("endpoints")
        .into_inner()
        .endpoints;
    let listed: Vec<(String, Vec<String>, bool)> = eps
        .iter()
        .map(|e| (e.name.clone(), e.addresses.clone(), e.owned))
        .collect();
    assert_eq!(
        listed,
        [("b1".to_owned(), vec!["172.16.10.10/24".to_owned()], true)]
    );
    // The lease ended while the agent was down: reverted at once.
    assert!(!fake.link(&ens192).await.expect("nic").promiscuous);
    // The catalog and the attachment are read back.
    let networks = NetworkServiceClient::new(viewer.clone())
        .list(pb::ListNetworksRequest {})
        .await
        .expect("networks")
        .into_inner()
        .networks;
    assert_eq!(networks, [catalog()]);
    let attached = AttachmentServiceClient::new(viewer)
        .list(pb::ListAttachmentsRequest::default())
        .await
        .expect("attachments")
        .into_inner()
        .attachments;
    let listed: Vec<(String, String, Vec<String>, bool)> = attached
        .iter()
        .map(|a| {
            (
                a.container_id.clone(),
                a.netns.clone(),
                a.addresses.clone(),
                a.stale,
            )
        })
        .collect();
    assert_eq!(
        listed,
        [(
            "c0ffee".to_owned(),
            format!("/proc/{CONTAINER_PID}/ns/net"),
            vec!["172.16.10.48/24".to_owned()],
            // Recorded without the namespace's identity (a fake namespace
            // has no inode), so listed stale, as the old agent listed it.
            true
        )]
    );
    // The audit log names the rollback at start and the lease's end.
    agent.agent.context().audit.flush().await;
    let audit: Vec<Value> = std::fs::read_to_string(dir.join("audit.log"))
        .expect("audit")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let actions: Vec<&str> = audit.iter().filter_map(|l| l["action"].as_str()).collect();
    assert!(actions.contains(&"txn-recover"), "{actions:?}");
    assert!(actions.contains(&"lease-expiry"), "{actions:?}");
}
