//! What only the real kernel shows about endpoints (root only): macvlan
//! modes on a switch, gratuitous ARP reaching a peer, namespaces found by
//! process and path, IPv6 and source mode, and probes from inside an
//! endpoint. The agent works on a private namespace whose NIC (`up0`, a
//! veth) is plugged into a switch namespace; results are checked with
//! `ip -j` and real traffic. The lifecycle both kernels share is
//! `../scenarios`, run here by `scenario_run`.

use linkherd_agent::testing;

use std::{
    net::{IpAddr, TcpListener},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use linkherd_agent::net::{netns::NetnsGuard, rtnl::Rtnl};
use linkherd_agent::testing::{Pki, tcp_reaches};
use linkherd_proto::{
    field_violations,
    model::{MacAddr, Role},
    pb::{self, macvlan_service_client::MacvlanServiceClient, netns_target::Target},
};
use test_support::{TestNetns, have_root};
use tonic::{Code, transport::Channel};

/// A host namespace with NIC up0 on a hairpin switch, and an agent on it.
pub(crate) struct Lab {
    pub(crate) host: TestNetns,
    _switch: TestNetns,
    _pki: Pki,
    pub(crate) agent: testing::RunningAgent,
    pub(crate) net: Arc<Rtnl>,
    pub(crate) admin: Channel,
    mv: MacvlanServiceClient<Channel>,
}

impl Lab {
    /// The alias this lab's agent writes for endpoint `network/name`.
    fn mark(&self, network: &str, name: &str) -> String {
        let id = self.agent.agent.context().host.agent().id().to_owned();
        format!("linkherd:v1 ep net={network} name={name} agent={id}")
    }

    /// A test-unique name for a namespace the agent creates.
    pub(crate) fn ns(&self, base: &str) -> String {
        format!("{}-{base}", self.host.name)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let prefix = format!("{}-", self.host.name);
        if let Ok(dir) = std::fs::read_dir("/run/netns") {
            for e in dir.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with(&prefix) {
                    let _ = std::process::Command::new("ip")
                        .args(["netns", "del", &n])
                        .status();
                }
            }
        }
    }
}

pub(crate) async fn lab(tag: &str) -> Option<Lab> {
    lab_with(tag, false).await
}

/// With `hairpin`, the switch reflects frames back out of the port they came
/// in on (what VEPA needs). It also reflects the parent's own frames to its
/// macvlans, so the host-access test runs without it.
async fn lab_with(tag: &str, hairpin: bool) -> Option<Lab> {
    if !have_root(tag) {
        return None;
    }
    let host = TestNetns::new(tag);
    let switch = TestNetns::new(&format!("{tag}-sw"));
    host.ip(&[
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
    switch.ip(&["link", "add", "br0", "type", "bridge"]);
    switch.ip(&["link", "set", "sw0", "master", "br0"]);
    if hairpin {
        switch.ip(&[
            "link",
            "set",
            "dev",
            "sw0",
            "type",
            "bridge_slave",
            "hairpin",
            "on",
        ]);
    }
    switch.ip(&["link", "set", "br0", "up"]);
    switch.ip(&["link", "set", "sw0", "up"]);
    host.ip(&["link", "set", "up0", "up"]);
    let pki = Pki::new();
    // Tests run in parallel: each agent keeps to namespaces named after its
    // own host namespace, so one test's endpoints never show in another's.
    let opts = linkherd_agent::app::AgentOptions {
        netns_prefix: format!("{}-", host.name),
        ..Default::default()
    };
    let net = Arc::new(Rtnl::in_netns(host.path()).expect("netlink"));
    let agent = testing::start_agent_with(net.clone(), &pki, opts).await;
    let ch = agent
        .channel(&pki, Some(Role::Admin))
        .await
        .expect("connect");
    Some(Lab {
        host,
        _switch: switch,
        _pki: pki,
        agent,
        net,
        admin: ch.clone(),
        mv: MacvlanServiceClient::new(ch),
    })
}

/// The name the agent knows a lab namespace by (without its prefix).
fn short(ns: &str) -> &str {
    ns.rsplit('-').next().unwrap_or(ns)
}

fn endpoint(
    network: &str,
    ns: &str,
    parent: &str,
    mode: pb::MacvlanMode,
    cidr: &str,
) -> pb::CreateMacvlanRequest {
    pb::CreateMacvlanRequest {
        endpoint: Some(pb::MacvlanEndpoint {
            network: network.into(),
            name: short(ns).into(),
            parent: parent.into(),
            mode: mode.into(),
            netns: Some(pb::NetnsTarget {
                target: Some(Target::Name(short(ns).into())),
            }),
            addresses: vec![cidr.into()],
            ..Default::default()
        }),
        create_netns: true,
    }
}

fn netns_file(name: &str) -> PathBuf {
    Path::new("/run/netns").join(name)
}

fn ip_json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&test_support::run("ip", args)).expect("ip -j")
}

fn link_in(ns: &str, dev: &str) -> serde_json::Value {
    ip_json(&["-n", ns, "-j", "-d", "link", "show", "dev", dev])[0].clone()
}

fn ip_of(cidr: &str) -> IpAddr {
    cidr.split('/').next().expect("ip").parse().expect("ip")
}

#[tokio::test]
async fn each_mode_behaves_as_the_kernel_documents() {
    let Some(mut lab) = lab_with("lk-modes", true).await else {
        return;
    };
    let cases = [
        ("br", pb::MacvlanMode::Bridge, "bridge", true),
        ("pr", pb::MacvlanMode::Private, "private", false),
        ("ve", pb::MacvlanMode::Vepa, "vepa", true),
    ];
    for (i, (tag, mode, word, reach)) in cases.into_iter().enumerate() {
        let (a, b) = (lab.ns(&format!("{tag}1")), lab.ns(&format!("{tag}2")));
        let (ca, cb) = (format!("10.60.{i}.1/24"), format!("10.60.{i}.2/24"));
        lab.mv
            .create(endpoint(tag, &a, "up0", mode, &ca))
            .await
            .expect("a");
        lab.mv
            .create(endpoint(tag, &b, "up0", mode, &cb))
            .await
            .expect("b");
        let l = link_in(&a, "eth0");
        assert_eq!(l["linkinfo"]["info_kind"], "macvlan");
        assert_eq!(
            l["linkinfo"]["info_data"]["mode"], word,
            "mode sent explicitly"
        );
        let got = tcp_reaches(
            &netns_file(&a),
            &netns_file(&b),
            ip_of(&cb),
            7000 + i as u16,
        );
        assert_eq!(
            got, reach,
            "{word} endpoints on one parent: reach = {reach}"
        );
    }
}

#[tokio::test]
async fn gratuitous_arp_refreshes_a_peers_cache() {
    let Some(mut lab) = lab("lk-garp").await else {
        return;
    };
    let (a, b) = (lab.ns("g1"), lab.ns("g2"));
    lab.mv
        .create(endpoint(
            "g",
            &a,
            "up0",
            pb::MacvlanMode::Bridge,
            "10.61.0.1/24",
        ))
        .await
        .expect("a");
    lab.mv
        .create(endpoint(
            "g",
            &b,
            "up0",
            pb::MacvlanMode::Bridge,
            "10.61.0.2/24",
        ))
        .await
        .expect("b");
    // b learns a's MAC by talking to it.
    assert!(tcp_reaches(
        &netns_file(&b),
        &netns_file(&a),
        "10.61.0.1".parse().expect("ip"),
        7100
    ));
    let neigh =
        |ns: &str| ip_json(&["-n", ns, "-j", "neigh", "show", "10.61.0.1"])[0]["lladdr"].clone();
    assert_eq!(neigh(&b), MacAddr::stable("g", "g1").to_string().as_str());
    // The kernel ignores ARP overrides within locktime (1 s) of an update.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    lab.mv
        .delete(pb::DeleteMacvlanRequest {
            network: "g".into(),
            name: "g1".into(),
            ..Default::default()
        })
        .await
        .expect("delete a");
    let mut again = endpoint("g", &a, "up0", pb::MacvlanMode::Bridge, "10.61.0.1/24");
    let new_mac = "02:61:00:00:00:01";
    if let Some(e) = again.endpoint.as_mut() {
        e.mac = new_mac.into();
    }
    lab.mv.create(again).await.expect("a again, new MAC");
    // Without any traffic from b, its cache follows the announcement.
    let deadline = Instant::now() + Duration::from_secs(3);
    while neigh(&b) != new_mac {
        assert!(
            Instant::now() < deadline,
            "b still has {} for 10.61.0.1",
            neigh(&b)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn process_and_path_namespaces_ipv6_and_source_mode() {
    let Some(mut lab) = lab("lk-targets").await else {
        return;
    };
    // A "container": a process in a namespace the test made, found by pid.
    let cns = lab.ns("ctr");
    test_support::run("ip", &["netns", "add", &cns]);
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &cns, "sleep", "30"])
        .spawn()
        .expect("start the container process");
    let pid = child.id();
    struct Kill(u32);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(self.0).unwrap_or(0)),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let _kill = Kill(pid);
    // Wait until the process is inside its namespace.
    let want = std::fs::metadata(netns_file(&cns))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .expect("ino");
    let deadline = Instant::now() + Duration::from_secs(3);
    while std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .ok()
        != Some(want)
    {
        assert!(
            Instant::now() < deadline,
            "the process never entered its namespace"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut req = endpoint("c", "c1", "up0", pb::MacvlanMode::Bridge, "10.65.0.10/24");
    if let Some(e) = req.endpoint.as_mut() {
        e.netns = Some(pb::NetnsTarget {
            target: Some(Target::Pid(pid)),
        });
        e.addresses.push("fd00:65::10/64".into());
    }
    req.create_netns = false;
    lab.mv.create(req).await.expect("endpoint by pid");
    let v6 = ip_json(&["-n", &cns, "-j", "-6", "addr", "show", "dev", "eth0"]);
    assert!(v6.to_string().contains("fd00:65::10"), "{v6}");
    assert_eq!(
        link_in(&cns, "eth0")["ifalias"],
        lab.mark("c", "c1").as_str()
    );

    // The same namespace by path, a second interface in source mode.
    let mut by_path = endpoint("s", "s1", "up0", pb::MacvlanMode::Source, "10.66.0.10/24");
    if let Some(e) = by_path.endpoint.as_mut() {
        e.netns = Some(pb::NetnsTarget {
            target: Some(Target::Path(format!("/proc/{pid}/ns/net"))),
        });
        e.ifname = "src0".into();
        e.source_macs = vec!["02:66:00:00:00:01".into(), "02:66:00:00:00:02".into()];
    }
    by_path.create_netns = false;
    lab.mv.create(by_path).await.expect("endpoint by path");
    let src = link_in(&cns, "src0");
    assert_eq!(src["linkinfo"]["info_data"]["mode"], "source");
    assert_eq!(src["linkinfo"]["info_data"]["macaddr_count"], 2, "{src}");
    let list = lab
        .mv
        .list(pb::ListMacvlansRequest {})
        .await
        .expect("list")
        .into_inner();
    assert_eq!(list.endpoints.len(), 2);
    let s = list.endpoints.iter().find(|e| e.name == "s1").expect("s1");
    assert_eq!(s.source_macs, ["02:66:00:00:00:01", "02:66:00:00:00:02"]);

    // When the process is gone, so is its namespace and the endpoint.
    drop(_kill);
    let _ = child.wait();
    test_support::run("ip", &["netns", "del", &cns]);
    let list = lab
        .mv
        .list(pb::ListMacvlansRequest {})
        .await
        .expect("list")
        .into_inner();
    assert!(list.endpoints.is_empty(), "{:?}", list.endpoints);
}

#[tokio::test]
async fn tcp_probe_from_inside_an_endpoint() {
    let Some(mut lab) = lab("lk-probe").await else {
        return;
    };
    let (a, b) = (lab.ns("pa"), lab.ns("pb"));
    let mk = |ns: &str, cidr: &str| endpoint("p", ns, "up0", pb::MacvlanMode::Bridge, cidr);
    lab.mv.create(mk(&a, "10.67.0.1/24")).await.expect("a");
    lab.mv.create(mk(&b, "10.67.0.2/24")).await.expect("b");
    // A listener in b, on a thread inside b's namespace.
    let file = netns_file(&b);
    let (tx, rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        let _g = NetnsGuard::enter(&file).expect("enter");
        let l = TcpListener::bind("10.67.0.2:7400").expect("bind");
        tx.send(()).expect("ready");
        let _ = l.accept();
    });
    rx.recv().expect("ready");
    let probe = pb::probe_service_client::ProbeServiceClient::new(
        lab.agent
            .channel(&lab._pki, Some(Role::Operator))
            .await
            .expect("operator"),
    );
    let from = Some(pb::NetnsTarget {
        target: Some(Target::Name("pa".into())),
    });
    let tcp = |to: &str, port: u32, timeout_ms: u32| {
        let req = pb::TcpRequest {
            source: from.clone(),
            interface: String::new(),
            destination: to.into(),
            port,
            timeout_ms,
        };
        let mut p = probe.clone();
        async move { p.tcp(req).await.expect("probe").into_inner() }
    };
    assert_eq!(
        tcp("10.67.0.2", 7400, 2000).await.result(),
        pb::TcpResult::Connected
    );
    let refused = tcp("10.67.0.2", 7401, 2000).await;
    assert_eq!(
        refused.result(),
        pb::TcpResult::Refused,
        "{}",
        refused.detail
    );
    let lost = tcp("10.67.0.99", 7400, 300).await;
    assert!(
        matches!(
            lost.result(),
            pb::TcpResult::TimedOut | pb::TcpResult::Unreachable
        ),
        "{:?}: {}",
        lost.result(),
        lost.detail
    );
    assert!(
        lost.elapsed_us < 3_500_000,
        "a probe must be bounded: {} us",
        lost.elapsed_us
    );
    let _ = server.join();
}

async fn probe_client(
    lab: &Lab,
    role: Role,
) -> pb::probe_service_client::ProbeServiceClient<Channel> {
    pb::probe_service_client::ProbeServiceClient::new(
        lab.agent
            .channel(&lab._pki, Some(role))
            .await
            .expect("channel"),
    )
}

fn from(ns: &str) -> Option<pb::NetnsTarget> {
    Some(pb::NetnsTarget {
        target: Some(Target::Name(ns.into())),
    })
}

async fn ping(
    probe: &mut pb::probe_service_client::ProbeServiceClient<Channel>,
    ns: &str,
    to: &str,
    count: u32,
) -> (Vec<pb::PingReply>, pb::PingSummary) {
    let mut stream = probe
        .ping(pb::PingRequest {
            source: from(ns),
            destination: to.into(),
            count,
            interval_ms: 50,
            timeout_ms: 500,
            ..Default::default()
        })
        .await
        .expect("ping")
        .into_inner();
    let mut replies = Vec::new();
    while let Some(msg) = futures::StreamExt::next(&mut stream).await {
        match msg.expect("ok").event.expect("event") {
            pb::ping_response::Event::Reply(r) => replies.push(r),
            pb::ping_response::Event::Summary(s) => return (replies, s),
        }
    }
    panic!("no summary");
}

/// Waits until IPv6 duplicate address detection is over for `cidr` in `ns`.
fn wait_v6_ready(ns: &str, addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let j = ip_json(&["-n", ns, "-j", "-6", "addr", "show", "dev", "eth0"]);
        let ready = j[0]["addr_info"].as_array().is_some_and(|a| {
            a.iter()
                .any(|i| i["local"] == addr && i.get("tentative").is_none())
        });
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "DAD never finished for {addr}: {j}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn ping_and_neighbour_probes_from_inside_endpoints() {
    let Some(mut lab) = lab("lk-ping").await else {
        return;
    };
    let (a, b) = (lab.ns("qa"), lab.ns("qb"));
    for (ns, v4, v6) in [
        (&a, "10.68.0.1/24", "fd00:68::1/64"),
        (&b, "10.68.0.2/24", "fd00:68::2/64"),
    ] {
        let mut req = endpoint("q", ns, "up0", pb::MacvlanMode::Bridge, v4);
        if let Some(e) = req.endpoint.as_mut() {
            e.addresses.push(v6.into());
        }
        lab.mv.create(req).await.expect("endpoint");
    }
    wait_v6_ready(&a, "fd00:68::1");
    wait_v6_ready(&b, "fd00:68::2");
    let mut probe = probe_client(&lab, Role::Operator).await;

    // IPv4 and IPv6 echo, every reply streamed, then the summary.
    let (replies, s) = ping(&mut probe, "qa", "10.68.0.2", 3).await;
    assert_eq!(replies.len(), 3);
    assert!(
        replies
            .iter()
            .all(|r| !r.timed_out && r.ttl == 64 && r.rtt_us > 0),
        "{replies:?}"
    );
    assert_eq!((s.sent, s.received, s.loss_percent), (3, 3, 0.0));
    assert!(s.min_us <= s.avg_us && s.avg_us <= s.max_us);
    let (_, s6) = ping(&mut probe, "qa", "fd00:68::2", 2).await;
    assert_eq!((s6.sent, s6.received), (2, 2), "IPv6 echo");

    // Many probes at once, from both namespaces: each gets its own replies.
    let mut set = tokio::task::JoinSet::new();
    for (ns, to) in [
        ("qa", "10.68.0.2"),
        ("qb", "10.68.0.1"),
        ("qa", "fd00:68::2"),
        ("qb", "fd00:68::1"),
    ]
    .into_iter()
    .cycle()
    .take(12)
    {
        let mut p = probe.clone();
        set.spawn(async move { ping(&mut p, ns, to, 3).await.1 });
    }
    while let Some(s) = set.join_next().await {
        let s = s.expect("task");
        assert_eq!(
            (s.sent, s.received),
            (3, 3),
            "a concurrent ping lost replies: {s:?}"
        );
    }

    // Neighbour discovery: who has fd00:68::2 -> b's MAC.
    let b_mac = MacAddr::stable("q", "qb").to_string();

    // 32 ARP probes at once from one namespace (a fleet verification does
    // this): each reads its link over the same netlink connection, and
    // every one must get b's answer, none a "device busy".
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let mut p = probe.clone();
        set.spawn(async move {
            p.arp(pb::ArpRequest {
                source: from("qa"),
                interface: "eth0".into(),
                address: "10.68.0.2".into(),
                timeout_ms: 300,
                free_check: false,
            })
            .await
        });
    }
    while let Some(r) = set.join_next().await {
        let r = r.expect("task").expect("concurrent arp").into_inner();
        let macs: Vec<&str> = r.responders.iter().map(|x| x.mac.as_str()).collect();
        assert_eq!(macs, [b_mac.as_str()]);
    }
    let ns6 = probe
        .arp(pb::ArpRequest {
            source: from("qa"),
            interface: "eth0".into(),
            address: "fd00:68::2".into(),
            timeout_ms: 500,
            free_check: false,
        })
        .await
        .expect("ns")
        .into_inner();
    assert_eq!(
        ns6.responders
            .iter()
            .map(|r| r.mac.as_str())
            .collect::<Vec<_>>(),
        [b_mac.as_str()]
    );

    // ARP, and the free-address probe (RFC 5227).
    let arp = |address: &str, free_check: bool| pb::ArpRequest {
        source: from("qa"),
        interface: "eth0".into(),
        address: address.into(),
        timeout_ms: 400,
        free_check,
    };
    let r = probe
        .arp(arp("10.68.0.2", false))
        .await
        .expect("arp")
        .into_inner();
    assert_eq!(r.responders.len(), 1);
    assert_eq!(r.responders[0].mac, b_mac);
    assert_eq!(r.verdict, format!("10.68.0.2 is at {b_mac}"));
    let r = probe
        .arp(arp("10.68.0.77", true))
        .await
        .expect("free")
        .into_inner();
    assert!(r.responders.is_empty());
    assert_eq!(r.verdict, "10.68.0.77 is free: no one answered the probe");
    let r = probe
        .arp(arp("10.68.0.2", true))
        .await
        .expect("in use")
        .into_inner();
    assert_eq!(r.verdict, format!("10.68.0.2 is in use by {b_mac}"));

    // A duplicate: a second endpoint claims 10.68.0.2 (another network).
    let c = lab.ns("qc");
    lab.mv
        .create(endpoint(
            "dup",
            &c,
            "up0",
            pb::MacvlanMode::Bridge,
            "10.68.0.2/24",
        ))
        .await
        .expect("dup");
    let r = probe
        .arp(arp("10.68.0.2", false))
        .await
        .expect("arp")
        .into_inner();
    assert!(r.duplicate, "{r:?}");
    assert_eq!(r.responders.len(), 2);
    assert!(
        r.verdict
            .starts_with("DUPLICATE ADDRESS: 10.68.0.2 is answered by 2 different MACs"),
        "{}",
        r.verdict
    );

    // Loss: the target is down.
    lab.mv
        .delete(pb::DeleteMacvlanRequest {
            network: "dup".into(),
            name: "qc".into(),
            ..Default::default()
        })
        .await
        .expect("delete dup");
    test_support::run("ip", &["-n", &b, "link", "set", "eth0", "down"]);
    let (replies, s) = ping(&mut probe, "qa", "10.68.0.2", 2).await;
    assert!(replies.iter().all(|r| r.timed_out), "{replies:?}");
    assert_eq!((s.sent, s.received, s.loss_percent), (2, 0, 100.0));

    // Bad input: an unknown namespace or interface, a bad address.
    let err = probe
        .arp(pb::ArpRequest {
            source: from("nosuch"),
            interface: "eth0".into(),
            address: "10.68.0.2".into(),
            timeout_ms: 100,
            free_check: false,
        })
        .await
        .expect_err("no namespace");
    assert_eq!(err.code(), Code::NotFound, "{}", err.message());
    let err = probe
        .arp(pb::ArpRequest {
            source: from("qa"),
            interface: "eth9".into(),
            address: "10.68.0.2".into(),
            timeout_ms: 100,
            free_check: false,
        })
        .await
        .expect_err("no interface");
    assert_eq!(
        (err.code(), err.message()),
        (Code::NotFound, "interface \"eth9\" not found")
    );
    let err = probe
        .tcp(pb::TcpRequest {
            source: from("qa"),
            destination: "10.68.0.300".into(),
            port: 7,
            ..Default::default()
        })
        .await
        .expect_err("bad address");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&err)[0].0, "destination");

    // Viewers may not probe; sub-10 ms intervals need admin.
    let mut viewer = probe_client(&lab, Role::Viewer).await;
    let err = viewer
        .arp(arp("10.68.0.2", false))
        .await
        .expect_err("viewer");
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = probe
        .ping(pb::PingRequest {
            source: from("qa"),
            destination: "10.68.0.2".into(),
            interval_ms: 5,
            ..Default::default()
        })
        .await
        .expect_err("fast");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message()
            .starts_with("an interval below 10 ms needs the admin role"),
        "{}",
        err.message()
    );
}

/// ARP requests a namespace's eth0 received (IPv6 is off there, so
/// nothing else arrives).
fn arp_received(ns: &str) -> u64 {
    let l = ip_json(&["-n", ns, "-s", "-j", "link", "show", "dev", "eth0"]);
    l[0]["stats64"]["rx"]["packets"]
        .as_u64()
        .expect("rx packets")
}

/// Issue 12: an ARP probe asks again, up to three times over its timeout,
/// while nobody answers (as arping does), so one lost frame is not "no
/// answer"; once answered it asks no more.
#[tokio::test]
async fn arp_asks_again_while_nobody_answers() {
    let Some(mut lab) = lab("lk-arp-again").await else {
        return;
    };
    let (a, b) = (lab.ns("ra"), lab.ns("rb"));
    for (ns, v4) in [(&a, "10.69.0.1/24"), (&b, "10.69.0.2/24")] {
        lab.mv
            .create(endpoint("r", ns, "up0", pb::MacvlanMode::Bridge, v4))
            .await
            .expect("endpoint");
        test_support::run(
            "ip",
            &[
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
            ],
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut probe = probe_client(&lab, Role::Operator).await;
    let arp = |address: &str| pb::ArpRequest {
        source: from("ra"),
        interface: "eth0".into(),
        address: address.into(),
        timeout_ms: 600,
        free_check: false,
    };
    let before = arp_received(&b);
    let r = probe
        .arp(arp("10.69.0.77"))
        .await
        .expect("arp")
        .into_inner();
    assert!(r.responders.is_empty());
    assert_eq!(
        arp_received(&b) - before,
        3,
        "three requests while unanswered"
    );
    let before = arp_received(&b);
    let r = probe.arp(arp("10.69.0.2")).await.expect("arp").into_inner();
    assert_eq!(r.responders.len(), 1);
    assert_eq!(arp_received(&b) - before, 1, "one request, answered");
}
