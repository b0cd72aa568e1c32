//! Convergence on the real kernel (root): an agent whose host namespace has
//! NIC `up0`, a veth to a peer namespace (`sw0`, 10.77.0.1/24). A power
//! cycle (agent killed, its namespaces and links gone, the same state
//! directory) is restored before the new agent answers; each fault made by
//! hand with `ip` is repaired by the running reconciler, found by kernel
//! events or its periodic pass. Every check reads `ip -j` and sends traffic
//! from the peer; the time each repair took is printed (`--nocapture`).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use linkherd_agent::{
    app::AgentOptions,
    converge::{self, tracker::Policy},
    net::rtnl::Rtnl,
    testing::{self, Pki, RunningAgent, audit_records},
};
use linkherd_proto::{
    model::Role,
    pb::{
        self, host_service_client::HostServiceClient,
        interface_service_client::InterfaceServiceClient,
        macvlan_service_client::MacvlanServiceClient,
    },
};
use test_support::{TestNetns, have_root};

const ACCESS: &str = "10.77.0.250";

struct Lab {
    host: TestNetns,
    peer: TestNetns,
    pki: Pki,
    dir: tempfile::TempDir,
    agent: Option<(RunningAgent, tokio::task::JoinHandle<()>)>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop();
        self.delete_made_namespaces();
    }
}

impl Lab {
    fn new(tag: &str) -> Option<Self> {
        if !have_root(tag) {
            return None;
        }
        let host = TestNetns::new(tag);
        let peer = TestNetns::new(&format!("{tag}-p"));
        let lab = Self {
            host,
            peer,
            pki: Pki::new(),
            dir: tempfile::tempdir().expect("state dir"),
            agent: None,
        };
        lab.plug_nic();
        Some(lab)
    }

    /// (Re)creates NIC up0 and its peer end sw0, both up.
    fn plug_nic(&self) {
        let peer = self.peer.name.as_str();
        self.host.ip(&[
            "link", "add", "up0", "type", "veth", "peer", "name", "sw0", "netns", peer,
        ]);
        self.peer.ip(&["addr", "add", "10.77.0.1/24", "dev", "sw0"]);
        self.peer.ip(&["link", "set", "sw0", "up"]);
        self.host.ip(&["link", "set", "up0", "up"]);
    }

    fn ns(&self, base: &str) -> String {
        format!("{}-{base}", self.host.name)
    }

    async fn start(&mut self, policy: Policy, interval: Duration) {
        let opts = AgentOptions {
            state_dir: Some(self.dir.path().to_owned()),
            netns_prefix: format!("{}-", self.host.name),
            reconcile: converge::Settings {
                policy,
                interval,
                ..converge::Settings::default()
            },
            ..AgentOptions::default()
        };
        // A new process's own netlink connections, as after a real restart.
        let net = Arc::new(Rtnl::in_netns(self.host.path()).expect("netlink"));
        let agent = testing::start_agent_with(net, &self.pki, opts).await;
        let runner = agent.agent.spawn_reconciler();
        self.agent = Some((agent, runner));
    }

    fn stop(&mut self) {
        if let Some((agent, runner)) = self.agent.take() {
            runner.abort();
            drop(agent);
        }
    }

    fn agent(&self) -> &RunningAgent {
        &self.agent.as_ref().expect("agent running").0
    }

    fn delete_made_namespaces(&self) {
        let prefix = format!("{}-", self.host.name);
        for e in std::fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .flatten()
        {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(&prefix) {
                let _ = std::process::Command::new("ip")
                    .args(["netns", "del", &n])
                    .status();
            }
        }
    }

    /// `n` endpoints b1..bN (bridge macvlans on up0 in namespaces the
    /// agent makes, 10.77.0.1N), host access on up0, up0 kept promiscuous.
    async fn set_up(&self, n: u8) {
        let ch = self
            .agent()
            .channel(&self.pki, Some(Role::Admin))
            .await
            .expect("admin");
        let mut mv = MacvlanServiceClient::new(ch.clone());
        for k in 1..=n {
            mv.create(pb::CreateMacvlanRequest {
                endpoint: Some(pb::MacvlanEndpoint {
                    network: "net77".into(),
                    name: format!("b{k}"),
                    parent: "up0".into(),
                    mode: pb::MacvlanMode::Bridge.into(),
                    netns: Some(pb::NetnsTarget {
                        target: Some(pb::netns_target::Target::Name(format!("b{k}"))),
                    }),
                    addresses: vec![format!("10.77.0.1{k}/24")],
                    ..Default::default()
                }),
                create_netns: true,
            })
            .await
            .expect("endpoint");
        }
        mv.create_host_access(pb::CreateHostAccessRequest {
            host_access: Some(pb::HostAccess {
                network: "net77".into(),
                parent: "up0".into(),
                addresses: vec![format!("{ACCESS}/24")],
                ..Default::default()
            }),
        })
        .await
        .expect("host access");
        InterfaceServiceClient::new(ch)
            .set_promiscuous(pb::SetPromiscuousRequest {
                name: "up0".into(),
                enabled: true,
                lease_seconds: 0,
            })
            .await
            .expect("promisc");
    }

    /// `ip -j -d addr show eth0` inside b1's namespace (Null when absent).
    fn b1(&self) -> serde_json::Value {
        self.ep(1)
    }

    /// `ip -j -d addr show eth0` inside bK's namespace (Null when absent).
    fn ep(&self, k: u8) -> serde_json::Value {
        let out = std::process::Command::new("ip")
            .args([
                "-n",
                &self.ns(&format!("b{k}")),
                "-j",
                "-d",
                "addr",
                "show",
                "dev",
                "eth0",
            ])
            .output()
            .expect("ip");
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .map(|v| v[0].clone())
            .unwrap_or_default()
    }

    fn host_link(&self, dev: &str) -> serde_json::Value {
        let out = std::process::Command::new("ip")
            .args([
                "-n",
                &self.host.name,
                "-j",
                "-d",
                "addr",
                "show",
                "dev",
                dev,
            ])
            .output()
            .expect("ip");
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .map(|v| v[0].clone())
            .unwrap_or_default()
    }

    /// A TCP connection from the peer reaches a listener on `10.77.0.1K`
    /// in bK's namespace (K 0: host access, in the host namespace).
    fn peer_reaches(&self, k: u8) -> bool {
        static PORT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(41000);
        let port = PORT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (to, ip) = match k {
            0 => (self.host.path(), ACCESS.to_owned()),
            k => (
                std::path::PathBuf::from("/run/netns").join(self.ns(&format!("b{k}"))),
                format!("10.77.0.1{k}"),
            ),
        };
        let ip = ip.parse().expect("ip");
        testing::tcp_reaches(&self.peer.path(), &to, ip, port)
    }

    /// What the agent reports of `object` ("endpoint net77/b1").
    async fn phase(&self, object: &str) -> (String, String) {
        let ch = self
            .agent()
            .channel(&self.pki, Some(Role::Viewer))
            .await
            .expect("viewer");
        let r = HostServiceClient::new(ch)
            .get_convergence(pb::GetConvergenceRequest {})
            .await
            .expect("convergence")
            .into_inner();
        let o = r
            .objects
            .into_iter()
            .find(|o| format!("{} {}", o.kind, o.name) == object)
            .unwrap_or_else(|| panic!("{object} not reported"));
        let phase = pb::ConvergencePhase::try_from(o.phase)
            .expect("phase")
            .as_str_name();
        (
            phase
                .trim_start_matches("CONVERGENCE_PHASE_")
                .to_lowercase(),
            o.detail,
        )
    }
}

fn addresses(link: &serde_json::Value) -> Vec<String> {
    link["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["family"] == "inet")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
        .collect()
}

/// Waits (up to 15 s) until `done`, returning how long it took.
async fn until(what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{what}: not repaired within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let took = start.elapsed();
    eprintln!("repair time  {what:<40} {:>6} ms", took.as_millis());
    took
}

#[tokio::test]
async fn a_power_cycle_is_restored_before_the_agent_answers() {
    let Some(mut lab) = Lab::new("cv-boot") else {
        return;
    };
    lab.start(Policy::Repair, Duration::from_secs(300)).await;
    lab.set_up(1).await;
    let before = lab.b1();
    assert!(lab.peer_reaches(1));

    // The power cycle: the agent dies, and with the kernel go every
    // namespace it made and every link it added; the NIC stays.
    lab.stop();
    test_support::run("ip", &["-n", &lab.ns("b1"), "link", "del", "eth0"]);
    lab.delete_made_namespaces();
    lab.host.ip(&["link", "del", "lh-net77"]);
    lab.host.ip(&["link", "set", "up0", "promisc", "off"]);
    assert!(lab.b1().is_null());

    lab.start(Policy::Repair, Duration::from_secs(300)).await;
    let after = lab.b1();
    assert_eq!(after["address"], before["address"], "the same MAC");
    assert_eq!(addresses(&after), ["10.77.0.11/24"]);
    assert_eq!(after["linkinfo"]["info_data"]["mode"], "bridge");
    assert_eq!(
        addresses(&lab.host_link("lh-net77")),
        [format!("{ACCESS}/24")]
    );
    let flags = lab.host_link("up0")["flags"].to_string();
    assert!(flags.contains("PROMISC"), "{flags}");
    assert!(lab.peer_reaches(1), "b1 answers on the wire again");
    assert!(lab.peer_reaches(0), "host access answers again");
    assert_eq!(lab.phase("endpoint net77/b1").await.0, "in_sync");
    let restored = audit_records(lab.dir.path(), "restore", 3).await;
    assert_eq!(restored.len(), 3, "{restored:?}");
}

#[tokio::test]
async fn each_fault_made_by_hand_is_repaired() {
    let Some(mut lab) = Lab::new("cv-fault") else {
        return;
    };
    // A one-second periodic pass finds what no kernel event reports (a
    // change inside an endpoint's namespace that leaves its link in place).
    lab.start(Policy::Repair, Duration::from_secs(1)).await;
    lab.set_up(5).await;
    let macs: Vec<serde_json::Value> = (1..=5).map(|k| lab.ep(k)["address"].clone()).collect();
    let ep_ok = |lab: &Lab, k: u8| {
        let l = lab.ep(k);
        l["address"] == macs[usize::from(k) - 1]
            && addresses(&l) == [format!("10.77.0.1{k}/24")]
            && l["flags"].to_string().contains("\"UP\"")
            && l["mtu"] == 1500
    };
    let in_ep = |k: u8, args: &[&str]| {
        let ns = lab.ns(&format!("b{k}"));
        let mut full = vec!["-n", ns.as_str()];
        full.extend_from_slice(args);
        test_support::run("ip", &full);
    };
    let mut times = Vec::new();
    // One fault per endpoint: five repairs of one object in a row would
    // be a fight (see the fight test).
    in_ep(1, &["link", "del", "eth0"]);
    times.push(until("endpoint deleted", || ep_ok(&lab, 1)).await);
    in_ep(2, &["addr", "flush", "dev", "eth0"]);
    times.push(until("address removed", || ep_ok(&lab, 2)).await);
    in_ep(3, &["link", "set", "eth0", "down"]);
    times.push(until("endpoint set down", || ep_ok(&lab, 3)).await);
    in_ep(4, &["link", "set", "eth0", "mtu", "1400"]);
    times.push(until("mtu changed", || ep_ok(&lab, 4)).await);
    test_support::run("ip", &["netns", "del", &lab.ns("b5")]);
    times.push(until("namespace deleted", || ep_ok(&lab, 5)).await);
    lab.host.ip(&["link", "del", "lh-net77"]);
    times.push(
        until("host access deleted", || {
            lab.host_link("lh-net77").is_object()
        })
        .await,
    );
    lab.host.ip(&["link", "set", "up0", "promisc", "off"]);
    let promisc = || {
        lab.host_link("up0")["flags"]
            .to_string()
            .contains("PROMISC")
    };
    times.push(until("promisc turned off", promisc).await);
    for k in 1..=5 {
        assert!(lab.peer_reaches(k), "b{k}");
    }

    // The NIC itself goes and comes back with another index.
    let old_index = lab.host_link("up0")["ifindex"].clone();
    lab.host.ip(&["link", "del", "up0"]);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (phase, detail) = lab.phase("endpoint net77/b1").await;
    assert_eq!(phase, "waiting", "{detail}");
    assert!(detail.contains("parent up0 is missing"), "{detail}");
    lab.plug_nic();
    assert_ne!(lab.host_link("up0")["ifindex"], old_index);
    let all_back = || (1..=5).all(|k| ep_ok(&lab, k)) && lab.peer_reaches(1);
    times.push(until("parent deleted and re-created", all_back).await);
    let access_back = || lab.host_link("lh-net77").is_object();
    times.push(until("host access after the parent is back", access_back).await);
    let promisc = || {
        lab.host_link("up0")["flags"]
            .to_string()
            .contains("PROMISC")
    };
    times.push(until("promisc on the new parent", promisc).await);

    // Down and up: nothing of linkherd's goes; traffic comes back with it.
    lab.host.ip(&["link", "set", "up0", "down"]);
    assert!(!lab.peer_reaches(1));
    lab.host.ip(&["link", "set", "up0", "up"]);
    until("parent set down and up", || lab.peer_reaches(1)).await;

    assert!(
        times.iter().all(|t| *t < Duration::from_secs(5)),
        "{times:?}"
    );
    // Every object's last repair worked. A namespace deleted by hand is
    // torn down by the kernel a moment later (its cleanup is deferred):
    // until then the old link holds the MAC and a first try may be refused,
    // and the retry a second later makes it.
    let repairs = audit_records(lab.dir.path(), "repair", 8).await;
    let mut last: std::collections::BTreeMap<String, String> = Default::default();
    for r in &repairs {
        let result = r["result"].as_str().unwrap_or("").to_owned();
        assert!(result == "ok" || result.contains("already in use"), "{r}");
        last.insert(r["target"].to_string(), result);
    }
    assert!(last.values().all(|r| r == "ok"), "{last:?}");
}

#[tokio::test]
async fn a_foreign_link_beside_owned_ones_is_never_touched() {
    let Some(mut lab) = Lab::new("cv-foreign") else {
        return;
    };
    lab.start(Policy::Repair, Duration::from_secs(1)).await;
    lab.set_up(1).await;
    lab.host
        .ip(&["link", "add", "foreign0", "link", "up0", "type", "macvlan"]);
    lab.host.ip(&["link", "set", "foreign0", "down"]);
    let before = lab.host_link("foreign0");
    test_support::run("ip", &["-n", &lab.ns("b1"), "link", "del", "eth0"]);
    until("endpoint deleted", || lab.b1().is_object()).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = lab.host_link("foreign0");
    assert_eq!(after["ifindex"], before["ifindex"]);
    assert_eq!(after["flags"], before["flags"], "still down");
    assert_eq!(after["address"], before["address"]);
}

#[tokio::test]
async fn report_mode_lists_the_drift_and_changes_nothing() {
    let Some(mut lab) = Lab::new("cv-report") else {
        return;
    };
    lab.start(Policy::Report, Duration::from_secs(1)).await;
    lab.set_up(1).await;
    test_support::run("ip", &["-n", &lab.ns("b1"), "link", "del", "eth0"]);
    lab.host.ip(&["link", "set", "up0", "promisc", "off"]);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (phase, detail) = lab.phase("endpoint net77/b1").await;
    assert_eq!(phase, "drifted");
    assert!(detail.starts_with("missing"), "{detail}");
    assert_eq!(lab.phase("promisc up0").await.0, "drifted");
    assert!(lab.b1().is_null(), "nothing changed");
    assert!(
        !lab.host_link("up0")["flags"]
            .to_string()
            .contains("PROMISC")
    );
}

#[tokio::test]
async fn a_fight_with_another_tool_ends_fighting_after_a_bounded_number_of_repairs() {
    let Some(mut lab) = Lab::new("cv-fight") else {
        return;
    };
    lab.start(Policy::Repair, Duration::from_secs(300)).await;
    lab.set_up(1).await;
    let ns = lab.ns("b1");
    // Another tool deletes b1's link every 200 ms for 15 s.
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end {
        let _ = std::process::Command::new("ip")
            .args(["-n", &ns, "link", "del", "eth0"])
            .output();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (phase, detail) = lab.phase("endpoint net77/b1").await;
    assert_eq!(phase, "fighting", "{detail}");
    assert!(detail.contains("undone each time"), "{detail}");
    let repairs = audit_records(lab.dir.path(), "repair", 4).await;
    let of_b1 = repairs
        .iter()
        .filter(|r| r["target"] == "endpoint net77/b1")
        .count();
    assert!((4..=5).contains(&of_b1), "{of_b1} repairs: {repairs:?}");
    let fights = audit_records(lab.dir.path(), "fighting", 1).await;
    assert_eq!(fights[0]["target"], "endpoint net77/b1");
    // It backs off for minutes: still gone a while after the fight.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(lab.b1().is_null());
}
