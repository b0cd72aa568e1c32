//! Containers attached to a catalog network on the real kernel (root
//! only): the macvlan made in the runtime's namespace with the lowest free
//! address of the host's block, its stable MAC, the default route; the same
//! attach again answers the same; an address asked for is checked against
//! the catalog's rules; a runtime that replaced the namespace gets the same
//! address back; detach and GC remove only what they name; fleet state
//! never lists attachments; records survive an agent restart; every attach,
//! detach and GC — refused ones too — is in the audit log.

use linkherd_agent::testing;

use std::{path::Path, sync::Arc};

use linkherd_agent::testing::{Pki, tcp_reaches};
use linkherd_agent::{app::AgentOptions, net::rtnl::Rtnl};
use linkherd_proto::{
    model::Role,
    pb::{
        self, attachment_service_client::AttachmentServiceClient,
        host_service_client::HostServiceClient,
    },
};
use test_support::{TestNetns, have_root};
use tonic::{Code, transport::Channel};

/// The network: up0 carries it; this host's block is .16/28, another
/// host's .32/28.
fn catalog() -> pb::CatalogNetwork {
    pb::CatalogNetwork {
        name: "net_a".into(),
        parent: "up0".into(),
        mode: pb::MacvlanMode::Bridge.into(),
        v4: Some(pb::CatalogPool {
            subnet: "10.77.0.0/24".into(),
            gateway: "10.77.0.1".into(),
            blocks: vec!["10.77.0.16/28".into()],
            excluded: vec![pb::Excluded {
                prefix: "10.77.0.32/28".into(),
                why: "no2's container block".into(),
            }],
        }),
        ..Default::default()
    }
}

pub(crate) async fn put_catalog(host: &mut HostServiceClient<Channel>) {
    let desired = pb::DesiredState {
        catalog: vec![catalog()],
        ..Default::default()
    };
    testing::apply_confirmed(host, desired).await;
}

pub(crate) fn attach(c: &TestNetns, id: &str, addresses: &[&str]) -> pb::AttachRequest {
    pb::AttachRequest {
        network: "net_a".into(),
        container_id: id.into(),
        netns: c.path().display().to_string(),
        ifname: "eth0".into(),
        addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
        mac: String::new(),
    }
}

fn key(id: &str) -> pb::AttachmentKey {
    pb::AttachmentKey {
        network: "net_a".into(),
        container_id: id.into(),
        ifname: "eth0".into(),
    }
}

/// `ip -j -d link show eth0` inside `c` (null when it is not there).
fn eth0(c: &TestNetns) -> serde_json::Value {
    let out = std::process::Command::new("ip")
        .args(["-n", &c.name, "-j", "-d", "addr", "show", "dev", "eth0"])
        .output()
        .expect("ip");
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .map(|v| v[0].clone())
        .unwrap_or(serde_json::Value::Null)
}

pub(crate) struct Host {
    pub(crate) ns: TestNetns,
    _switch: TestNetns,
    pub(crate) pki: Pki,
    pub(crate) state: tempfile::TempDir,
}

pub(crate) async fn agent(h: &Host) -> testing::RunningAgent {
    let opts = AgentOptions {
        netns_prefix: format!("{}-", h.ns.name),
        state_dir: Some(h.state.path().to_owned()),
        ..Default::default()
    };
    let net = Arc::new(Rtnl::in_netns(h.ns.path()).expect("netlink"));
    testing::start_agent_with(net, &h.pki, opts).await
}

pub(crate) fn host() -> Host {
    let ns = TestNetns::new("att");
    let switch = TestNetns::new("att-sw");
    ns.ip(&[
        "link",
        "add",
        "up0",
        "type",
        "veth",
        "peer",
        "name",
        "sw0",
        "netns",
        &switch.name,
    ]);
    switch.ip(&["link", "set", "sw0", "up"]);
    ns.ip(&["link", "set", "up0", "up"]);
    Host {
        ns,
        _switch: switch,
        pki: Pki::new(),
        state: tempfile::tempdir().expect("state"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn containers_attach_detach_and_keep_their_addresses() {
    if !have_root("attachments on the kernel") {
        return;
    }
    let h = host();
    let running = agent(&h).await;
    let ch = running
        .channel(&h.pki, Some(Role::Admin))
        .await
        .expect("admin");
    let (mut hs, mut att) = (
        HostServiceClient::new(ch.clone()),
        AttachmentServiceClient::new(ch),
    );
    put_catalog(&mut hs).await;
    let (c1, c2) = (TestNetns::new("att-c1"), TestNetns::new("att-c2"));

    let a = att
        .attach(attach(&c1, "ctr1", &[]))
        .await
        .expect("attach")
        .into_inner();
    assert_eq!(a.addresses, ["10.77.0.16/24"]);
    assert_eq!(a.gateways, ["10.77.0.1"]);
    let link = eth0(&c1);
    assert_eq!(link["address"], a.mac);
    assert_eq!(link["addr_info"][0]["local"], "10.77.0.16");
    assert!(link["flags"].to_string().contains("\"UP\""), "{link}");
    let id = running.agent.context().host.agent().id().to_owned();
    assert_eq!(
        link["ifalias"],
        format!("linkherd:v1 att net=net_a name=ctr1/eth0 agent={id}")
    );
    let route = c1.ip(&["-j", "route", "show", "default"]);
    assert!(route.contains("\"gateway\":\"10.77.0.1\""), "{route}");
    // Again: the same answer, nothing new.
    let again = att
        .attach(attach(&c1, "ctr1", &[]))
        .await
        .expect("again")
        .into_inner();
    assert_eq!(again, a);

    // An address asked for: by the catalog's rules, then free.
    let err = att
        .attach(attach(&c2, "ctr2", &["10.77.0.40"]))
        .await
        .expect_err("excluded");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        err.message(),
        "address 10.77.0.40 is taken: no2's container block (10.77.0.32/28); ask for another"
    );
    let err = att
        .attach(attach(&c2, "ctr2", &["10.77.0.16"]))
        .await
        .expect_err("taken");
    assert_eq!(err.code(), Code::AlreadyExists, "{}", err.message());
    assert!(eth0(&c2).is_null(), "a refused attach left a link");
    let b = att
        .attach(attach(&c2, "ctr2", &["10.77.0.5"]))
        .await
        .expect("static")
        .into_inner();
    assert_eq!(b.addresses, ["10.77.0.5/24"]);
    assert!(
        tcp_reaches(
            &c1.path(),
            &c2.path(),
            "10.77.0.5".parse().expect("ip"),
            7301
        ),
        "ctr1 does not reach ctr2"
    );
    // The fleet's view of the host lists no attachment.
    let owned = hs
        .get_state(pb::GetStateRequest {})
        .await
        .expect("state")
        .into_inner()
        .owned
        .expect("owned");
    assert_eq!(owned.endpoints, []);

    // The runtime replaces ctr1's namespace (the kernel tears the old one
    // and its macvlan down in the background, holding the MAC meanwhile):
    // stale until attached again, then the same address and MAC.
    let path = c1.path();
    std::process::Command::new("ip")
        .args(["netns", "del", &c1.name])
        .status()
        .expect("del");
    std::process::Command::new("ip")
        .args(["netns", "add", &c1.name])
        .status()
        .expect("add");
    let listed = att
        .list(pb::ListAttachmentsRequest::default())
        .await
        .expect("list")
        .into_inner();
    let stale: Vec<(String, bool)> = listed
        .attachments
        .iter()
        .map(|a| (a.container_id.clone(), a.stale))
        .collect();
    assert_eq!(stale, [("ctr1".into(), true), ("ctr2".into(), false)]);
    let back = att
        .attach(attach(&c1, "ctr1", &[]))
        .await
        .expect("re-attach")
        .into_inner();
    assert_eq!(
        (back.addresses, back.mac),
        (a.addresses.clone(), a.mac.clone())
    );
    assert_eq!(Path::new(&back.netns), path);
    let checked = att.check(key("ctr1")).await.expect("check").into_inner();
    assert!(!checked.stale);

    // Detach is idempotent; GC takes what the runtime no longer knows.
    assert!(
        att.detach(key("ctr1"))
            .await
            .expect("detach")
            .into_inner()
            .detached
    );
    assert!(eth0(&c1).is_null(), "ctr1's link stayed");
    assert!(
        !att.detach(key("ctr1"))
            .await
            .expect("again")
            .into_inner()
            .detached
    );
    let err = att.check(key("ctr1")).await.expect_err("gone");
    assert_eq!(err.code(), Code::NotFound);
    let c3 = TestNetns::new("att-c3");
    att.attach(attach(&c3, "ctr3", &[])).await.expect("ctr3");
    let gc = att
        .gc(pb::GcAttachmentsRequest {
            network: "net_a".into(),
            valid: vec![key("ctr3")],
        })
        .await
        .expect("gc")
        .into_inner();
    let gone: Vec<&str> = gc
        .detached
        .iter()
        .map(|a| a.container_id.as_str())
        .collect();
    assert_eq!(gone, ["ctr2"]);
    assert!(eth0(&c2).is_null(), "ctr2's link stayed");

    // A restarted agent still has ctr3 (the same address), and its status.
    drop((hs, att, running));
    let running = agent(&h).await;
    let ch = running
        .channel(&h.pki, Some(Role::Viewer))
        .await
        .expect("viewer");
    let mut att = AttachmentServiceClient::new(ch);
    let listed = att
        .list(pb::ListAttachmentsRequest::default())
        .await
        .expect("list")
        .into_inner();
    let kept: Vec<(String, Vec<String>)> = listed
        .attachments
        .iter()
        .map(|a| (a.container_id.clone(), a.addresses.clone()))
        .collect();
    assert_eq!(kept, [("ctr3".into(), vec!["10.77.0.16/24".to_owned()])]);
    let s = att
        .status(pb::NetworkStatusRequest {
            network: "net_a".into(),
        })
        .await
        .expect("status")
        .into_inner();
    assert_eq!((s.ready, s.free_addresses), (true, 15));
    let err = att.detach(key("ctr3")).await.expect_err("viewer");
    assert_eq!(err.code(), Code::PermissionDenied);

    audited(h.state.path(), &a.mac, &b.mac).await;
}

/// The audit log has each mutation of the test: target, and how it ended.
async fn audited(state: &Path, mac1: &str, mac2: &str) {
    let lines = |action: &'static str, n: usize| async move {
        testing::audit_records(state, action, n)
            .await
            .iter()
            .map(|l| {
                let s = |k: &str| l[k].as_str().unwrap_or_default().to_owned();
                (s("target"), s("result"))
            })
            .collect::<Vec<(String, String)>>()
    };
    let t = |id: &str| format!("net_a/{id}/eth0");
    let attaches = lines("AttachmentService/Attach", 7).await;
    assert_eq!(attaches.len(), 7, "{attaches:?}");
    assert_eq!(
        attaches[0],
        (t("ctr1"), format!("attached {mac1} 10.77.0.16/24"))
    );
    assert_eq!(
        attaches[1],
        (t("ctr1"), format!("unchanged {mac1} 10.77.0.16/24"))
    );
    assert_eq!(
        attaches[2],
        (
            t("ctr2"),
            "error: address 10.77.0.40 is taken: no2's container block (10.77.0.32/28); \
             ask for another"
                .to_owned()
        )
    );
    assert!(
        attaches[3].1.starts_with("error: address 10.77.0.16 "),
        "{attaches:?}"
    );
    assert_eq!(
        attaches[4],
        (t("ctr2"), format!("attached {mac2} 10.77.0.5/24"))
    );
    assert_eq!(
        attaches[5],
        (t("ctr1"), format!("attached {mac1} 10.77.0.16/24"))
    );
    assert_eq!(attaches[6].0, t("ctr3"));
    assert_eq!(
        lines("AttachmentService/Detach", 3).await,
        [
            (t("ctr1"), "detached".to_owned()),
            (t("ctr1"), "nothing attached".to_owned()),
            // Refused before the request was read: who and which call,
            // not what it named.
            (String::new(), "refused".to_owned()),
        ]
    );
    assert_eq!(
        lines("AttachmentService/Gc", 1).await,
        [("net_a".to_owned(), "detached 1: ctr2/eth0".to_owned())]
    );
}
