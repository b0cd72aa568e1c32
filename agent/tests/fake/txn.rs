//! Commit-confirmed transactions (HostService Apply / Confirm / Rollback)
//! over the full gRPC stack and the fake kernel: confirm keeps, rollback and
//! an expired confirmation undo, a failure half way undoes the steps before
//! it, a changed host or a pending transaction refuses, and an agent that
//! restarts with a journal rolls back.

use linkherd_agent::testing;

use std::{path::Path, sync::Arc, time::Duration};

use linkherd_agent::net::{NetOps, fake::FakeKernel};
use linkherd_agent::testing::{Pki, start_agent};
use linkherd_proto::{
    model::{IfName, Role},
    pb::{self, host_service_client::HostServiceClient, netns_target::Target},
};
use tonic::{Code, transport::Channel};

fn ep(name: &str, ip: &str) -> pb::MacvlanEndpoint {
    pb::MacvlanEndpoint {
        network: "mac_net".into(),
        name: name.into(),
        parent: "ens192".into(),
        mode: pb::MacvlanMode::Bridge.into(),
        netns: Some(pb::NetnsTarget {
            target: Some(Target::Name(name.into())),
        }),
        addresses: vec![ip.into()],
        ..Default::default()
    }
}

fn state(eps: Vec<pb::MacvlanEndpoint>) -> Option<pb::DesiredState> {
    Some(pb::DesiredState {
        endpoints: eps,
        ..Default::default()
    })
}

async fn setup(
    state_dir: Option<&Path>,
) -> (
    Arc<FakeKernel>,
    Pki,
    testing::RunningAgent,
    HostServiceClient<Channel>,
) {
    // With 802.1Q, as the fleet's VLAN networks need.
    let fake = Arc::new(FakeKernel::with_vlan_support());
    fake.add_veth("ens192", "sw").expect("nic");
    let pki = Pki::new();
    let agent = start_agent(fake.clone(), &pki, state_dir).await;
    let host = HostServiceClient::new(agent.channel(&pki, Some(Role::Admin)).await.expect("admin"));
    (fake, pki, agent, host)
}

/// The transaction journal's files (one per step) in a state directory.
fn journal_files(state: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(state.join("txn"))
        .map(|d| {
            d.map(|e| e.expect("entry").path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

async fn addresses(fake: &FakeKernel, ns: &str) -> Option<Vec<String>> {
    let ops = fake.netns(&Path::new("/run/netns").join(ns)).await.ok()?;
    let l = ops
        .link(&IfName::parse("n", "eth0").expect("name"))
        .await
        .ok()?;
    Some(l.addresses.iter().map(ToString::to_string).collect())
}

fn apply(eps: Vec<pb::MacvlanEndpoint>, expected: u64, confirm: u32) -> pb::ApplyRequest {
    pb::ApplyRequest {
        desired: state(eps),
        expected_generation: expected,
        confirm_timeout_seconds: confirm,
        ..Default::default()
    }
}

#[tokio::test]
async fn confirm_keeps_and_rollback_restores() {
    let (fake, _pki, _agent, mut host) = setup(None).await;
    let plan = host
        .plan(pb::PlanRequest {
            desired: state(vec![ep("b1", "10.0.100.10/24")]),
        })
        .await
        .expect("plan")
        .into_inner();
    let a = host
        .apply(apply(vec![ep("b1", "10.0.100.10/24")], plan.generation, 60))
        .await
        .expect("apply")
        .into_inner();
    assert_eq!(a.applied.len(), 1);
    assert!(a.confirm_deadline.is_some());
    assert_eq!(
        addresses(&fake, "b1").await,
        Some(vec!["10.0.100.10/24".into()])
    );
    let c = host
        .confirm(pb::ConfirmRequest {
            txn_id: a.txn_id.clone(),
        })
        .await
        .expect("confirm")
        .into_inner();
    let now = host
        .get_state(pb::GetStateRequest {})
        .await
        .expect("state")
        .into_inner();
    assert_eq!(c.generation, now.generation);
    let err = host
        .rollback(pb::RollbackRequest { txn_id: a.txn_id })
        .await
        .expect_err("confirmed");
    assert_eq!(err.code(), Code::NotFound);

    // A change (new address = replace), then rollback: the old one is back.
    let a = host
        .apply(apply(vec![ep("b1", "10.0.100.11/24")], now.generation, 60))
        .await
        .expect("apply")
        .into_inner();
    assert_eq!(
        addresses(&fake, "b1").await,
        Some(vec!["10.0.100.11/24".into()])
    );
    let r = host
        .rollback(pb::RollbackRequest { txn_id: a.txn_id })
        .await
        .expect("rollback")
        .into_inner();
    let words: Vec<String> = r.reverted.into_iter().map(|c| c.detail).collect();
    assert_eq!(
        words,
        [
            "deleted endpoint mac_net/b1",
            "re-created endpoint mac_net/b1"
        ]
    );
    assert_eq!(
        addresses(&fake, "b1").await,
        Some(vec!["10.0.100.10/24".into()])
    );
    let back = host
        .get_state(pb::GetStateRequest {})
        .await
        .expect("state")
        .into_inner();
    assert_eq!(
        back.generation, now.generation,
        "the host is exactly as before"
    );
}

#[tokio::test]
async fn an_unconfirmed_transaction_rolls_back_by_itself() {
    let (fake, _pki, _agent, mut host) = setup(None).await;
    host.apply(apply(vec![ep("b1", "10.0.100.10/24")], 0, 1))
        .await
        .expect("apply");
    assert!(addresses(&fake, "b1").await.is_some());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while addresses(&fake, "b1").await.is_some() {
        assert!(tokio::time::Instant::now() < deadline, "never rolled back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        fake.netns_names().await.expect("names").is_empty(),
        "the namespace it created went too"
    );
}

#[tokio::test]
async fn refusals_changed_host_pending_transaction_failure_half_way() {
    let (fake, _pki, _agent, mut host) = setup(None).await;
    let err = host
        .apply(apply(vec![ep("b1", "10.0.100.10/24")], 12345, 60))
        .await
        .expect_err("stale");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message()
            .starts_with("this host changed since it was planned (generation 12345, now "),
        "{}",
        err.message()
    );

    let a = host
        .apply(apply(vec![ep("b1", "10.0.100.10/24")], 0, 60))
        .await
        .expect("apply")
        .into_inner();
    let err = host
        .apply(apply(vec![ep("b2", "10.0.100.12/24")], 0, 60))
        .await
        .expect_err("pending");
    assert_eq!(
        err.message(),
        format!(
            "transaction {} is pending on this host; confirm or roll it back first",
            a.txn_id
        )
    );
    host.confirm(pb::ConfirmRequest { txn_id: a.txn_id })
        .await
        .expect("confirm");

    // b2 is created, then b3 fails (its process does not exist): b2 goes.
    let mut b3 = ep("b3", "10.0.100.13/24");
    b3.netns = Some(pb::NetnsTarget {
        target: Some(Target::Pid(4_242_424)),
    });
    let err = host
        .apply(apply(
            vec![ep("b1", "10.0.100.10/24"), ep("b2", "10.0.100.12/24"), b3],
            0,
            60,
        ))
        .await
        .expect_err("b3 fails");
    // The cause keeps its code (a missing process is NOT_FOUND), the step
    // is named in the message.
    assert_eq!(err.code(), Code::NotFound, "{}", err.message());
    assert!(
        err.message()
            .starts_with("endpoint mac_net/b3 failed: process 4242424 does not exist"),
        "{}",
        err.message()
    );
    assert!(
        addresses(&fake, "b2").await.is_none(),
        "b2 was not rolled back"
    );
    assert!(
        addresses(&fake, "b1").await.is_some(),
        "b1 (confirmed before) stays"
    );
}

#[tokio::test]
async fn a_restarted_agent_rolls_back_the_journaled_transaction() {
    let dir = tempfile::tempdir().expect("state");
    let (fake, pki, agent, mut host) = setup(Some(dir.path())).await;
    host.apply(apply(vec![ep("b1", "10.0.100.10/24")], 0, 600))
        .await
        .expect("apply");
    // One journal file for the one step, readable JSON with its format.
    let files = journal_files(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let batch: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files[0]).expect("read")).expect("json");
    assert_eq!(batch["format"], 1);
    assert_eq!(batch["steps"][0]["undo"], "delete_endpoint");
    assert_eq!(batch["steps"][0]["name"], "b1");
    assert!(addresses(&fake, "b1").await.is_some());
    drop(host);
    drop(agent);
    // The "restarted" agent finds the journal and undoes the transaction.
    let _agent2 = start_agent(fake.clone(), &pki, Some(dir.path())).await;
    assert!(
        addresses(&fake, "b1").await.is_none(),
        "not rolled back on restart"
    );
    assert_eq!(journal_files(dir.path()), Vec::<std::path::PathBuf>::new());
    _agent2.agent.context().audit.flush().await;
    let audit = std::fs::read_to_string(dir.path().join("audit.log")).expect("audit");
    assert!(audit.contains("txn-recover"), "{audit}");
}

/// New endpoints of one apply share one journal batch — one durable write
/// before the first is made — and a restart still undoes every one.
#[tokio::test]
async fn new_endpoints_share_one_journal_batch() {
    let dir = tempfile::tempdir().expect("state");
    let (fake, pki, agent, mut host) = setup(Some(dir.path())).await;
    let names = ["b1", "b2", "b3"];
    let eps = (0..3)
        .map(|i| ep(names[i], &format!("10.0.100.{}/24", 10 + i)))
        .collect();
    host.apply(apply(eps, 0, 600)).await.expect("apply");
    let files = journal_files(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let batch: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files[0]).expect("read")).expect("json");
    let steps: Vec<(&str, &str)> = batch["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["undo"].as_str().unwrap_or(""),
                s["name"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(steps, names.map(|n| ("delete_endpoint", n)), "{batch}");
    for n in names {
        assert!(addresses(&fake, n).await.is_some(), "{n} not made");
    }
    drop(host);
    drop(agent);
    let _agent2 = start_agent(fake.clone(), &pki, Some(dir.path())).await;
    for n in names {
        assert!(addresses(&fake, n).await.is_none(), "{n} not rolled back");
    }
    assert_eq!(journal_files(dir.path()), Vec::<std::path::PathBuf>::new());
}

/// Removing some of a network's endpoints (one by one) and all of them (one
/// group request) are both undone by a rollback, addresses and all.
#[tokio::test]
async fn removals_partial_and_whole_roll_back() {
    let (fake, _pki, _agent, mut host) = setup(None).await;
    let three = || {
        vec![
            ep("b1", "10.0.100.11/24"),
            ep("b2", "10.0.100.12/24"),
            ep("b3", "10.0.100.13/24"),
        ]
    };
    let a = host
        .apply(apply(three(), 0, 60))
        .await
        .expect("three")
        .into_inner();
    host.confirm(pb::ConfirmRequest { txn_id: a.txn_id })
        .await
        .expect("confirm");
    let all_there = || async {
        let mut got = Vec::new();
        for n in ["b1", "b2", "b3"] {
            got.push(addresses(&fake, n).await);
        }
        got
    };
    let before = all_there().await;
    assert!(before.iter().all(Option::is_some), "{before:?}");
    let teardown = pb::ApplyRequest {
        desired: Some(pb::DesiredState {
            networks: vec!["mac_net".into()],
            ..Default::default()
        }),
        ..apply(vec![], 0, 60)
    };
    for (what, req, left) in [
        ("partial", apply(vec![ep("b3", "10.0.100.13/24")], 0, 60), 1),
        ("whole", teardown, 0),
    ] {
        let t = host.apply(req).await.expect(what).into_inner();
        assert_eq!(t.applied.len(), 3 - left, "{what}");
        let now = all_there().await;
        assert_eq!(
            now.iter().filter(|a| a.is_some()).count(),
            left,
            "{what}: {now:?}"
        );
        host.rollback(pb::RollbackRequest { txn_id: t.txn_id })
            .await
            .expect("rollback");
        assert_eq!(all_there().await, before, "{what} not undone");
    }
}

/// With an address check, a new endpoint's address that something else on
/// the wire already answers for fails the step before it is configured:
/// the transaction is undone (b1 too) and the endpoint never existed.
#[tokio::test]
async fn an_address_in_use_on_the_wire_fails_the_apply_before_it_is_configured() {
    let (fake, _pki, _agent, mut host) = setup(None).await;
    let (rogue, _) = fake.add_veth("rogue0", "rogue1").expect("veth");
    fake.add_addr("rogue0", "10.0.100.12/24".parse().expect("net"))
        .expect("addr");
    fake.set_up(rogue, true).await.expect("up");
    let checked = |ms: u32| pb::ApplyRequest {
        address_check_ms: ms,
        ..apply(
            vec![ep("b1", "10.0.100.10/24"), ep("b2", "10.0.100.12/24")],
            0,
            60,
        )
    };
    let err = host.apply(checked(200)).await.expect_err("in use");
    assert_eq!(err.code(), Code::FailedPrecondition);
    let rogue_mac = fake
        .link(&IfName::parse("n", "rogue0").expect("name"))
        .await
        .expect("rogue")
        .mac
        .expect("mac");
    assert_eq!(
        err.message(),
        format!(
            "address check failed, nothing was changed on this host: 10.0.100.12 (for \
             mac_net/b2) is already in use on the wire, answered by {rogue_mac}; give those \
             endpoints other addresses, or free these"
        )
    );
    assert!(addresses(&fake, "b1").await.is_none(), "b1 was not undone");
    assert_eq!(
        fake.netns_names().await.expect("names"),
        Vec::<String>::new()
    );
    let err = host.apply(checked(6000)).await.expect_err("too long");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("address_check_ms"),
        "{}",
        err.message()
    );
    // Without the check the same apply goes through: the check refused it.
    let a = host
        .apply(checked(0))
        .await
        .expect("unchecked")
        .into_inner();
    assert!(addresses(&fake, "b2").await.is_some());
    host.confirm(pb::ConfirmRequest { txn_id: a.txn_id })
        .await
        .expect("confirm");

    // An endpoint replaced with its address (here: another mode) answers for
    // it itself until it is replaced: that is no conflict.
    let mut b1 = ep("b1", "10.0.100.10/24");
    b1.mode = pb::MacvlanMode::Private.into();
    let r = host
        .apply(pb::ApplyRequest {
            address_check_ms: 200,
            ..apply(vec![b1, ep("b2", "10.0.100.12/24")], 0, 60)
        })
        .await
        .expect("replace b1")
        .into_inner();
    assert_eq!(r.applied.len(), 1, "{:?}", r.applied);
    // The probe namespace is gone again.
    let mut names = fake.netns_names().await.expect("names");
    names.sort();
    assert_eq!(names, ["b1", "b2"]);
}

/// An agent killed half way through creating an endpoint: the journal
/// already holds the step's undo (written ahead), the namespace exists but
/// the endpoint never finished. The restarted agent removes the namespace.
#[tokio::test]
async fn a_create_cut_short_by_a_crash_is_undone_at_restart() {
    let dir = tempfile::tempdir().expect("state");
    let fake = Arc::new(FakeKernel::with_vlan_support());
    fake.add_veth("ens192", "sw").expect("nic");
    fake.create_netns("k1").await.expect("netns");
    std::fs::write(
        dir.path().join("txn.json"),
        r#"{"id":"txn-1-1","deadline":4102444800,"undo":[{"undo":"delete_endpoint","network":"mac_net","name":"k1","netns":"k1"}]}"#,
    )
    .expect("journal");
    let pki = Pki::new();
    let _agent = start_agent(fake.clone(), &pki, Some(dir.path())).await;
    assert_eq!(
        fake.netns_names().await.expect("names"),
        Vec::<String>::new(),
        "the half-made endpoint's namespace stayed"
    );
    assert!(!dir.path().join("txn.json").exists());
}

/// A fleet's teardown: a desired state that speaks for a network without
/// listing any of its endpoints deletes them, and a VLAN it says must be
/// absent goes after them — only when linkherd made it. Rolling back puts
/// back the VLAN first, then the endpoint on it.
#[tokio::test]
async fn teardown_deletes_endpoints_of_spoken_for_networks_then_absent_vlans() {
    let (fake, _pki, _agent, mut host) = setup(None).await;
    let vlan = pb::Vlan {
        name: "ens192.10".into(),
        parent: "ens192".into(),
        id: 10,
        ..Default::default()
    };
    let mut b1 = ep("b1", "172.16.10.10/24");
    b1.parent = "ens192.10".into();
    let a = host
        .apply(pb::ApplyRequest {
            desired: Some(pb::DesiredState {
                vlans: vec![vlan],
                endpoints: vec![b1],
                ..Default::default()
            }),
            expected_generation: 0,
            confirm_timeout_seconds: 60,
            ..Default::default()
        })
        .await
        .expect("apply")
        .into_inner();
    host.confirm(pb::ConfirmRequest { txn_id: a.txn_id })
        .await
        .expect("confirm");
    // A VLAN linkherd did not make, named as absent too: left alone.
    fake.add_veth("ens193", "sw3").expect("nic");
    let teardown = pb::DesiredState {
        networks: vec!["mac_net".into()],
        absent_vlans: vec!["ens192.10".into(), "ens193".into()],
        ..Default::default()
    };
    let plan = host
        .plan(pb::PlanRequest {
            desired: Some(teardown.clone()),
        })
        .await
        .expect("plan")
        .into_inner();
    let steps: Vec<(i32, &str, &str)> = plan
        .changes
        .iter()
        .map(|c| (c.action, c.object_kind.as_str(), c.object.as_str()))
        .collect();
    let delete = pb::ChangeAction::Delete as i32;
    assert_eq!(
        steps,
        [
            (delete, "endpoint", "mac_net/b1"),
            (delete, "vlan", "ens192.10")
        ]
    );
    let t = host
        .apply(pb::ApplyRequest {
            desired: Some(teardown),
            expected_generation: plan.generation,
            confirm_timeout_seconds: 60,
            ..Default::default()
        })
        .await
        .expect("teardown")
        .into_inner();
    let vlan_name = IfName::parse("n", "ens192.10").expect("name");
    assert!(addresses(&fake, "b1").await.is_none(), "b1 still there");
    assert!(fake.link(&vlan_name).await.is_err(), "VLAN still there");
    assert!(
        fake.link(&IfName::parse("n", "ens193").expect("name"))
            .await
            .is_ok(),
        "a link linkherd does not own was deleted"
    );
    host.rollback(pb::RollbackRequest { txn_id: t.txn_id })
        .await
        .expect("rollback");
    assert_eq!(
        addresses(&fake, "b1").await,
        Some(vec!["172.16.10.10/24".to_owned()])
    );
    let back = fake.link(&vlan_name).await.expect("VLAN back");
    assert_eq!(back.parent.as_deref(), Some("ens192"));

    // A VLAN named both wanted and absent is refused with its path.
    let err = host
        .plan(pb::PlanRequest {
            desired: Some(pb::DesiredState {
                vlans: vec![pb::Vlan {
                    name: "ens192.10".into(),
                    parent: "ens192".into(),
                    id: 10,
                    ..Default::default()
                }],
                absent_vlans: vec!["ens192.10".into()],
                ..Default::default()
            }),
        })
        .await
        .expect_err("both");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("desired.absent_vlans[0]"),
        "{}",
        err.message()
    );
}

/// The records of a batch's new endpoints are written together before the
/// first is made; when one fails half way, neither its record nor those
/// of the endpoints after it (never tried) stay behind, and the rollback
/// takes the one made before it with its record.
#[tokio::test]
async fn a_batch_cut_short_leaves_no_records_of_what_it_did_not_make() {
    let dir = tempfile::tempdir().expect("state");
    let (fake, _pki, _agent, mut host) = setup(Some(dir.path())).await;
    let a = host
        .apply(apply(vec![ep("b1", "10.0.100.10/24")], 0, 60))
        .await
        .expect("b1")
        .into_inner();
    host.confirm(pb::ConfirmRequest { txn_id: a.txn_id })
        .await
        .expect("confirm");
    let mut b3 = ep("b3", "10.0.100.13/24");
    b3.parent = "nosuch0".into();
    let eps = vec![
        ep("b1", "10.0.100.10/24"),
        ep("b2", "10.0.100.12/24"),
        b3,
        ep("b4", "10.0.100.14/24"),
    ];
    let err = host
        .apply(apply(eps, 0, 60))
        .await
        .expect_err("b3 has no parent");
    assert_eq!(err.code(), Code::NotFound, "{}", err.message());
    assert_eq!(
        err.message(),
        "endpoint mac_net/b3 failed: parent interface \"nosuch0\" not found on this host; \
         everything done before it was rolled back"
    );
    let mut records: Vec<String> = std::fs::read_dir(dir.path().join("endpoints"))
        .expect("records")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    records.sort();
    assert_eq!(records, ["mac_net+b1.json"]);
    assert!(addresses(&fake, "b1").await.is_some(), "b1 stays");
    for n in ["b2", "b3", "b4"] {
        assert!(addresses(&fake, n).await.is_none(), "{n} left behind");
    }
}
