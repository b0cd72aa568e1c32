//! VLAN, endpoint and host-access rules over the full gRPC stack against the
//! fake kernel: each rule's error, ownership, restarts and agents sharing a
//! machine, the plan and the generation. The lifecycle both kernels share
//! is `../scenarios`, run here by `scenario_run`.

use linkherd_agent::testing;

use std::{path::Path, sync::Arc};

use linkherd_agent::net::{NetOps, NewLink, NewLinkKind, fake::FakeKernel};
use linkherd_agent::testing::{Pki, start_agent};

use crate::scenarios::{create, endpoint, named};
use linkherd_proto::{
    field_violations,
    model::{IfName, LinkKind, MacvlanMode, Owner, Role},
    pb::{
        self, macvlan_service_client::MacvlanServiceClient, netns_target::Target,
        vlan_service_client::VlanServiceClient,
    },
};
use tonic::{Code, transport::Channel};

fn name(s: &str) -> IfName {
    IfName::parse("name", s).expect("name")
}

/// A fake machine with NIC ens192 (and 802.1Q when `vlan`), an agent on
/// it, and an admin's channel; the scenario runs use it too.
pub(crate) struct Fixture {
    pub(crate) fake: Arc<FakeKernel>,
    pub(crate) agent: testing::RunningAgent,
    pub(crate) pki: Pki,
    pub(crate) admin: Channel,
    vlan: VlanServiceClient<Channel>,
    mv: MacvlanServiceClient<Channel>,
}

pub(crate) async fn fixture(vlan: bool) -> Fixture {
    let fake = Arc::new(if vlan {
        FakeKernel::with_vlan_support()
    } else {
        FakeKernel::new()
    });
    fake.add_veth("ens192", "sw-no1").expect("nic");
    let pki = Pki::new();
    let agent = start_agent(fake.clone(), &pki, None).await;
    let admin = agent
        .channel(&pki, Some(Role::Admin))
        .await
        .expect("connect");
    Fixture {
        fake,
        agent,
        pki,
        vlan: VlanServiceClient::new(admin.clone()),
        mv: MacvlanServiceClient::new(admin.clone()),
        admin,
    }
}

async fn inside(fake: &FakeKernel, ns: &str) -> Arc<dyn NetOps> {
    fake.netns(&Path::new("/run/netns").join(ns))
        .await
        .expect("netns exists")
}

#[tokio::test]
async fn vlan_create_is_idempotent_and_conflicts_say_how() {
    let mut f = fixture(true).await;
    let req = |id, name: &str| pb::CreateVlanRequest {
        parent: "ens192".into(),
        id,
        name: name.into(),
        ..Default::default()
    };
    let r = f
        .vlan
        .create(req(10, ""))
        .await
        .expect("create")
        .into_inner();
    assert_eq!(r.outcome(), pb::Outcome::Created);
    let v = r.vlan.expect("vlan");
    assert_eq!(
        (v.name.as_str(), v.id, v.owned, v.reorder_header),
        ("ens192.10", 10, true, true)
    );
    let link = f.fake.link(&name("ens192.10")).await.expect("in kernel");
    assert!(link.admin_up);
    assert_eq!(
        link.alias.as_deref().and_then(Owner::parse),
        Some(Owner::Vlan)
    );

    let r = f
        .vlan
        .create(req(10, ""))
        .await
        .expect("again")
        .into_inner();
    assert_eq!(r.outcome(), pb::Outcome::Unchanged);

    let err = f
        .vlan
        .create(req(20, "ens192.10"))
        .await
        .expect_err("other id");
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(
        err.message(),
        "interface ens192.10 already exists (VLAN 802.1Q 10 on ens192); it is not VLAN 802.1Q 20 on ens192"
    );
    let err = f
        .vlan
        .create(req(10, "uplink.10"))
        .await
        .expect_err("same id");
    assert_eq!(
        err.message(),
        "VLAN 10 already exists on ens192 as ens192.10; use that name or delete it first"
    );

    let err = f
        .vlan
        .create(pb::CreateVlanRequest {
            parent: "ens999".into(),
            id: 10,
            ..Default::default()
        })
        .await
        .expect_err("no parent");
    assert_eq!(
        (err.code(), err.message()),
        (
            Code::NotFound,
            "parent interface \"ens999\" not found on this host"
        )
    );
    let err = f
        .vlan
        .create(pb::CreateVlanRequest {
            parent: "lo".into(),
            id: 10,
            ..Default::default()
        })
        .await
        .expect_err("lo");
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = f
        .vlan
        .create(pb::CreateVlanRequest {
            parent: "enp0s31f6abcdef".into(),
            id: 4094,
            ..Default::default()
        })
        .await
        .expect_err("long");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("--name enp0s31f6a.4094"),
        "{}",
        err.message()
    );
    let err = f.vlan.create(req(4095, "")).await.expect_err("id");
    assert_eq!(field_violations(&err)[0].0, "id");

    let list = f
        .vlan
        .list(pb::ListVlansRequest {})
        .await
        .expect("list")
        .into_inner();
    assert_eq!(list.vlans.len(), 1);
}

#[tokio::test]
async fn foreign_vlans_are_deleted_only_when_forced() {
    let mut f = fixture(true).await;
    let nic = f.fake.link(&name("ens192")).await.expect("nic");
    f.fake
        .add_link(&NewLink {
            name: name("ens192.30"),
            kind: NewLinkKind::Vlan {
                parent_index: nic.index,
                id: linkherd_proto::model::VlanId::new("id", 30).expect("id"),
                protocol: linkherd_proto::model::VlanProtocol::Ieee8021Q,
            },
            mtu: None,
            mac: None,
            alias: String::new(),
            group: 0,
            target: None,
        })
        .await
        .expect("foreign vlan");
    let list = f
        .vlan
        .list(pb::ListVlansRequest {})
        .await
        .expect("list")
        .into_inner();
    assert!(!list.vlans[0].owned);
    let err = f
        .vlan
        .delete(pb::DeleteVlanRequest {
            name: "ens192.30".into(),
            force: false,
        })
        .await
        .expect_err("not ours");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        err.message(),
        "ens192.30 was not created by linkherd; pass --force to delete it anyway"
    );
    assert!(f.fake.link(&name("ens192.30")).await.is_ok(), "still there");
    let r = f
        .vlan
        .delete(pb::DeleteVlanRequest {
            name: "ens192.30".into(),
            force: true,
        })
        .await
        .expect("forced")
        .into_inner();
    assert_eq!(r.outcome(), pb::Outcome::Deleted);
    assert!(f.fake.link(&name("ens192.30")).await.is_err());
    let err = f
        .vlan
        .delete(pb::DeleteVlanRequest {
            name: "ens192".into(),
            force: true,
        })
        .await
        .expect_err("not a vlan");
    assert_eq!(err.message(), "ens192 is a veth, not a VLAN");
}

#[tokio::test]
async fn namespaces_must_exist_unless_created_and_names_inside_may_clash() {
    let mut f = fixture(false).await;
    let err =
        f.mv.create(create(
            endpoint("n", "b1", "ens192", "10.0.100.100/24"),
            false,
        ))
        .await
        .expect_err("no netns");
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(
        err.message(),
        "network namespace b1 does not exist; create it, or pass --create-netns"
    );

    let mut by_pid = endpoint("n", "c1", "ens192", "10.0.100.101/24");
    by_pid.netns = Some(pb::NetnsTarget {
        target: Some(Target::Pid(4_000_000)),
    });
    let err =
        f.mv.create(create(by_pid.clone(), false))
            .await
            .expect_err("no pid");
    assert_eq!(
        err.message(),
        "process 4000000 does not exist (no /proc/4000000/ns/net)"
    );
    // A container's namespace, found by its pid; eth0 also exists on the
    // host (ens192's peer is not called eth0 here, so add one).
    let container = f.fake.add_process_netns(4_000_000);
    f.fake.add_veth("eth0", "eth0-peer").expect("host eth0");
    let r =
        f.mv.create(create(by_pid, false))
            .await
            .expect("pid ns")
            .into_inner();
    assert_eq!(r.outcome(), pb::Outcome::Created);
    assert!(container.link(&name("eth0")).await.is_ok());
    assert!(
        f.fake.link(&name("eth0")).await.expect("host eth0").kind == LinkKind::Veth,
        "host eth0 untouched"
    );

    // A name already taken inside the namespace by something else.
    let other = f.fake.add_process_netns(4_000_001);
    other.add_veth("eth0", "x").expect("veth");
    let mut clash = endpoint("n", "c2", "ens192", "10.0.100.102/24");
    clash.netns = Some(pb::NetnsTarget {
        target: Some(Target::Pid(4_000_001)),
    });
    let err = f.mv.create(create(clash, false)).await.expect_err("clash");
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(
        err.message(),
        "interface eth0 already exists in netns of pid 4000001 (a veth) and is not endpoint n/c2; choose another --ifname"
    );
}

#[tokio::test]
async fn parents_that_cannot_carry_a_macvlan_are_explained() {
    let mut f = fixture(false).await;
    f.mv.create(create(
        endpoint("n", "a1", "ens192", "10.0.100.100/24"),
        true,
    ))
    .await
    .expect("a1");
    let mut pt = endpoint("n", "a2", "ens192", "10.0.100.101/24");
    pt.mode = pb::MacvlanMode::Passthru.into();
    let err = f.mv.create(create(pt, true)).await.expect_err("passthru");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        err.message(),
        "passthru takes the whole parent, and ens192 already has macvlans: n/a1"
    );
    assert!(
        !f.fake
            .netns_names()
            .await
            .expect("names")
            .contains(&"a2".to_owned()),
        "netns a2 rolled back"
    );

    f.fake.add_bridge("br0").expect("bridge");
    f.fake.add_veth("eth1", "eth1-peer").expect("veth");
    f.fake.set_master("eth1", "br0").expect("port");
    let err =
        f.mv.create(create(endpoint("n", "a3", "eth1", "10.0.100.103/24"), true))
            .await
            .expect_err("bridge port");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().starts_with("parent eth1 is a port of br0"),
        "{}",
        err.message()
    );

    let mut big = endpoint("n", "a4", "ens192", "10.0.100.104/24");
    big.mtu = 9000;
    let err = f.mv.create(create(big, true)).await.expect_err("mtu");
    assert_eq!(field_violations(&err)[0].0, "endpoint.mtu");
    assert_eq!(
        err.message(),
        "invalid endpoint.mtu \"9000\": is above the MTU of parent ens192 (1500); use at most 1500"
    );
}

#[tokio::test]
async fn a_whole_network_is_deleted_in_one_group_request() {
    let mut f = fixture(false).await;
    f.fake.create_netns("multi").await.expect("ns");
    for (i, ifname) in ["eth0", "eth1", "eth2"].iter().enumerate() {
        let mut e = endpoint(
            "bulk",
            &format!("e{i}"),
            "ens192",
            &format!("10.0.100.{}/24", 10 + i),
        );
        e.netns = named("multi");
        e.ifname = (*ifname).into();
        e.gateway.clear();
        f.mv.create(create(e, false)).await.expect("create");
    }
    let ns = inside(&f.fake, "multi").await;
    let groups: Vec<u32> = ns
        .links()
        .await
        .expect("links")
        .iter()
        .filter(|l| l.kind == LinkKind::Macvlan)
        .map(|l| l.group)
        .collect();
    assert_eq!(groups.len(), 3);
    assert!(
        groups
            .iter()
            .all(|g| *g == linkherd_agent::host::group_of("bulk"))
    );
    let r =
        f.mv.delete(pb::DeleteMacvlanRequest {
            network: "bulk".into(),
            ..Default::default()
        })
        .await
        .expect("delete network")
        .into_inner();
    assert_eq!(r.removed.len(), 3);
    let left: Vec<String> = ns
        .links()
        .await
        .expect("links")
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(
        left,
        ["lo"],
        "the namespace was not created by linkherd, so it stays"
    );
}

/// Issue 25: the records are the truth. A new agent without them adopts
/// nothing on a read (and a tenant's forged mark can't make it), and takes
/// back what its marks name only when started with `--adopt`: valid names
/// only, only in namespaces it noted it made (a runtime's never), each
/// audited.
#[tokio::test]
async fn a_lost_state_is_taken_back_only_by_adopt() {
    let fake = Arc::new(FakeKernel::new());
    fake.add_veth("ens192", "sw").expect("nic");
    let pki = Pki::new();
    let run = tempfile::tempdir().expect("run dir");
    let id = {
        let opts = linkherd_agent::app::AgentOptions {
            run_dir: Some(run.path().to_owned()),
            ..Default::default()
        };
        let agent = testing::start_agent_with(fake.clone(), &pki, opts).await;
        let mut mv =
            MacvlanServiceClient::new(agent.channel(&pki, Some(Role::Admin)).await.expect("ch"));
        mv.create(create(
            endpoint("mac_net", "node_1", "ens192", "10.0.100.100/24"),
            true,
        ))
        .await
        .expect("create");
        agent.agent.context().host.agent().id().to_owned()
    };
    // Root in that namespace forges marks: a name with an escape sequence,
    // and one far over the name rules.
    let ns = inside(&fake, "node_1").await;
    let eth0 = ns.link(&name("eth0")).await.expect("eth0");
    for (ifname, net) in [("fg1", "ghost\u{1b}[2J"), ("fg2", &"~".repeat(100) as &str)] {
        ns.add_link(&NewLink {
            name: name(ifname),
            kind: NewLinkKind::Macvlan {
                parent_index: eth0.index,
                mode: MacvlanMode::Bridge,
                source_macs: vec![],
            },
            mtu: None,
            mac: None,
            alias: format!("linkherd:v1 ep net={net} name=x agent={id}"),
            group: 0,
            target: None,
        })
        .await
        .expect("forged");
    }

    // A runtime's namespace (podman's are under /run/netns too) whose root
    // forged a valid mark: never looked into.
    fake.create_netns("podman-1").await.expect("netns");
    let pod = inside(&fake, "podman-1").await;
    let nic = fake.link(&name("ens192")).await.expect("nic");
    fake.add_link(&NewLink {
        name: name("eth0"),
        kind: NewLinkKind::Macvlan {
            parent_index: nic.index,
            mode: MacvlanMode::Bridge,
            source_macs: vec![],
        },
        mtu: None,
        mac: None,
        alias: format!("linkherd:v1 ep net=mac_net name=ghost agent={id}"),
        group: 0,
        target: Some(Path::new("/run/netns/podman-1").to_owned()),
    })
    .await
    .expect("forged in a runtime's namespace");
    assert!(pod.link(&name("eth0")).await.is_ok());

    // Without its records, a read adopts nothing and a delete finds nothing.
    let agent = start_agent(fake.clone(), &pki, None).await;
    let mut mv =
        MacvlanServiceClient::new(agent.channel(&pki, Some(Role::Admin)).await.expect("ch"));
    let list = mv
        .list(pb::ListMacvlansRequest {})
        .await
        .expect("list")
        .into_inner();
    assert!(list.endpoints.is_empty(), "{:?}", list.endpoints);
    let err = mv
        .delete(pb::DeleteMacvlanRequest {
            netns: named("node_1"),
            ifname: "eth0".into(),
            ..Default::default()
        })
        .await
        .expect_err("a mark is no record");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().starts_with(
            "eth0 in netns node_1 (a bridge macvlan) carries this agent's mark but is not in its records"
        ),
        "{}",
        err.message()
    );
    drop((mv, agent));

    // --adopt takes back the valid one, refuses the forged ones, audits all.
    let state = tempfile::tempdir().expect("state");
    let doc = serde_json::json!({"format": 1, "id": id, "adopt_unnamed": false});
    std::fs::write(state.path().join("agent.json"), doc.to_string()).expect("keep the id");
    let agent = testing::start_adopting(fake.clone(), &pki, (state.path(), run.path())).await;
    let mut mv =
        MacvlanServiceClient::new(agent.channel(&pki, Some(Role::Admin)).await.expect("ch"));
    let listed = testing::listed_endpoints(&agent, &pki).await;
    assert_eq!(listed, [("mac_net".to_owned(), "node_1".to_owned())]);
    agent.agent.context().audit.flush().await;
    let audit = std::fs::read_to_string(state.path().join("audit.log")).expect("audit");
    let adopt: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .filter(|l: &serde_json::Value| l["action"] == "adopt")
        .collect();
    assert_eq!(adopt.len(), 3, "{adopt:?}");
    assert_eq!(
        adopt[0]["target"],
        "endpoint mac_net/node_1 (eth0 in netns node_1)"
    );
    assert_eq!(adopt[0]["result"], "ok");
    assert!(
        adopt[1..].iter().all(|l| l["result"] == "refused"),
        "{adopt:?}"
    );
    let refused: Vec<&str> = adopt[1..]
        .iter()
        .filter_map(|l| l["target"].as_str())
        .collect();
    assert!(
        refused.iter().any(|t| t.contains(r#"ghost\\u{1b}[2J"#))
            && !refused.iter().any(|t| t.contains('\u{1b}')),
        "the forged name is not shown escaped: {refused:?}"
    );
    mv.delete(pb::DeleteMacvlanRequest {
        network: "mac_net".into(),
        name: "node_1".into(),
        ..Default::default()
    })
    .await
    .expect("delete");
    assert!(ns.link(&name("eth0")).await.is_err());
}

#[tokio::test]
async fn agents_sharing_a_machine_keep_to_their_namespace_prefix() {
    let fake = Arc::new(FakeKernel::new());
    fake.add_veth("ens192", "sw").expect("nic");
    let pki = Pki::new();
    let opts = |prefix: &str| linkherd_agent::app::AgentOptions {
        netns_prefix: prefix.into(),
        ..Default::default()
    };
    let a = testing::start_agent_with(fake.clone(), &pki, opts("lab-no1-")).await;
    let b = testing::start_agent_with(fake.clone(), &pki, opts("lab-no2-")).await;
    let mut mv_a = MacvlanServiceClient::new(a.channel(&pki, Some(Role::Admin)).await.expect("ch"));
    let mut mv_b = MacvlanServiceClient::new(b.channel(&pki, Some(Role::Admin)).await.expect("ch"));
    mv_a.create(create(
        endpoint("n", "b1", "ens192", "10.0.100.100/24"),
        true,
    ))
    .await
    .expect("a: b1");
    // Same namespace name, other network (the stable MAC must differ on a
    // shared parent).
    mv_b.create(create(
        endpoint("m", "b1", "ens192", "10.0.100.101/24"),
        true,
    ))
    .await
    .expect("b: b1 too");
    assert_eq!(
        fake.netns_names().await.expect("names"),
        ["lab-no1-b1", "lab-no2-b1"]
    );
    // Each agent sees only its own endpoint.
    for (mv, ip) in [
        (&mut mv_a, "10.0.100.100/24"),
        (&mut mv_b, "10.0.100.101/24"),
    ] {
        let list = mv
            .list(pb::ListMacvlansRequest {})
            .await
            .expect("list")
            .into_inner();
        assert_eq!(list.endpoints.len(), 1);
        assert_eq!(list.endpoints[0].addresses, [ip]);
    }
    let r = mv_a
        .delete(pb::DeleteMacvlanRequest {
            network: "n".into(),
            name: "b1".into(),
            ..Default::default()
        })
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(r.removed, ["endpoint n/b1 (eth0 in netns b1)", "netns b1"]);
    assert_eq!(fake.netns_names().await.expect("names"), ["lab-no2-b1"]);
}

#[tokio::test]
async fn get_state_reports_owned_objects_and_a_generation_that_follows_changes() {
    let mut f = fixture(true).await;
    let mut host = pb::host_service_client::HostServiceClient::new(
        f.agent
            .channel(&f.pki, Some(Role::Viewer))
            .await
            .expect("viewer"),
    );
    let s0 = host
        .get_state(pb::GetStateRequest {})
        .await
        .expect("state")
        .into_inner();
    let empty = s0.owned.expect("owned");
    assert!(empty.vlans.is_empty() && empty.endpoints.is_empty() && empty.host_access.is_empty());

    f.mv.create(create(
        endpoint("mac_net10", "b1", "ens192.10", "172.16.10.10/24"),
        true,
    ))
    .await
    .expect("b1");
    let s1 = host
        .get_state(pb::GetStateRequest {})
        .await
        .expect("state")
        .into_inner();
    let o = s1.owned.expect("owned");
    assert_eq!(
        o.vlans.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
        ["ens192.10"]
    );
    assert_eq!(o.vlans[0].auto_for_network, "mac_net10");
    assert_eq!(
        (
            o.endpoints[0].network.as_str(),
            o.endpoints[0].name.as_str()
        ),
        ("mac_net10", "b1")
    );
    assert_ne!(
        s1.generation, s0.generation,
        "a change changes the generation"
    );
    let again = host
        .get_state(pb::GetStateRequest {})
        .await
        .expect("state")
        .into_inner();
    assert_eq!(
        again.generation, s1.generation,
        "no change, same generation"
    );

    // Objects linkherd does not own are not its state.
    f.fake.add_veth("foreign0", "foreign1").expect("veth");
    let s2 = host
        .get_state(pb::GetStateRequest {})
        .await
        .expect("state")
        .into_inner();
    assert_eq!(s2.generation, s1.generation);
}

#[tokio::test]
async fn plan_lists_what_would_change_in_apply_order() {
    let mut f = fixture(true).await;
    let mut host = pb::host_service_client::HostServiceClient::new(
        f.agent
            .channel(&f.pki, Some(Role::Viewer))
            .await
            .expect("viewer"),
    );
    let vlan = pb::Vlan {
        name: "ens192.10".into(),
        parent: "ens192".into(),
        id: 10,
        ..Default::default()
    };
    let b1 = endpoint("mac_net10", "b1", "ens192.10", "172.16.10.10/24");
    let b2 = endpoint("mac_net10", "b2", "ens192.10", "172.16.10.12/24");
    let desired = |vlans: Vec<pb::Vlan>, eps: Vec<pb::MacvlanEndpoint>| pb::PlanRequest {
        desired: Some(pb::DesiredState {
            vlans,
            endpoints: eps,
            ..Default::default()
        }),
    };
    let summary = |r: pb::PlanResponse| -> Vec<(i32, String, String)> {
        r.changes
            .into_iter()
            .map(|c| (c.action, c.object_kind, c.object))
            .collect()
    };
    let create = pb::ChangeAction::Create as i32;
    let update = pb::ChangeAction::Update as i32;
    let delete = pb::ChangeAction::Delete as i32;

    // An empty host: everything is to be created, VLAN first.
    let r = host
        .plan(desired(vec![vlan.clone()], vec![b1.clone(), b2.clone()]))
        .await
        .expect("plan")
        .into_inner();
    assert_eq!(
        summary(r),
        [
            (create, "vlan".into(), "ens192.10".into()),
            (create, "endpoint".into(), "mac_net10/b1".into()),
            (create, "endpoint".into(), "mac_net10/b2".into()),
        ]
    );
    // Planning changed nothing.
    assert!(f.fake.link(&name("ens192.10")).await.is_err());

    // Once b1 exists: only b2 remains; then b1 with another address is an
    // update (with the difference), and b1 left out of the spec is a delete.
    f.mv.create(create_req(b1.clone())).await.expect("b1");
    let r = host
        .plan(desired(vec![vlan.clone()], vec![b1.clone(), b2.clone()]))
        .await
        .expect("plan")
        .into_inner();
    assert_eq!(
        summary(r.clone()),
        [(create, "endpoint".into(), "mac_net10/b2".into())]
    );
    assert_ne!(r.generation, 0);
    let mut moved = b1.clone();
    moved.addresses = vec!["172.16.10.11/24".into()];
    let r = host
        .plan(desired(vec![vlan.clone()], vec![moved]))
        .await
        .expect("plan")
        .into_inner();
    assert_eq!(r.changes[0].action, update);
    assert_eq!(
        r.changes[0].detail,
        "addresses [172.16.10.10/24] (asked [172.16.10.11/24])"
    );
    let r = host
        .plan(desired(vec![vlan.clone()], vec![b2.clone()]))
        .await
        .expect("plan")
        .into_inner();
    assert_eq!(
        summary(r),
        [
            (delete, "endpoint".into(), "mac_net10/b1".into()),
            (create, "endpoint".into(), "mac_net10/b2".into())
        ]
    );
    // A spec about another network leaves mac_net10 alone.
    let other = endpoint("other", "x1", "ens192", "10.9.0.5/24");
    let r = host
        .plan(desired(vec![], vec![other]))
        .await
        .expect("plan")
        .into_inner();
    assert_eq!(summary(r), [(create, "endpoint".into(), "other/x1".into())]);

    // Bad input names its path; a name taken by a foreign link is refused.
    let mut bad = b2.clone();
    bad.gateway = "10.0.0.1".into();
    let err = host
        .plan(desired(vec![], vec![b2.clone(), bad]))
        .await
        .expect_err("bad");
    assert_eq!(field_violations(&err)[0].0, "desired.endpoints[1].gateway");
    let err = host
        .plan(desired(vec![], vec![b2.clone(), b2.clone()]))
        .await
        .expect_err("twice");
    assert_eq!(field_violations(&err)[0].0, "desired.endpoints[1].name");
    f.fake.add_veth("ens193", "peer193").expect("veth");
    let taken = pb::Vlan {
        name: "ens193".into(),
        parent: "ens192".into(),
        id: 20,
        ..Default::default()
    };
    let err = host
        .plan(desired(vec![taken], vec![]))
        .await
        .expect_err("taken");
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(
        err.message().contains("is not linkherd's"),
        "{}",
        err.message()
    );
}

fn create_req(e: pb::MacvlanEndpoint) -> pb::CreateMacvlanRequest {
    create(e, true)
}
