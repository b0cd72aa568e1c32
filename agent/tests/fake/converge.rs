//! Convergence over the fake kernel: what the reconciler decides to repair,
//! report, leave alone or forget, and what a restart after a "reboot" (a
//! fresh kernel, the same state directory) makes again. Passes are run by
//! the test, one at a time, so each decision is seen; the timers and kernel
//! events that run them in an agent are exercised on the real kernel
//! (`kernel/converge.rs`).

use std::{path::Path, sync::Arc};

use linkherd_agent::{
    app::AgentOptions,
    converge::{self, Trigger, tracker::Policy},
    net::{NetOps, fake::FakeKernel},
    testing::{self, Pki, RunningAgent, audit_records, start_agent_with},
};
use linkherd_proto::{
    model::{IfName, Role},
    pb::{
        self, host_service_client::HostServiceClient,
        interface_service_client::InterfaceServiceClient,
        macvlan_service_client::MacvlanServiceClient, vlan_service_client::VlanServiceClient,
    },
};

use crate::scenarios::{create, endpoint};

fn name(s: &str) -> IfName {
    IfName::parse("name", s).expect("name")
}

/// A machine with NIC ens192 and 802.1Q.
fn machine() -> Arc<FakeKernel> {
    let fake = Arc::new(FakeKernel::with_vlan_support());
    fake.add_veth("ens192", "sw-no1").expect("nic");
    fake
}

async fn agent(fake: &Arc<FakeKernel>, pki: &Pki, dir: &Path, policy: Policy) -> RunningAgent {
    let opts = AgentOptions {
        state_dir: Some(dir.to_owned()),
        host_name: Some("no1".into()),
        reconcile: converge::Settings {
            policy,
            ..converge::Settings::default()
        },
        ..AgentOptions::default()
    };
    start_agent_with(fake.clone(), pki, opts).await
}

async fn inside(fake: &FakeKernel, ns: &str) -> Arc<dyn NetOps> {
    fake.netns(&Path::new("/run/netns").join(ns))
        .await
        .expect("netns exists")
}

/// The convergence report, as a viewer reads it, by "kind name".
async fn phases(a: &RunningAgent, pki: &Pki) -> Vec<(String, String, String)> {
    let ch = a.channel(pki, Some(Role::Viewer)).await.expect("viewer");
    let r = HostServiceClient::new(ch)
        .get_convergence(pb::GetConvergenceRequest {})
        .await
        .expect("convergence")
        .into_inner();
    r.objects
        .into_iter()
        .map(|o| {
            let phase = pb::ConvergencePhase::try_from(o.phase)
                .expect("phase")
                .as_str_name()
                .trim_start_matches("CONVERGENCE_PHASE_")
                .to_lowercase();
            (format!("{} {}", o.kind, o.name), phase, o.detail)
        })
        .collect()
}

fn phase_of<'a>(all: &'a [(String, String, String)], object: &str) -> (&'a str, &'a str) {
    let found = all.iter().find(|(o, ..)| o == object);
    let (_, p, d) = found.unwrap_or_else(|| panic!("{object} not in {all:?}"));
    (p, d)
}

async fn pass(a: &RunningAgent) -> converge::Tally {
    a.agent
        .context()
        .converge
        .pass(Trigger::Event)
        .await
        .expect("pass")
}

/// b1 on the auto VLAN ens192.10 in a namespace the agent makes, VLAN
/// ens192.20 asked for, host access on ens192, ens192 kept promiscuous.
async fn set_up_no1(a: &RunningAgent, pki: &Pki) {
    let ch = a.channel(pki, Some(Role::Admin)).await.expect("admin");
    MacvlanServiceClient::new(ch.clone())
        .create(create(
            endpoint("mac_net10", "b1", "ens192.10", "172.16.10.11/24"),
            true,
        ))
        .await
        .expect("b1");
    VlanServiceClient::new(ch.clone())
        .create(pb::CreateVlanRequest {
            parent: "ens192".into(),
            id: 20,
            ..Default::default()
        })
        .await
        .expect("vlan 20");
    MacvlanServiceClient::new(ch.clone())
        .create_host_access(pb::CreateHostAccessRequest {
            host_access: Some(pb::HostAccess {
                network: "mac_net30".into(),
                parent: "ens192".into(),
                addresses: vec!["172.16.30.250/24".into()],
                ..Default::default()
            }),
        })
        .await
        .expect("host access");
    InterfaceServiceClient::new(ch)
        .set_promiscuous(pb::SetPromiscuousRequest {
            name: "ens192".into(),
            enabled: true,
            lease_seconds: 0,
        })
        .await
        .expect("promisc");
}

/// no1 set up (see [`set_up_no1`]) under `policy`, with its state directory.
async fn no1(policy: Policy) -> (Pki, tempfile::TempDir, Arc<FakeKernel>, RunningAgent) {
    let (pki, dir) = (Pki::new(), tempfile::tempdir().expect("dir"));
    let fake = machine();
    let a = agent(&fake, &pki, dir.path(), policy).await;
    set_up_no1(&a, &pki).await;
    (pki, dir, fake, a)
}

#[tokio::test]
async fn after_a_reboot_the_agent_makes_everything_again_before_it_answers() {
    let (pki, dir) = (Pki::new(), tempfile::tempdir().expect("dir"));
    let before = machine();
    let a = agent(&before, &pki, dir.path(), Policy::Repair).await;
    set_up_no1(&a, &pki).await;
    let b1 = inside(&before, "b1")
        .await
        .link(&name("eth0"))
        .await
        .expect("b1");
    drop(a);

    // The reboot: a kernel with only the NIC, the same state directory.
    let after = machine();
    let a = agent(&after, &pki, dir.path(), Policy::Repair).await;
    let vlan10 = after
        .link(&name("ens192.10"))
        .await
        .expect("auto VLAN back");
    assert!(vlan10.admin_up);
    after.link(&name("ens192.20")).await.expect("VLAN 20 back");
    let again = inside(&after, "b1")
        .await
        .link(&name("eth0"))
        .await
        .expect("b1 back");
    assert_eq!(again.mac, b1.mac, "the same MAC");
    assert_eq!(again.addresses, b1.addresses);
    assert!(again.admin_up);
    let b1_ns = after
        .namespace(&Path::new("/run/netns").join("b1"))
        .expect("ns");
    assert!(b1_ns.announces("eth0"), "announced when made again");
    let access = after
        .link(&name("lh-mac_net30"))
        .await
        .expect("host access back");
    assert_eq!(access.addresses[0].to_string(), "172.16.30.250/24");
    assert!(after.link(&name("ens192")).await.expect("nic").promiscuous);

    let all = phases(&a, &pki).await;
    for object in [
        "endpoint mac_net10/b1",
        "vlan ens192.10",
        "vlan ens192.20",
        "host-access mac_net30",
        "promisc ens192",
    ] {
        assert_eq!(phase_of(&all, object).0, "in_sync", "{object}: {all:?}");
    }
    let restored = audit_records(dir.path(), "restore", 4).await;
    let targets: Vec<&str> = restored
        .iter()
        .filter_map(|r| r["target"].as_str())
        .collect();
    for t in [
        "endpoint mac_net10/b1",
        "vlan ens192.20",
        "host-access mac_net30",
        "promisc ens192",
    ] {
        assert!(targets.contains(&t), "{t} not restored in {targets:?}");
    }
    assert!(restored.iter().all(|r| r["result"] == "ok"), "{restored:?}");
}

#[tokio::test]
async fn report_mode_lists_each_drift_and_changes_nothing() {
    let (pki, _dir, fake, a) = no1(Policy::Report).await;
    let ns = inside(&fake, "b1").await;
    let eth0 = ns.link(&name("eth0")).await.expect("b1");
    ns.set_up(eth0.index, false).await.expect("down");
    fake.del_link_named("ens192.20").expect("vlan 20 gone");
    let nic = fake.link(&name("ens192")).await.expect("nic");
    fake.set_promisc(nic.index, false)
        .await
        .expect("promisc off");

    let t = pass(&a).await;
    assert_eq!((t.drifted, t.repaired), (3, 0));
    let all = phases(&a, &pki).await;
    assert_eq!(phase_of(&all, "endpoint mac_net10/b1"), ("drifted", "down"));
    assert_eq!(phase_of(&all, "vlan ens192.20"), ("drifted", "missing"));
    assert_eq!(
        phase_of(&all, "promisc ens192"),
        ("drifted", "promiscuous mode is off")
    );
    assert_eq!(phase_of(&all, "host-access mac_net30").0, "in_sync");
    assert!(!ns.link(&name("eth0")).await.expect("b1").admin_up);
    assert!(fake.link(&name("ens192.20")).await.is_err());
    assert!(!fake.link(&name("ens192")).await.expect("nic").promiscuous);
}

#[tokio::test]
async fn drift_is_repaired_in_place_or_by_making_the_link_again() {
    let (_pki, dir, fake, a) = no1(Policy::Repair).await;
    let ns = inside(&fake, "b1").await;
    let eth0 = ns.link(&name("eth0")).await.expect("b1");
    ns.set_up(eth0.index, false).await.expect("down");
    ns.set_mtu(eth0.index, 1400).await.expect("mtu");
    let access = fake.link(&name("lh-mac_net30")).await.expect("access");
    fake.del_link(access.index).await.expect("access gone");
    let t = pass(&a).await;
    assert_eq!((t.drifted, t.repaired, t.failed), (2, 2, 0));
    let fixed = ns.link(&name("eth0")).await.expect("b1");
    assert_eq!(fixed.index, eth0.index, "mended in place, not made again");
    assert!(fixed.admin_up);
    fake.link(&name("lh-mac_net30"))
        .await
        .expect("host access made again");

    // Deleted by hand: made again, once the spacing between two repairs
    // of one object (about a second after the first) has passed.
    ns.del_link(eth0.index).await.expect("gone");
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let t = pass(&a).await;
    assert_eq!(t.repaired, 1);
    let made = ns.link(&name("eth0")).await.expect("made again");
    assert_eq!(made.mac, eth0.mac);
    let repairs = audit_records(dir.path(), "repair", 3).await;
    assert!(
        repairs
            .iter()
            .any(|r| r["target"] == "endpoint mac_net10/b1" && r["result"] == "ok"),
        "{repairs:?}"
    );
}

#[tokio::test]
async fn a_foreign_link_holding_the_name_is_left_alone_and_the_object_waits() {
    let (pki, _dir, fake, a) = no1(Policy::Repair).await;
    let ns = inside(&fake, "b1").await;
    let eth0 = ns.link(&name("eth0")).await.expect("b1");
    ns.del_link(eth0.index).await.expect("gone");
    // Someone else's link takes the name (a veth, no linkherd mark).
    let b1 = fake
        .namespace(&Path::new("/run/netns").join("b1"))
        .expect("ns");
    b1.add_veth("eth0", "peer9").expect("foreign eth0");
    let foreign = ns.link(&name("eth0")).await.expect("foreign");
    let t = pass(&a).await;
    assert_eq!((t.repaired, t.failed), (0, 0));
    let all = phases(&a, &pki).await;
    let (phase, detail) = phase_of(&all, "endpoint mac_net10/b1");
    assert_eq!(phase, "waiting");
    assert!(
        detail.contains("taken by a link linkherd did not make"),
        "{detail}"
    );
    let still = ns.link(&name("eth0")).await.expect("foreign stays");
    assert_eq!((still.index, still.kind), (foreign.index, foreign.kind));
}

#[tokio::test]
async fn objects_of_a_pending_transaction_are_left_to_it() {
    let (pki, dir) = (Pki::new(), tempfile::tempdir().expect("dir"));
    let fake = machine();
    let a = agent(&fake, &pki, dir.path(), Policy::Repair).await;
    let ch = a.channel(&pki, Some(Role::Admin)).await.expect("admin");
    let mut host = HostServiceClient::new(ch);
    let generation = host
        .get_state(pb::GetStateRequest {})
        .await
        .expect("state")
        .into_inner()
        .generation;
    let applied = host
        .apply(pb::ApplyRequest {
            desired: Some(pb::DesiredState {
                endpoints: vec![endpoint("mac_net", "b2", "ens192", "10.0.0.2/24")],
                ..Default::default()
            }),
            expected_generation: generation,
            confirm_timeout_seconds: 600,
            address_check_ms: 0,
        })
        .await
        .expect("apply")
        .into_inner();
    let ns = inside(&fake, "b2").await;
    let eth0 = ns.link(&name("eth0")).await.expect("made");
    ns.del_link(eth0.index).await.expect("deleted by hand");
    assert_eq!(pass(&a).await.repaired, 0);
    let all = phases(&a, &pki).await;
    assert_eq!(phase_of(&all, "endpoint mac_net/b2").0, "pending");
    assert!(
        ns.link(&name("eth0")).await.is_err(),
        "left to the transaction"
    );

    host.confirm(pb::ConfirmRequest {
        txn_id: applied.txn_id,
    })
    .await
    .expect("confirm");
    assert_eq!(pass(&a).await.repaired, 1);
    ns.link(&name("eth0"))
        .await
        .expect("repaired once confirmed");
}

#[tokio::test]
async fn an_endpoint_whose_process_is_gone_is_forgotten_and_said_so() {
    let (pki, dir) = (Pki::new(), tempfile::tempdir().expect("dir"));
    let fake = machine();
    let proc_ns = Path::new("/proc/4242/ns/net");
    fake.add_process_netns(4242);
    let a = agent(&fake, &pki, dir.path(), Policy::Repair).await;
    let ch = a.channel(&pki, Some(Role::Admin)).await.expect("admin");
    let mut e = endpoint("mac_net", "c1", "ens192", "10.0.0.3/24");
    e.netns = Some(pb::NetnsTarget {
        target: Some(pb::netns_target::Target::Pid(4242)),
    });
    MacvlanServiceClient::new(ch)
        .create(create(e, false))
        .await
        .expect("c1");
    fake.remove_netns_at(proc_ns).expect("the process exits");
    let t = pass(&a).await;
    assert_eq!(t.repaired, 1, "the record forgotten");
    let all = phases(&a, &pki).await;
    let (phase, detail) = phase_of(&all, "endpoint mac_net/c1");
    assert_eq!(phase, "unrecoverable");
    assert!(detail.contains("pid 4242 is gone"), "{detail}");
    assert!(testing::listed_endpoints(&a, &pki).await.is_empty());
    let forgot = audit_records(dir.path(), "forget", 1).await;
    assert_eq!(forgot[0]["target"], "endpoint mac_net/c1");
}

#[tokio::test]
async fn a_second_undo_right_after_a_repair_waits_its_turn() {
    let (pki, _dir, fake, a) = no1(Policy::Repair).await;
    let ns = inside(&fake, "b1").await;
    for _ in 0..2 {
        let eth0 = ns.link(&name("eth0")).await.expect("b1");
        ns.del_link(eth0.index).await.expect("gone");
        pass(&a).await;
    }
    let all = phases(&a, &pki).await;
    let (phase, _) = phase_of(&all, "endpoint mac_net10/b1");
    assert_eq!(phase, "repairing", "{all:?}");
    assert!(
        ns.link(&name("eth0")).await.is_err(),
        "not before its next try"
    );
}

#[tokio::test]
async fn watch_convergence_streams_the_state_then_each_change() {
    let (pki, _dir, fake, a) = no1(Policy::Repair).await;
    pass(&a).await;
    let ch = a.channel(&pki, Some(Role::Viewer)).await.expect("viewer");
    let mut events = HostServiceClient::new(ch)
        .watch_convergence(pb::WatchConvergenceRequest {})
        .await
        .expect("watch")
        .into_inner();
    let mut first = Vec::new();
    loop {
        let e = events.message().await.expect("event").expect("open");
        if e.synced {
            break;
        }
        first.push(e.object.expect("object"));
    }
    assert_eq!(first.len(), 5, "{first:?}");
    assert!(
        first
            .iter()
            .all(|o| o.phase == pb::ConvergencePhase::InSync as i32)
    );
    let ns = inside(&fake, "b1").await;
    let eth0 = ns.link(&name("eth0")).await.expect("b1");
    ns.del_link(eth0.index).await.expect("gone");
    pass(&a).await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let e = tokio::time::timeout(std::time::Duration::from_secs(5), events.message())
            .await
            .expect("an event in time")
            .expect("event")
            .expect("open");
        let o = e.object.expect("object");
        seen.push((o.kind, o.name, o.phase, o.detail));
    }
    let repairing = pb::ConvergencePhase::Repairing as i32;
    let in_sync = pb::ConvergencePhase::InSync as i32;
    assert_eq!(
        seen,
        [
            (
                "endpoint".to_owned(),
                "mac_net10/b1".to_owned(),
                repairing,
                "missing (eth0 in netns b1)".to_owned()
            ),
            (
                "endpoint".to_owned(),
                "mac_net10/b1".to_owned(),
                in_sync,
                "repaired: missing (eth0 in netns b1)".to_owned()
            ),
        ]
    );
}

#[tokio::test]
async fn a_vlan_made_for_a_network_that_nothing_uses_is_removed_and_audited() {
    let (_pki, dir, fake, a) = no1(Policy::Repair).await;
    // A crash between an endpoint's delete and its parent's: the record
    // is gone, the VLAN made for it is not (here: made by hand with this
    // agent's mark, as the agent would have).
    let mark = {
        let vlan = fake.link(&name("ens192.10")).await.expect("auto vlan");
        vlan.alias.expect("marked")
    };
    let nic = fake.link(&name("ens192")).await.expect("nic");
    let vlan = |id: u32, alias: String| linkherd_agent::net::NewLink {
        name: name(&format!("ens192.{id}")),
        kind: linkherd_agent::net::NewLinkKind::Vlan {
            parent_index: nic.index,
            id: linkherd_proto::model::VlanId::new("id", id).expect("id"),
            protocol: linkherd_proto::model::VlanProtocol::Ieee8021Q,
        },
        mtu: None,
        mac: None,
        alias,
        group: 0,
        target: None,
    };
    let leftover = vlan(30, mark.replace("mac_net10", "mac_net30"));
    fake.add_link(&leftover).await.expect("leftover");
    // And someone else's VLAN, unmarked: never touched.
    fake.add_link(&vlan(40, String::new()))
        .await
        .expect("foreign");
    let t = pass(&a).await;
    assert_eq!((t.drifted, t.repaired), (1, 1));
    assert!(
        fake.link(&name("ens192.30")).await.is_err(),
        "the leftover went"
    );
    fake.link(&name("ens192.40"))
        .await
        .expect("the foreign VLAN stays");
    fake.link(&name("ens192.10"))
        .await
        .expect("the used one stays");
    let removed = audit_records(dir.path(), "remove", 1).await;
    assert_eq!(removed[0]["target"], "vlan ens192.30");
    assert_eq!(pass(&a).await.drifted, 0);
}

/// Network mac_net10 in the catalog (on ens192.10, block 172.16.10.32/28)
/// and container c0ffee attached in process 4242's namespace.
async fn attached(a: &RunningAgent, pki: &Pki, fake: &FakeKernel) {
    fake.add_process_netns(4242);
    let ch = a.channel(pki, Some(Role::Admin)).await.expect("admin");
    let net = pb::CatalogNetwork {
        name: "mac_net10".into(),
        parent: "ens192.10".into(),
        mode: pb::MacvlanMode::Bridge.into(),
        v4: Some(pb::CatalogPool {
            subnet: "172.16.10.0/24".into(),
            gateway: "172.16.10.1".into(),
            blocks: vec!["172.16.10.32/28".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    testing::apply_confirmed(
        &mut HostServiceClient::new(ch.clone()),
        pb::DesiredState {
            networks: vec!["mac_net10".into()],
            catalog: vec![net],
            ..Default::default()
        },
    )
    .await;
    pb::attachment_service_client::AttachmentServiceClient::new(ch)
        .attach(pb::AttachRequest {
            network: "mac_net10".into(),
            container_id: "c0ffee".into(),
            netns: "/proc/4242/ns/net".into(),
            ifname: "eth0".into(),
            ..Default::default()
        })
        .await
        .expect("attach");
}

#[tokio::test]
async fn a_containers_link_deleted_is_made_again_and_a_gone_container_released_after_its_grace() {
    let (pki, dir) = (Pki::new(), tempfile::tempdir().expect("dir"));
    let fake = machine();
    let opts = AgentOptions {
        state_dir: Some(dir.path().to_owned()),
        reconcile: converge::Settings {
            stale_grace: std::time::Duration::from_millis(300),
            ..converge::Settings::default()
        },
        ..AgentOptions::default()
    };
    let a = start_agent_with(fake.clone(), &pki, opts).await;
    attached(&a, &pki, &fake).await;
    let inside = fake.namespace(Path::new("/proc/4242/ns/net")).expect("ns");
    let eth0 = inside.link(&name("eth0")).await.expect("attached");
    inside
        .del_link(eth0.index)
        .await
        .expect("deleted from the host side");
    let t = pass(&a).await;
    assert_eq!(t.repaired, 1);
    let again = inside.link(&name("eth0")).await.expect("made again");
    assert_eq!((again.mac, &again.addresses), (eth0.mac, &eth0.addresses));

    fake.remove_netns_at(Path::new("/proc/4242/ns/net"))
        .expect("the container goes");
    assert_eq!(pass(&a).await.repaired, 0, "not before its grace");
    let all = phases(&a, &pki).await;
    let (phase, detail) = phase_of(&all, "attachment mac_net10/c0ffee/eth0");
    assert_eq!(phase, "waiting");
    assert!(
        detail.starts_with("stale: its namespace /proc/4242/ns/net is gone; released in"),
        "{detail}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(pass(&a).await.repaired, 1);
    let released = audit_records(dir.path(), "release", 1).await;
    assert_eq!(released[0]["target"], "attachment mac_net10/c0ffee/eth0");
    let ch = a.channel(&pki, Some(Role::Viewer)).await.expect("viewer");
    let left = pb::attachment_service_client::AttachmentServiceClient::new(ch)
        .list(pb::ListAttachmentsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(left.attachments.is_empty(), "{left:?}");
}
