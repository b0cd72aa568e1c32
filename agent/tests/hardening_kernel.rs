//! Issue 11, problems 5, 6 and 11, against the real kernel (root only):
//! the namespaces callers name are opened safely and only managed ones are
//! open to operators; probes have a budget and a deadline; agents sharing
//! a kernel keep to their own links.
//!
//! Each test runs its agent on a runtime whose threads all live inside a
//! private namespace (as an agent started with `--netns` does), so the
//! agent's own namespace is the test's, and /proc/1/ns/net — the host's —
//! is one it does not manage. Traffic stays in the test's namespaces.

use linkherd_agent::testing;

use std::{
    future::Future,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use linkherd_agent::net::{netns, rtnl::Rtnl};
use linkherd_agent::testing::Pki;
use linkherd_proto::{
    model::{Owner, Role},
    pb::{
        self, host_service_client::HostServiceClient, macvlan_service_client::MacvlanServiceClient,
        netns_target::Target, probe_service_client::ProbeServiceClient,
    },
};
use test_support::{TestNetns, have_root};
use tonic::{Code, transport::Channel};

/// Runs `test` on a runtime whose every thread is inside the namespace at
/// `ns`; a panic in it fails the calling test.
fn run_inside<F, Fut>(ns: PathBuf, test: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let res = std::thread::spawn(move || {
        netns::enter_for_good(&ns).expect("enter the agent's namespace");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(test())));
        // Not a plain drop, which waits for every blocking thread: a
        // thread stuck for ever (a FIFO opened without O_NONBLOCK) must
        // fail the test, not hang it.
        rt.shutdown_timeout(Duration::from_secs(2));
        if let Err(panic) = res {
            std::panic::resume_unwind(panic);
        }
    })
    .join();
    if let Err(panic) = res {
        std::panic::resume_unwind(panic);
    }
}

struct Lab {
    host: TestNetns,
    pki: Pki,
    state: tempfile::TempDir,
    agent: testing::RunningAgent,
}

impl Lab {
    /// An agent whose own namespace is `host` (with a veth `up0` to be
    /// the endpoints' parent), keeping its state in a temporary directory.
    async fn start(host: TestNetns) -> Self {
        host.ip(&["link", "add", "up0", "type", "veth", "peer", "name", "up0p"]);
        host.ip(&["link", "set", "up0p", "up"]);
        host.ip(&["link", "set", "up0", "up"]);
        Self::beside(host).await
    }

    /// An agent on `host` as it is, with a state directory of its own.
    async fn beside(host: TestNetns) -> Self {
        let pki = Pki::new();
        let state = tempfile::tempdir().expect("state dir");
        let opts = linkherd_agent::app::AgentOptions {
            state_dir: Some(state.path().to_owned()),
            host_name: Some("test-host".into()),
            netns_prefix: format!("{}-", host.name),
            ..Default::default()
        };
        let net = Arc::new(Rtnl::in_netns(host.path()).expect("netlink"));
        let agent = testing::start_agent_with(net, &pki, opts).await;
        Self {
            host,
            pki,
            state,
            agent,
        }
    }

    async fn channel(&self, role: Role) -> Channel {
        self.agent
            .channel(&self.pki, Some(role))
            .await
            .expect("channel")
    }

    async fn probe(&self, role: Role) -> ProbeServiceClient<Channel> {
        ProbeServiceClient::new(self.channel(role).await)
    }

    async fn macvlan(&self) -> MacvlanServiceClient<Channel> {
        MacvlanServiceClient::new(self.channel(Role::Admin).await)
    }

    fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.state.path().join("audit.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit json"))
            .collect()
    }

    /// The audit records once `done` holds for them: the log is written
    /// behind the requests, so a record may land a little after its answer.
    async fn audit_until(
        &self,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let records = self.audit();
            if done(&records) || Instant::now() > deadline {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Problem 11: two agents on one kernel that scan the same namespaces (as
/// two agents without `--netns-prefix` do) each took the other's endpoints
/// for their own — listed, recorded, and deleted by an apply that spoke
/// for the network. The mark names the agent; the other one leaves it be.
#[test]
fn an_agent_never_takes_another_agents_endpoints() {
    if !have_root("hk-two") {
        return;
    }
    let host = TestNetns::new("hk-two");
    let (path, name) = (host.path(), host.name.clone());
    // Where the first agent's endpoint namespace will be, deleted by name
    // whatever happens.
    let ep_ns = TestNetns::guard(format!("{name}-o1"));
    run_inside(path, move || async move {
        let a = Lab::start(host).await;
        // The second agent's guard deletes the shared namespace too, once
        // both are done (a second delete is a no-op).
        let b = Lab::beside(TestNetns::guard(name.clone())).await;
        let mut req = endpoint_in(
            Some(pb::NetnsTarget {
                target: Some(Target::Name("o1".into())),
            }),
            "o1",
            "10.75.0.1/24",
        );
        req.create_netns = true;
        a.macvlan().await.create(req).await.expect("a's endpoint");
        let alias = ep_ns.link_json("eth0")["ifalias"].clone();
        let a_id = a.agent.agent.context().host.agent().id().to_owned();
        assert_eq!(
            alias,
            format!("linkherd:v1 ep net=hard name=o1 agent={a_id}").as_str()
        );

        let mut bm = b.macvlan().await;
        let listed = bm
            .list(pb::ListMacvlansRequest {})
            .await
            .expect("list")
            .into_inner();
        assert!(
            listed.endpoints.is_empty(),
            "b lists a's: {:?}",
            listed.endpoints
        );
        let mut bh = HostServiceClient::new(b.channel(Role::Admin).await);
        let owned = bh
            .get_state(pb::GetStateRequest {})
            .await
            .expect("state")
            .into_inner();
        assert!(owned.owned.unwrap_or_default().endpoints.is_empty());
        // An apply that speaks for the network plans nothing of a's.
        let plan = bh
            .plan(pb::PlanRequest {
                desired: Some(pb::DesiredState {
                    networks: vec!["hard".into()],
                    ..Default::default()
                }),
            })
            .await
            .expect("plan")
            .into_inner();
        assert!(plan.changes.is_empty(), "{:?}", plan.changes);
        let forced = bm
            .delete(pb::DeleteMacvlanRequest {
                netns: Some(pb::NetnsTarget {
                    target: Some(Target::Name("o1".into())),
                }),
                ifname: "eth0".into(),
                force: true,
                ..Default::default()
            })
            .await
            .expect_err("b deletes a's link");
        assert_eq!(forced.code(), Code::FailedPrecondition);
        assert!(
            forced
                .message()
                .contains(&format!("another linkherd agent ({a_id})")),
            "{}",
            forced.message()
        );
        // Still there, still a's.
        let mut am = a.macvlan().await;
        let mine = am
            .list(pb::ListMacvlansRequest {})
            .await
            .expect("list")
            .into_inner();
        assert_eq!(mine.endpoints.len(), 1);
        assert_eq!(ep_ns.link_json("eth0")["ifalias"], alias);
        am.delete(pb::DeleteMacvlanRequest {
            network: "hard".into(),
            name: "o1".into(),
            ..Default::default()
        })
        .await
        .expect("a deletes its own");
        drop(b);
    });
}

fn path_target(p: &Path) -> Option<pb::NetnsTarget> {
    Some(pb::NetnsTarget {
        target: Some(Target::Path(p.display().to_string())),
    })
}

fn endpoint_in(netns: Option<pb::NetnsTarget>, name: &str, cidr: &str) -> pb::CreateMacvlanRequest {
    pb::CreateMacvlanRequest {
        endpoint: Some(pb::MacvlanEndpoint {
            network: "hard".into(),
            name: name.into(),
            parent: "up0".into(),
            mode: pb::MacvlanMode::Bridge.into(),
            netns,
            ifname: "eth0".into(),
            addresses: vec![cidr.into()],
            ..Default::default()
        }),
        create_netns: false,
    }
}

fn ping_req(
    source: Option<pb::NetnsTarget>,
    to: &str,
    count: u32,
    interval_ms: u32,
) -> pb::PingRequest {
    pb::PingRequest {
        source,
        destination: to.into(),
        count,
        interval_ms,
        timeout_ms: 500,
        ..Default::default()
    }
}

/// Every event of a ping: its replies' count and the summary.
async fn ping_all(
    probe: &mut ProbeServiceClient<Channel>,
    req: pb::PingRequest,
) -> Result<pb::PingSummary, tonic::Status> {
    let mut stream = probe.ping(req).await?.into_inner();
    while let Some(msg) = futures::StreamExt::next(&mut stream).await {
        if let pb::ping_response::Event::Summary(s) = msg?.event.expect("event") {
            return Ok(s);
        }
    }
    panic!("a ping ended without its summary");
}

fn not_a_netns(path: &Path) -> String {
    format!(
        "invalid netns {:?}: is not a network namespace the agent can use; give a network \
         namespace: a name, a process id, or a file such as /run/netns/NAME or /proc/PID/ns/net",
        path.display().to_string()
    )
}

/// Problem 5: a FIFO hung the request for ever (open() blocked with the
/// endpoint registry lock held, so every list timed out). Now it is
/// refused within a second and everything else keeps answering.
#[test]
fn a_fifo_as_namespace_is_refused_at_once_and_the_agent_keeps_answering() {
    if !have_root("hk-fifo") {
        return;
    }
    let host = TestNetns::new("hk-fifo");
    run_inside(host.path(), move || async move {
        let lab = Lab::start(host).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        let mut mv = lab.macvlan().await;
        let started = Instant::now();
        let err = tokio::time::timeout(
            Duration::from_secs(1),
            mv.create(endpoint_in(path_target(&fifo), "f1", "10.71.0.1/24")),
        )
        .await
        .expect("a FIFO must be answered within a second, not hang")
        .expect_err("a FIFO is no namespace");
        assert_eq!(
            (err.code(), err.message()),
            (Code::InvalidArgument, not_a_netns(&fifo).as_str())
        );
        let mut probe = lab.probe(Role::Operator).await;
        let err = tokio::time::timeout(
            Duration::from_secs(1),
            ping_all(
                &mut probe,
                ping_req(path_target(&fifo), "127.0.0.1", 1, 100),
            ),
        )
        .await
        .expect("a ping from a FIFO must be answered within a second")
        .expect_err("a FIFO is no namespace");
        assert_eq!(
            (err.code(), err.message()),
            (Code::InvalidArgument, not_a_netns(&fifo).as_str())
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        // The registry is free: list and host state answer at once.
        let list =
            tokio::time::timeout(Duration::from_secs(2), mv.list(pb::ListMacvlansRequest {}))
                .await
                .expect("macvlan list answers")
                .expect("list");
        assert!(list.into_inner().endpoints.is_empty());
        let mut host = HostServiceClient::new(lab.channel(Role::Viewer).await);
        tokio::time::timeout(
            Duration::from_secs(2),
            host.get_state(pb::GetStateRequest {}),
        )
        .await
        .expect("host state answers")
        .expect("state");
        assert_eq!(
            lab.host
                .ip(&["-j", "link", "show", "type", "macvlan"])
                .trim(),
            "[]"
        );
    });
}

/// Problem 5: open() as root was a file-existence oracle: /etc/shadow and
/// a missing path got different answers. Now both get the same words.
#[test]
fn a_missing_path_and_a_file_that_is_no_namespace_answer_alike() {
    if !have_root("hk-oracle") {
        return;
    }
    let host = TestNetns::new("hk-oracle");
    run_inside(host.path(), move || async move {
        let lab = Lab::start(host).await;
        let shadow = Path::new("/etc/shadow");
        let missing = Path::new("/nonexistent-lh/ns");
        let mut mv = lab.macvlan().await;
        let mut probe = lab.probe(Role::Operator).await;
        let mut answers = Vec::new();
        for p in [shadow, missing] {
            let create = mv
                .create(endpoint_in(path_target(p), "o1", "10.72.0.1/24"))
                .await
                .expect_err("no namespace");
            let ping = ping_all(&mut probe, ping_req(path_target(p), "127.0.0.1", 1, 100))
                .await
                .expect_err("no namespace");
            for s in [&create, &ping] {
                assert_eq!(
                    (s.code(), s.message()),
                    (Code::InvalidArgument, not_a_netns(p).as_str())
                );
            }
            let shown = p.display().to_string();
            answers.push((
                create.message().replace(&shown, "PATH"),
                ping.message().replace(&shown, "PATH"),
            ));
        }
        assert_eq!(
            answers[0], answers[1],
            "the answers must not tell the two apart"
        );
    });
}

/// Problem 5: an operator could probe from any process's namespace
/// (issue: from /proc/1/ns/net). Now
/// only from the agent's own and those it manages (its endpoints', its
/// named ones); an admin may probe from others.
#[test]
fn operators_probe_only_from_namespaces_the_agent_manages() {
    if !have_root("hk-managed") {
        return;
    }
    let host = TestNetns::new("hk-managed");
    let ep = TestNetns::new("hk-managed-ep");
    let stray = TestNetns::new("hk-managed-stray");
    run_inside(host.path(), move || async move {
        let lab = Lab::start(host).await;
        let mut mv = lab.macvlan().await;
        mv.create(endpoint_in(path_target(&ep.path()), "m1", "10.73.0.1/24"))
            .await
            .expect("endpoint in a namespace by path");
        // The record carries the namespace's identity.
        let rec: serde_json::Value = serde_json::from_slice(
            &std::fs::read(lab.state.path().join("endpoints/hard+m1.json")).expect("record"),
        )
        .expect("json");
        let meta = std::fs::metadata(ep.path()).expect("stat");
        assert_eq!(
            rec["netns_id"],
            serde_json::json!({"dev": meta.dev(), "ino": meta.ino()}),
            "{rec}"
        );

        let mut op = lab.probe(Role::Operator).await;
        let mut admin = lab.probe(Role::Admin).await;
        let arp = |source: Option<pb::NetnsTarget>| pb::ArpRequest {
            source,
            interface: "lhnosuch0".into(),
            address: "10.73.0.9".into(),
            timeout_ms: 100,
            free_check: false,
        };
        // A host process's namespace: the test process's main thread
        // stayed in the namespace the test started in (the agent's threads
        // are in `host`), as pid 1 would be outside an agent's --netns.
        let host_ns = PathBuf::from(format!("/proc/{}/ns/net", std::process::id()));
        let host_ns = host_ns.as_path();
        let err = op
            .arp(arp(path_target(host_ns)))
            .await
            .expect_err("operator");
        assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
        assert_eq!(
            err.message(),
            format!(
                "probing from netns {} needs the admin role (operator has operator): it \
                 is not a namespace this agent manages (its own, its named ones, its endpoints')",
                host_ns.display()
            )
        );
        // An admin passes the check (and finds no such interface there).
        let err = admin
            .arp(arp(path_target(host_ns)))
            .await
            .expect_err("admin");
        assert_eq!(
            (err.code(), err.message()),
            (Code::NotFound, "interface \"lhnosuch0\" not found")
        );
        let err = ping_all(
            &mut op,
            ping_req(path_target(&stray.path()), "127.0.0.1", 1, 100),
        )
        .await
        .expect_err("a namespace the agent does not manage");
        assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());

        // From the endpoint's namespace and from its own, it may.
        let s = ping_all(
            &mut op,
            ping_req(path_target(&ep.path()), "10.73.0.1", 2, 50),
        )
        .await
        .expect("ping from the endpoint's namespace");
        assert_eq!((s.sent, s.received), (2, 2));
        let s = ping_all(&mut op, ping_req(None, "127.0.0.1", 1, 50))
            .await
            .expect("ping from the agent's own namespace");
        assert_eq!((s.sent, s.received), (1, 1));

        // Every probe is audited: who, from where, to what, the result.
        let probes: Vec<_> = lab
            .audit_until(|r| {
                r.iter().any(|r| r["result"] == "sent 2, received 2")
                    && r.iter().any(|r| r["action"] == "ProbeService/Arp")
            })
            .await
            .into_iter()
            .filter(|r| {
                r["action"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("ProbeService/"))
            })
            .collect();
        let from_ep = probes
            .iter()
            .find(|r| r["result"] == "sent 2, received 2")
            .expect("the endpoint ping's record");
        assert_eq!(from_ep["caller"], "operator");
        assert_eq!(from_ep["target"], "10.73.0.1");
        assert!(
            from_ep["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with(&format!("ping from netns {}", ep.path().display()))),
            "{from_ep}"
        );
        assert!(
            probes.iter().any(|r| r["action"] == "ProbeService/Arp"
                && r["caller"] == "operator"
                && r["result"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("refused: probing from"))),
            "{probes:?}"
        );
        drop(stray);
    });
}

/// Problem 5: an endpoint found again through a reference that now leads
/// to another namespace (a pid reused, a path re-bound) was taken for the
/// old one. Its recorded identity tells them apart: it is gone.
#[test]
fn an_endpoint_whose_namespace_was_replaced_is_gone() {
    if !have_root("hk-reuse") {
        return;
    }
    let host = TestNetns::new("hk-reuse");
    let ep = TestNetns::new("hk-reuse-ep");
    run_inside(host.path(), move || async move {
        let lab = Lab::start(host).await;
        let mut mv = lab.macvlan().await;
        mv.create(endpoint_in(path_target(&ep.path()), "r1", "10.74.0.1/24"))
            .await
            .expect("endpoint");
        // The same path, another namespace, and in it a macvlan that looks
        // exactly like the endpoint.
        test_support::run("ip", &["netns", "del", &ep.name]);
        test_support::run("ip", &["netns", "add", &ep.name]);
        let h = lab.host.name.clone();
        test_support::run(
            "ip",
            &[
                "-n", &h, "link", "add", "lhr1", "link", "up0", "type", "macvlan", "mode", "bridge",
            ],
        );
        test_support::run("ip", &["-n", &h, "link", "set", "lhr1", "netns", &ep.name]);
        test_support::run(
            "ip",
            &["-n", &ep.name, "link", "set", "lhr1", "name", "eth0"],
        );
        // Marked as this very agent's, so only the namespace's identity
        // tells the impostor apart.
        let alias = lab
            .agent
            .agent
            .context()
            .host
            .agent()
            .mark(&Owner::Endpoint {
                network: "hard".into(),
                name: "r1".into(),
            });
        test_support::run(
            "ip",
            &["-n", &ep.name, "link", "set", "eth0", "alias", &alias],
        );
        let list = mv
            .list(pb::ListMacvlansRequest {})
            .await
            .expect("list")
            .into_inner();
        assert!(
            list.endpoints.is_empty(),
            "an endpoint in a namespace that is not its own: {:?}",
            list.endpoints
        );
    });
}

/// Problem 6: 530 slow pings filled the 512-thread blocking pool and every
/// other request timed out. Now a caller runs at most 32 at once; the rest
/// are refused with the budget named, and other requests answer at once.
#[test]
fn probes_over_budget_are_refused_and_other_requests_still_answer() {
    if !have_root("hk-budget") {
        return;
    }
    let host = TestNetns::new("hk-budget");
    run_inside(host.path(), move || async move {
        let lab = Lab::start(host).await;
        let probe = lab.probe(Role::Operator).await;
        let threads = || std::fs::read_dir("/proc/self/task").expect("tasks").count();
        let before = threads();
        // Slow pings (3 s each), held open.
        let mut streams = Vec::new();
        let mut refused = Vec::new();
        for _ in 0..40 {
            let mut p = probe.clone();
            match p.ping(ping_req(None, "127.0.0.1", 3, 1000)).await {
                Ok(s) => streams.push(s.into_inner()),
                Err(e) => refused.push(e),
            }
        }
        assert_eq!((streams.len(), refused.len()), (32, 8));
        for e in &refused {
            assert_eq!(
                (e.code(), e.message()),
                (
                    Code::ResourceExhausted,
                    "probe budget exhausted: at most 32 probes run at once per caller, and \
                     operator has 32 running; try again when one ends"
                )
            );
        }
        let mut host = HostServiceClient::new(lab.channel(Role::Viewer).await);
        let started = Instant::now();
        tokio::time::timeout(Duration::from_secs(1), host.get_info(pb::GetInfoRequest {}))
            .await
            .expect("GetInfo answers while probes run")
            .expect("info");
        assert!(started.elapsed() < Duration::from_secs(1));
        let grown = threads().saturating_sub(before);
        // Probe threads are bounded by the agent's budget (64), far from
        // the 512 of the blocking pool that other requests need.
        assert!(grown <= 64, "{grown} threads for 32 probes");
        // Another caller has a budget of its own.
        let mut admin = lab.probe(Role::Admin).await;
        let s = ping_all(&mut admin, ping_req(None, "127.0.0.1", 1, 50))
            .await
            .expect("another caller's ping");
        assert_eq!(s.received, 1);
        // When they end, their slots are free again.
        for mut s in streams {
            while futures::StreamExt::next(&mut s).await.is_some() {}
        }
        let mut p = probe.clone();
        ping_all(&mut p, ping_req(None, "127.0.0.1", 1, 50))
            .await
            .expect("a slot is free again");
    });
}

/// Problem 6: 100 concurrent pings at the minimum interval sent 15.5k
/// packets a second. Now one caller's pings share 200 a second, and each
/// ping still ends by its deadline (count × interval + timeout).
#[test]
fn pings_are_paced_by_the_packet_budget_and_end_by_their_deadline() {
    if !have_root("hk-pps") {
        return;
    }
    let host = TestNetns::new("hk-pps");
    run_inside(host.path(), move || async move {
        let lab = Lab::start(host).await;
        let probe = lab.probe(Role::Operator).await;
        let started = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let mut p = probe.clone();
            // Unpaced: 100 packets a second each, 1600 in all.
            set.spawn(async move { ping_all(&mut p, ping_req(None, "127.0.0.1", 100, 10)).await });
        }
        let mut sent = 0;
        let mut received = 0;
        while let Some(s) = set.join_next().await {
            let s = s.expect("task").expect("ping");
            sent += s.sent;
            received += s.received;
        }
        let took = started.elapsed();
        // Deadline: 100 × 10 ms + 500 ms.
        assert!(
            took < Duration::from_millis(3000),
            "the pings took {took:?}"
        );
        let allowed = 200.0 * took.as_secs_f64() + 20.0 + 10.0;
        assert!(
            f64::from(sent) <= allowed,
            "{sent} packets in {took:?}: more than 200 a second"
        );
        assert!(sent >= 100, "the pings sent only {sent}");
        assert!(
            received + 16 >= sent,
            "loopback answers every echo but those sent at a deadline: {received} of {sent}"
        );
    });
}
