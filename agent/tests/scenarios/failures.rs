//! Where an endpoint meets what it does not own: foreign links, a namespace
//! that refuses half way, and the host reaching its own macvlans.

use super::{Lab, bridge, create, endpoint, host_has, mv, name, names_in, refusal};

use linkherd_proto::pb::{self, netns_target::Target};
use tonic::Code;

/// A foreign macvlan is deleted only when forced; `--force` never deletes
/// anything but a macvlan (issue 11: it removed a veth).
pub async fn foreign_links_are_deleted_only_when_forced(lab: &dyn Lab) {
    let mut mv = mv(lab);
    lab.add_netns("fx").await;
    lab.add_veth_in("fx", "v0", "v1").await;
    lab.add_foreign_macvlan("fx", "fx0").await;
    let req = |target: Target, ifname: &str, force| pb::DeleteMacvlanRequest {
        netns: Some(pb::NetnsTarget {
            target: Some(target),
        }),
        ifname: ifname.into(),
        force,
        ..Default::default()
    };
    let fx = || Target::Name("fx".into());
    let err = mv
        .delete(req(fx(), "fx0", false))
        .await
        .expect_err("not ours");
    assert_eq!(
        refusal(&err),
        (
            Code::FailedPrecondition,
            "fx0 in netns fx (a bridge macvlan) was not created by linkherd; pass --force to delete it anyway"
        )
    );
    assert_eq!(
        names_in(lab, "fx").await,
        ["fx0", "lo", "v0", "v1"],
        "still there"
    );

    // By the namespace's path this time: a veth there is left alone even
    // when forced; the foreign macvlan beside it goes.
    let path = || Target::Path(lab.netns_path("fx").display().to_string());
    let err = mv
        .delete(req(path(), "v0", true))
        .await
        .expect_err("a veth");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message()
            .contains("is not a macvlan; --force deletes only macvlans, so it is left alone"),
        "{}",
        err.message()
    );
    assert_eq!(
        names_in(lab, "fx").await,
        ["fx0", "lo", "v0", "v1"],
        "the veth is still there"
    );
    let r = mv
        .delete(req(fx(), "fx0", true))
        .await
        .expect("forced")
        .into_inner();
    assert_eq!(r.removed, ["fx0 in netns fx (forced)"]);
    assert_eq!(names_in(lab, "fx").await, ["lo", "v0", "v1"]);
}

/// A namespace already routed refuses the endpoint's gateway after the
/// macvlan (and, with 802.1Q, its auto VLAN parent) were made: both are
/// rolled back, and the namespace, not linkherd's, stays.
pub async fn a_failure_half_way_leaves_nothing_behind(lab: &dyn Lab) {
    let nic = lab.nic().to_owned();
    lab.add_netns("rt").await;
    lab.add_veth_in("rt", "v0", "v1").await;
    lab.add_default_route_in("rt", "v0", "10.63.0.2/24", "10.63.0.1")
        .await;
    let parent = if lab.vlan_expected() {
        format!("{nic}.10")
    } else {
        nic.clone()
    };
    let e = endpoint("n", "rt", &parent, "10.64.0.2/24");
    let err = mv(lab)
        .create(create(e, false))
        .await
        .expect_err("route clash");
    assert_eq!(
        refusal(&err),
        (
            Code::FailedPrecondition,
            "netns rt already has a default route via 10.63.0.1; remove it, or leave the gateway out"
        )
    );
    assert_eq!(
        names_in(lab, "rt").await,
        ["lo", "v0", "v1"],
        "the macvlan was rolled back"
    );
    assert!(
        !host_has(lab, &format!("{nic}.10")).await,
        "auto VLAN rolled back"
    );
    let list = mv(lab)
        .list(pb::ListMacvlansRequest {})
        .await
        .expect("list")
        .into_inner();
    assert!(list.endpoints.is_empty(), "{:?}", list.endpoints);
}

/// The kernel passes no traffic between a parent and its macvlans; host
/// access (a macvlan of the host's own, with routes) does.
pub async fn host_access_lets_the_host_reach_its_endpoints(lab: &dyn Lab) {
    let nic = lab.nic().to_owned();
    let mut mv = mv(lab);
    let mut e = endpoint("mac_net", "h1", &nic, "10.62.0.10/24");
    e.gateway.clear();
    mv.create(create(e, true)).await.expect("endpoint");
    lab.add_host_addr("10.62.0.5/24").await;
    let target = "10.62.0.10".parse().expect("ip");
    if let Some(reached) = lab.reaches(None, "h1", target, 7200).await {
        assert!(!reached, "the parent reached its child without host access");
    }
    let req = pb::CreateHostAccessRequest {
        host_access: Some(pb::HostAccess {
            network: "mac_net".into(),
            parent: nic.clone(),
            addresses: vec!["10.62.0.254/32".into()],
            routes: vec!["10.62.0.10/32".into(), "10.62.0.11/32".into()],
            ..Default::default()
        }),
    };
    let r = mv
        .create_host_access(req.clone())
        .await
        .expect("create")
        .into_inner();
    assert_eq!(r.outcome(), pb::Outcome::Created);
    let h = r.host_access.expect("host access");
    assert_eq!(h.name, "lh-mac_net");
    assert_eq!(h.routes, ["10.62.0.10/32", "10.62.0.11/32"]);
    let access = lab
        .host()
        .link(&name("lh-mac_net"))
        .await
        .expect("host-access link");
    assert_eq!(access.details, bridge());
    assert!(access.admin_up);
    if let Some(reached) = lab.reaches(None, "h1", target, 7201).await {
        assert!(reached, "host access does not reach the endpoint");
    }
    let again = mv
        .create_host_access(req)
        .await
        .expect("again")
        .into_inner();
    assert_eq!(again.outcome(), pb::Outcome::Unchanged);
    let list = mv
        .list_host_access(pb::ListHostAccessRequest {})
        .await
        .expect("list")
        .into_inner();
    assert_eq!(list.host_access.len(), 1);
    mv.delete_host_access(pb::DeleteHostAccessRequest {
        network: "mac_net".into(),
        force: false,
    })
    .await
    .expect("delete");
    assert!(!host_has(lab, "lh-mac_net").await);
}
