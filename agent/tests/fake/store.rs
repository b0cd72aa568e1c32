//! The state directory across restarts, over the fake kernel: the layouts
//! of agents before the store (endpoints.json, promisc-leases.json as bare
//! arrays, txn.json with protobuf bytes) are migrated at start, and a
//! corrupt file is kept aside as NAME.corrupt-<time>, audited, and the agent
//! goes on from the kernel's state.

use std::{path::Path, sync::Arc};

use linkherd_agent::net::{NetOps, fake::FakeKernel};
use linkherd_agent::testing::{self, Pki, RunningAgent, start_agent};
use linkherd_proto::{
    model::{IfName, Role},
    pb::{self, macvlan_service_client::MacvlanServiceClient, netns_target::Target},
};
use prost::Message;
use serde_json::{Value, json};

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

async fn audit_lines(agent: &RunningAgent, state: &Path) -> Vec<Value> {
    agent.agent.context().audit.flush().await;
    std::fs::read_to_string(state.join("audit.log"))
        .expect("audit")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

fn fake() -> Arc<FakeKernel> {
    let fake = Arc::new(FakeKernel::with_vlan_support());
    fake.add_veth("ens192", "sw").expect("nic");
    fake
}

#[tokio::test]
async fn the_old_layouts_are_migrated_at_start() {
    let fake = fake();
    let nic = fake
        .link(&IfName::parse("n", "ens192").expect("name"))
        .await
        .expect("nic");
    let state = tempfile::tempdir().expect("state");
    let dir = state.path();
    let entry = json!({
        "network": "mac_net", "name": "k1", "netns": {"name": "k1"}, "ifname": "eth0",
        "parent": "ens192", "parent_created": false, "netns_created": true,
    });
    std::fs::write(dir.join("endpoints.json"), json!([entry]).to_string()).expect("write");
    let lease =
        json!({"index": nic.index, "name": "ens192", "revert_to": false, "deadline": now() + 600});
    std::fs::write(dir.join("promisc-leases.json"), json!([lease]).to_string()).expect("write");
    // A transaction that deleted VLAN ens192.20, journaled as protobuf.
    let vlan = pb::Vlan {
        name: "ens192.20".into(),
        parent: "ens192".into(),
        id: 20,
        protocol: pb::VlanProtocol::VlanProtocol8021q.into(),
        owned: true,
        ..Default::default()
    };
    let txn = json!({"id": "txn-1-1", "deadline": now() + 600,
        "undo": [{"undo": "create_vlan", "vlan": vlan.encode_to_vec()}]});
    std::fs::write(dir.join("txn.json"), txn.to_string()).expect("write");

    // The endpoint's namespace is there: its record is kept at start.
    fake.create_netns("k1").await.expect("netns k1");
    let agent = start_agent(fake.clone(), &Pki::new(), Some(dir)).await;

    assert!(!dir.join("endpoints.json").exists());
    let mut record = entry.clone();
    record["format"] = json!(1);
    assert_eq!(read_json(&dir.join("endpoints/mac_net+k1.json")), record);
    let leases = read_json(&dir.join("promisc-leases.json"));
    assert_eq!(leases, json!({"format": 1, "leases": [lease]}));
    // The old journal was rolled back (the VLAN is back) and removed.
    assert!(!dir.join("txn.json").exists());
    let back = fake
        .link(&IfName::parse("n", "ens192.20").expect("name"))
        .await
        .expect("the journaled VLAN was re-created");
    assert_eq!(back.parent_index, nic.index);
    let audit = audit_lines(&agent, dir).await;
    let recover = audit
        .iter()
        .find(|l| l["action"] == "txn-recover")
        .expect("txn-recover audited");
    assert_eq!(recover["target"], "txn-1-1");
    assert_eq!(recover["detail"], "re-created vlan ens192.20");
}

#[tokio::test]
async fn a_corrupt_file_is_kept_aside_audited_and_the_kernel_is_the_truth() {
    let fake = fake();
    let pki = Pki::new();
    let state = tempfile::tempdir().expect("state");
    let dir = state.path();
    let run = tempfile::tempdir().expect("run dir");
    {
        let opts = linkherd_agent::app::AgentOptions {
            state_dir: Some(dir.to_owned()),
            run_dir: Some(run.path().to_owned()),
            ..Default::default()
        };
        let agent = testing::start_agent_with(fake.clone(), &pki, opts).await;
        let mut mv =
            MacvlanServiceClient::new(agent.channel(&pki, Some(Role::Admin)).await.expect("ch"));
        mv.create(pb::CreateMacvlanRequest {
            endpoint: Some(pb::MacvlanEndpoint {
                network: "mac_net".into(),
                name: "k1".into(),
                parent: "ens192".into(),
                mode: pb::MacvlanMode::Bridge.into(),
                netns: Some(pb::NetnsTarget {
                    target: Some(Target::Name("k1".into())),
                }),
                addresses: vec!["10.0.100.10/24".into()],
                ..Default::default()
            }),
            create_netns: true,
        })
        .await
        .expect("create");
    }
    let record = dir.join("endpoints/mac_net+k1.json");
    assert_eq!(read_json(&record)["netns_created"], true);
    // Each file, and the name it is kept as (a set's records next to the
    // set: its directory may be removed whole).
    let corrupt = [
        (record.clone(), "endpoints.mac_net+k1.json.corrupt-"),
        (
            dir.join("promisc-leases.json"),
            "promisc-leases.json.corrupt-",
        ),
        (
            dir.join("txn/txn-1-1+000001.json"),
            "txn.txn-1-1+000001.json.corrupt-",
        ),
    ];
    // (The journal's directory goes with the transaction it held.)
    std::fs::create_dir(dir.join("txn")).expect("mkdir");
    for (f, _) in &corrupt {
        std::fs::write(f, b"{\"format\": 1, \"cut short").expect("corrupt");
    }

    let agent = start_agent(fake.clone(), &pki, Some(dir)).await;

    let audit = audit_lines(&agent, dir).await;
    for (f, kept_as) in &corrupt {
        assert!(!f.exists(), "{} is still there", f.display());
        let line = audit
            .iter()
            .find(|l| l["action"] == "state-corrupt" && l["target"] == f.display().to_string())
            .unwrap_or_else(|| panic!("{} not audited: {audit:?}", f.display()));
        assert_eq!(line["result"], "kept aside");
        let detail = line["detail"].as_str().expect("detail");
        let kept = detail
            .strip_prefix("kept as ")
            .and_then(|d| d.split_once(": not JSON: "))
            .map(|(k, _)| k)
            .unwrap_or_else(|| panic!("{detail}"));
        let time: u64 = kept
            .strip_prefix(&format!("{}/{kept_as}", dir.display()))
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("{kept} is not {kept_as}<unix time>"));
        assert!(time.abs_diff(now()) < 60);
        assert_eq!(
            std::fs::read(kept).expect("kept aside"),
            b"{\"format\": 1, \"cut short"
        );
    }
    // The lost record is not made again by a read (a mark is no proof)...
    let listed = testing::listed_endpoints(&agent, &pki).await;
    assert!(listed.is_empty(), "{listed:?}");
    assert!(!record.exists(), "a read wrote a record");
    drop(agent);
    // ...but by the operator's --adopt at the next start, audited.
    let agent = testing::start_adopting(fake.clone(), &pki, (dir, run.path())).await;
    let listed = testing::listed_endpoints(&agent, &pki).await;
    assert_eq!(listed, [("mac_net".to_owned(), "k1".to_owned())]);
    let again = read_json(&record);
    assert_eq!(
        (again["format"].clone(), again["name"].clone()),
        (json!(1), json!("k1"))
    );
    let audit = audit_lines(&agent, dir).await;
    assert!(
        audit.iter().any(|l| l["action"] == "adopt"
            && l["target"] == "endpoint mac_net/k1 (eth0 in netns k1)"
            && l["result"] == "ok"),
        "{audit:?}"
    );
}
