//! Root inside a container against the agent, on the real kernel (issue
//! 25, root only). The tenant's namespace is one the agent looks into (its
//! prefix, as every /run/netns name is for an agent started without one);
//! the tenant reads the agent's id from its own `eth0` and forges marks:
//! one over every name bound, one with terminal escapes, a valid-looking
//! endpoint, and 2,000 more. None of it is adopted, recorded, listed,
//! planned or able to slow a read; what the agent made stays its own.

use std::time::{Duration, Instant};

use linkherd_agent::testing::RunningAgent;
use linkherd_proto::{
    model::Role,
    pb::{
        self, attachment_service_client::AttachmentServiceClient,
        host_service_client::HostServiceClient, macvlan_service_client::MacvlanServiceClient,
        netns_target::Target,
    },
};
use test_support::{TestNetns, have_root};
use tonic::{Code, transport::Channel};

use crate::attach::{Host, agent, attach, host, put_catalog};

fn t1(ns: &str) -> pb::MacvlanEndpoint {
    pb::MacvlanEndpoint {
        network: "mac_net".into(),
        name: "t1".into(),
        parent: "up0".into(),
        mode: pb::MacvlanMode::Bridge.into(),
        netns: Some(pb::NetnsTarget {
            target: Some(Target::Name(ns.into())),
        }),
        addresses: vec!["10.78.0.10/24".into()],
        ..Default::default()
    }
}

/// What root in the tenant's namespace does: read the agent's id from its
/// own `eth0` alias, then forge marks with it.
fn forge(tenant: &TestNetns) {
    let eth0 = tenant.link_json("eth0");
    let alias = eth0["ifalias"].as_str().expect("eth0 carries the mark");
    let id = alias.rsplit("agent=").next().expect("the agent's id");
    let mark = |net: &str, name: &str| format!("linkherd:v1 ep net={net} name={name} agent={id}");
    let long = "~".repeat(100);
    let forged = [
        ("fg0", mark(&long, &long)),
        ("fg1", mark("mac_net", "ghost\u{1b}[2J\r")),
        ("fg2", mark("mac_net", "ghost2")),
    ];
    for (ifname, alias) in forged {
        tenant.ip(&[
            "link", "add", ifname, "link", "eth0", "type", "macvlan", "mode", "bridge",
        ]);
        tenant.ip(&["link", "set", ifname, "alias", &alias]);
    }
    let mut lines = String::new();
    // 2,000 more, not macvlans (this kernel has no dummy: veth pairs).
    for i in 0..1000 {
        lines.push_str(&format!("link add fa{i} type veth peer name fb{i}\n"));
        for end in ["fa", "fb"] {
            let alias = mark("mac_net", &format!("g{end}{i}"));
            lines.push_str(&format!("link set {end}{i} alias \"{alias}\"\n"));
        }
    }
    let file = tempfile::NamedTempFile::new().expect("batch file");
    std::fs::write(file.path(), lines).expect("write batch");
    tenant.ip(&["-batch", &file.path().display().to_string()]);
}

async fn clients(
    h: &Host,
    running: &RunningAgent,
) -> (
    MacvlanServiceClient<Channel>,
    HostServiceClient<Channel>,
    AttachmentServiceClient<Channel>,
) {
    let ch = running
        .channel(&h.pki, Some(Role::Admin))
        .await
        .expect("admin");
    (
        MacvlanServiceClient::new(ch.clone()),
        HostServiceClient::new(ch.clone()),
        AttachmentServiceClient::new(ch),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenants_forged_marks_decide_nothing() {
    if !have_root("a tenant's forged marks") {
        return;
    }
    let h = host();
    let running = agent(&h).await;
    let (mut mv, mut hs, _) = clients(&h, &running).await;
    let tenant = TestNetns::guard(format!("{}-tenant", h.ns.name));
    test_support::run("ip", &["netns", "add", &tenant.name]);
    let req = |e| pb::CreateMacvlanRequest {
        endpoint: Some(e),
        create_netns: false,
    };
    mv.create(req(t1("tenant")))
        .await
        .expect("the tenant's endpoint");
    forge(&tenant);

    // A read answers, fast, with only what the agent made (it was INTERNAL
    // "File name too long" for fg0, and 3.7 s with the 2,000).
    let t = Instant::now();
    let list = mv
        .list(pb::ListMacvlansRequest {})
        .await
        .expect("list")
        .into_inner();
    let took = t.elapsed();
    let names: Vec<_> = list
        .endpoints
        .iter()
        .map(|e| (e.network.as_str(), e.name.as_str()))
        .collect();
    assert_eq!(names, [("mac_net", "t1")]);
    assert!(
        took < Duration::from_secs(1),
        "a list took {took:?} beside 2,000 forged links"
    );
    let state = hs
        .get_state(pb::GetStateRequest {})
        .await
        .expect("state")
        .into_inner();
    let owned: Vec<_> = state
        .owned
        .expect("owned")
        .endpoints
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(owned, ["t1"]);
    let plan = hs
        .plan(pb::PlanRequest {
            desired: Some(pb::DesiredState {
                endpoints: vec![t1("tenant")],
                ..Default::default()
            }),
        })
        .await
        .expect("plan")
        .into_inner();
    assert!(
        plan.changes.is_empty(),
        "forged endpoints planned: {:?}",
        plan.changes
    );
    let mut records: Vec<String> = std::fs::read_dir(h.state.path().join("endpoints"))
        .expect("records")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    records.sort();
    assert_eq!(records, ["mac_net+t1.json"], "a read wrote records");

    // Deleting a forged one by where it is: a mark is no record.
    let err = mv
        .delete(pb::DeleteMacvlanRequest {
            netns: Some(pb::NetnsTarget {
                target: Some(Target::Name("tenant".into())),
            }),
            ifname: "fg2".into(),
            ..Default::default()
        })
        .await
        .expect_err("not recorded");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().starts_with(
            "fg2 in netns tenant (a bridge macvlan) carries this agent's mark but is not in its records"
        ),
        "{}",
        err.message()
    );
    an_attach_does_not_wait_behind_reads(&h, &running).await;
}

/// A container's attach while reads run back to back beside the forged
/// links, against one on an idle agent (it waited 4.1 s).
async fn an_attach_does_not_wait_behind_reads(h: &Host, running: &RunningAgent) {
    let (mv, mut hs, mut att) = clients(h, running).await;
    put_catalog(&mut hs).await;
    let (c1, c2) = (TestNetns::new("ten-c1"), TestNetns::new("ten-c2"));
    let t = Instant::now();
    att.attach(attach(&c1, "ten1", &[]))
        .await
        .expect("idle attach");
    let idle = t.elapsed();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (mut mv, stop) = (mv.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    mv.list(pb::ListMacvlansRequest {}).await.expect("list");
                    n += 1;
                }
                n
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    att.attach(attach(&c2, "ten2", &[]))
        .await
        .expect("busy attach");
    let busy = t.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut reads = 0;
    for r in readers {
        reads += r.await.expect("reader");
    }
    eprintln!("attach idle {idle:?}, beside {reads} reads {busy:?}");
    assert!(reads > 0, "no read ran beside the attach");
    assert!(
        busy < idle * 4 + Duration::from_secs(1),
        "an attach took {busy:?} beside reads, {idle:?} idle"
    );
}

/// Issue 25, problem 6: CNI ADD with the agent's own namespace as
/// CNI_NETNS put a macvlan, an address and a default route on the host;
/// Docker's Join took any absolute SandboxKey. Here the lab host's
/// namespace stands for the host's (it is the agent's): by its file, and
/// by a process living in it, it is refused; so are a FIFO, a device and
/// a regular file as a sandbox; and nothing is made.
#[tokio::test(flavor = "multi_thread")]
async fn nothing_is_attached_into_the_hosts_own_namespace() {
    if !have_root("attaching into the host's namespace") {
        return;
    }
    let h = host();
    let running = agent(&h).await;
    let (_, mut hs, mut att) = clients(&h, &running).await;
    put_catalog(&mut hs).await;
    let mut resident = std::process::Command::new("ip")
        .args(["netns", "exec", &h.ns.name, "sleep", "30"])
        .spawn()
        .expect("a process in the host namespace");
    let pid = resident.id();
    let by_pid = std::path::PathBuf::from(format!("/proc/{pid}/ns/net"));
    let deadline = Instant::now() + Duration::from_secs(3);
    let same = |a: &std::path::Path, b: &std::path::Path| {
        let id = linkherd_agent::net::netns::identity;
        id(a).ok().is_some_and(|x| id(b).ok() == Some(x))
    };
    while !same(&by_pid, &h.ns.path()) {
        assert!(
            Instant::now() < deadline,
            "the process never entered the namespace"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    for (i, file) in [h.ns.path(), by_pid].into_iter().enumerate() {
        let mut req = attach(&h.ns, &format!("own{i}"), &[]);
        req.netns = file.display().to_string();
        let err = att.attach(req).await.expect_err("the host's namespace");
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message()
                .contains("is the host's own network namespace (net:["),
            "{}",
            err.message()
        );
    }
    let _ = resident.kill();
    let _ = resident.wait();
    let macvlans = h.ns.ip(&["-j", "link", "show", "type", "macvlan"]);
    assert_eq!(
        macvlans.trim(),
        "[]",
        "a macvlan was made on the host: {macvlans}"
    );
    let routes = h.ns.ip(&["-j", "route", "show", "default"]);
    assert_eq!(
        routes.trim(),
        "[]",
        "a default route was set on the host: {routes}"
    );
    docker_sandboxes_must_be_containers(&h, &running).await;
}

/// Docker's Join, on the plugin socket of the same agent: a SandboxKey that
/// is there must be a network namespace and not the host's.
async fn docker_sandboxes_must_be_containers(h: &Host, running: &RunningAgent) {
    let dir = tempfile::tempdir().expect("dir");
    let sock = dir.path().join("linkherd.sock");
    let listener = linkherd_agent::transport::unix::bind_unix(&sock).expect("bind");
    let serving = running.agent.clone();
    tokio::spawn(async move { serving.serve_docker(listener, std::future::pending()).await });
    let call = |method: &'static str, body: serde_json::Value| {
        let sock = sock.clone();
        async move {
            linkherd_agent::testing::plugin_call(&sock, method, &body.to_string())
                .await
                .1
        }
    };
    let net_id = "a".repeat(64);
    let ep_id = "b".repeat(64);
    let made = call(
        "NetworkDriver.CreateNetwork",
        serde_json::json!({"NetworkID": net_id, "Options": {"com.docker.network.generic": {"parent": "up0"}},
            "IPv4Data": [{"AddressSpace": "linkherd", "Gateway": "10.77.0.1/24", "Pool": "10.77.0.0/24"}]}),
    )
    .await;
    assert!(made.get("Err").is_none(), "{made}");
    let made = call(
        "NetworkDriver.CreateEndpoint",
        serde_json::json!({"NetworkID": net_id, "EndpointID": ep_id, "Interface": {"Address": "10.77.0.20/24"}}),
    )
    .await;
    assert!(made.get("Err").is_none(), "{made}");
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRUSR).expect("fifo");
    let plain = dir.path().join("plain");
    std::fs::write(&plain, b"not a namespace").expect("file");
    let host_ns = h.ns.path().display().to_string();
    for (sandbox, want) in [
        (host_ns.as_str(), "is the host's own network namespace"),
        (fifo.to_str().expect("utf-8"), "is not a network namespace"),
        ("/dev/zero", "is not a network namespace"),
        (plain.to_str().expect("utf-8"), "is not a network namespace"),
    ] {
        let v = call(
            "NetworkDriver.Join",
            serde_json::json!({"NetworkID": net_id, "EndpointID": ep_id, "SandboxKey": sandbox}),
        )
        .await;
        let err = v["Err"]
            .as_str()
            .unwrap_or_else(|| panic!("{sandbox} joined: {v}"));
        assert!(err.contains(want), "{sandbox}: {err}");
    }
    let links = h.ns.ip(&["-j", "link", "show", "type", "macvlan"]);
    assert_eq!(links.trim(), "[]", "a sandbox link was made: {links}");
    // Docker's own order: Join comes before the container's namespace is
    // bound at its SandboxKey, so a key with nothing there yet is taken.
    let later = dir.path().join("netns-to-come");
    let v = call(
        "NetworkDriver.Join",
        serde_json::json!({"NetworkID": net_id, "EndpointID": ep_id, "SandboxKey": later}),
    )
    .await;
    assert!(v.get("Err").is_none(), "{v}");
    let links = h.ns.ip(&["-j", "link", "show", "type", "macvlan"]);
    assert!(
        links.contains("\"ifname\":\"lh"),
        "the link for Docker to move: {links}"
    );
}
