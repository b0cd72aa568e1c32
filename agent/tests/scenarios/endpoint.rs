//! An endpoint's life: made in its namespace, idempotent, refused when it
//! differs, removed with what was made for it; and VLAN parents, made or
//! refused as the kernel allows.

use super::{Lab, bridge, create, delete, endpoint, host_has, mv, name, owner, refusal, stable};

use linkherd_proto::{
    model::{LinkDetails, Owner},
    pb,
};
use tonic::Code;

/// Addresses a scenario set (the kernel adds an IPv6 link-local of its own).
fn set_addresses(link: &linkherd_proto::model::Interface) -> Vec<String> {
    link.addresses
        .iter()
        .filter(|a| !matches!(a.addr(), std::net::IpAddr::V6(v6) if v6.is_unicast_link_local()))
        .map(ToString::to_string)
        .collect()
}

pub async fn endpoint_lives_in_its_namespace_with_a_stable_mac(lab: &dyn Lab) {
    let nic = lab.nic().to_owned();
    let mut mv = mv(lab);
    let mut e = endpoint("mac_net", "b1", &nic, "10.0.100.100/24");
    e.gateway = "10.0.100.33".into();
    let r = mv
        .create(create(e.clone(), true))
        .await
        .expect("create")
        .into_inner();
    assert_eq!(r.outcome(), pb::Outcome::Created);
    let ep = r.endpoint.expect("endpoint");
    assert!(ep.netns_created && ep.owned && !ep.parent_created);
    assert_eq!(ep.mac, stable("mac_net", "b1").to_string());
    assert_eq!(ep.gateway, "10.0.100.33");

    // Inside the namespace: eth0 on the NIC, bridge mode, the stable MAC,
    // the mark, the address, up and announcing, the default route; lo up.
    let parent = lab.host().link(&name(&nic)).await.expect("nic");
    let ns = lab.inside("b1").await.expect("netns b1 made");
    let eth0 = ns.link(&name("eth0")).await.expect("eth0");
    assert_eq!(eth0.details, bridge());
    assert_eq!(eth0.parent_index, parent.index);
    assert_eq!(eth0.mac, Some(stable("mac_net", "b1")));
    assert_eq!(
        eth0.alias.as_deref(),
        Some(
            format!(
                "linkherd:v1 ep net=mac_net name=b1 agent={}",
                lab.agent_id()
            )
            .as_str()
        )
    );
    assert!(eth0.admin_up);
    assert_eq!(set_addresses(&eth0), ["10.0.100.100/24"]);
    assert!(lab.announces("b1", "eth0").await, "gratuitous ARP on up");
    let routes = ns.routes().await.expect("routes");
    assert!(
        routes.iter().any(|r| r.dest.prefix_len() == 0
            && r.gateway == Some("10.0.100.33".parse().expect("ip"))
            && r.index == eth0.index),
        "{routes:?}"
    );
    assert!(ns.link(&name("lo")).await.expect("lo").admin_up);
    assert!(
        !host_has(lab, "eth0").await,
        "eth0 appeared in the agent's namespace"
    );

    // The same request changes nothing; a different one says how it differs.
    let again = mv.create(create(e.clone(), true)).await.expect("again");
    assert_eq!(again.into_inner().outcome(), pb::Outcome::Unchanged);
    let macvlans = ns.links().await.expect("links");
    assert_eq!(macvlans.iter().filter(|l| l.details.is_some()).count(), 1);
    let mut vepa = e.clone();
    vepa.mode = pb::MacvlanMode::Vepa.into();
    vepa.addresses = vec!["10.0.100.101/24".into()];
    let err = mv.create(create(vepa, true)).await.expect_err("differs");
    assert_eq!(
        refusal(&err),
        (
            Code::AlreadyExists,
            "endpoint mac_net/b1 exists with different settings: mode bridge (asked vepa), \
             addresses [10.0.100.100/24] (asked [10.0.100.101/24]); delete it first to change them"
        )
    );
    let list = mv
        .list(pb::ListMacvlansRequest {})
        .await
        .expect("list")
        .into_inner();
    assert_eq!(list.endpoints.len(), 1);
    assert_eq!(list.endpoints[0].addresses, ["10.0.100.100/24"]);

    // Delete removes the namespace made for it; re-created, the same MAC.
    let r = mv
        .delete(delete("mac_net", "b1"))
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(
        r.removed,
        ["endpoint mac_net/b1 (eth0 in netns b1)", "netns b1"]
    );
    assert!(
        lab.inside("b1").await.is_none(),
        "the namespace made for it is gone"
    );
    mv.create(create(e, true)).await.expect("re-create");
    let ns = lab.inside("b1").await.expect("netns b1 again");
    let eth0 = ns.link(&name("eth0")).await.expect("eth0 again");
    assert_eq!(eth0.mac, Some(stable("mac_net", "b1")));
    mv.delete(delete("mac_net", "b1"))
        .await
        .expect("delete again");
    let err = mv.delete(delete("mac_net", "b1")).await.expect_err("gone");
    assert_eq!(
        refusal(&err),
        (Code::NotFound, "endpoint mac_net/b1 not found on this host")
    );
}

/// With 802.1Q, VLANs and auto VLAN parents live and go with their
/// endpoints; without it, both are refused with the fix and leave nothing.
pub async fn vlans_on_this_kernel(lab: &dyn Lab) {
    if lab.vlan_expected() {
        vlans_with_8021q(lab).await;
    } else {
        vlans_without_8021q(lab).await;
    }
}

async fn vlans_without_8021q(lab: &dyn Lab) {
    let nic = lab.nic().to_owned();
    let mut vlan = pb::vlan_service_client::VlanServiceClient::new(lab.admin());
    let err = vlan
        .create(pb::CreateVlanRequest {
            parent: nic.clone(),
            id: 10,
            ..Default::default()
        })
        .await
        .expect_err("no 8021q");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message()
            .starts_with("kernel lacks 802.1Q VLAN support (module 8021q)"),
        "{}",
        err.message()
    );
    let auto = format!("{nic}.20");
    let ep = endpoint("mac_net20", "v1", &auto, "172.16.20.10/24");
    let err = mv(lab)
        .create(create(ep, true))
        .await
        .expect_err("no 8021q");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("module 8021q"), "{}", err.message());
    assert!(
        lab.inside("v1").await.is_none(),
        "the namespace made for it was not rolled back"
    );
    assert!(!host_has(lab, &format!("{nic}.10")).await);
    assert!(!host_has(lab, &auto).await);
}

async fn vlans_with_8021q(lab: &dyn Lab) {
    let nic = lab.nic().to_owned();
    let mut vlan = pb::vlan_service_client::VlanServiceClient::new(lab.admin());
    let r = vlan
        .create(pb::CreateVlanRequest {
            parent: nic.clone(),
            id: 10,
            ..Default::default()
        })
        .await
        .expect("vlan")
        .into_inner();
    assert_eq!(r.outcome(), pb::Outcome::Created);
    let v = r.vlan.expect("vlan");
    let vname = format!("{nic}.10");
    assert_eq!(
        (v.name.as_str(), v.id, v.owned, v.reorder_header),
        (vname.as_str(), 10, true, true)
    );
    let link = lab.host().link(&name(&vname)).await.expect("in kernel");
    assert!(link.admin_up);
    assert_eq!(owner(link.alias.as_deref()), Some(Owner::Vlan));
    assert!(matches!(
        link.details,
        Some(LinkDetails::Vlan { id: 10, .. })
    ));
    auto_parent_goes_with_its_last_endpoint(lab, &nic).await;
}

async fn auto_parent_goes_with_its_last_endpoint(lab: &dyn Lab, nic: &str) {
    let mut mv = mv(lab);
    let auto = format!("{nic}.20");
    let b1 = endpoint("mac_net20", "b1", &auto, "172.16.20.10/24");
    let r = mv.create(create(b1, true)).await.expect("b1").into_inner();
    let ep = r.endpoint.expect("endpoint");
    assert!(ep.parent_created && ep.netns_created && ep.owned);
    assert_eq!(ep.gateway, "172.16.20.1");
    let parent = lab.host().link(&name(&auto)).await.expect("auto vlan");
    assert_eq!(
        owner(parent.alias.as_deref()),
        Some(Owner::AutoVlan {
            network: "mac_net20".into()
        })
    );
    assert!(matches!(
        parent.details,
        Some(LinkDetails::Vlan { id: 20, .. })
    ));
    let eth0 = lab
        .inside("b1")
        .await
        .expect("b1")
        .link(&name("eth0"))
        .await
        .expect("eth0");
    assert_eq!(eth0.parent_index, parent.index);

    let b2 = endpoint("mac_net20", "b2", &auto, "172.16.20.12/24");
    mv.create(create(b2, true)).await.expect("b2");
    let r = mv
        .delete(delete("mac_net20", "b1"))
        .await
        .expect("b1")
        .into_inner();
    assert_eq!(
        r.removed,
        ["endpoint mac_net20/b1 (eth0 in netns b1)", "netns b1"]
    );
    assert!(host_has(lab, &auto).await, "the parent still carries b2");
    let r = mv
        .delete(delete("mac_net20", "b2"))
        .await
        .expect("b2")
        .into_inner();
    let last = format!("vlan {auto}");
    assert_eq!(
        r.removed,
        [
            "endpoint mac_net20/b2 (eth0 in netns b2)",
            "netns b2",
            last.as_str()
        ]
    );
    assert!(
        !host_has(lab, &auto).await,
        "auto parent removed with its last endpoint"
    );
    assert!(lab.inside("b1").await.is_none() && lab.inside("b2").await.is_none());
}
