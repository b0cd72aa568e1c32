//! Issue 11, fault injection (root only): an agent SIGKILLed at any point of
//! a multi-step apply leaves the host, after it restarts, exactly as it was
//! before the apply — `ip -j` in the host namespace and in every namespace
//! the agent manages.
//!
//! The apply runs in a child process (this test binary run again with
//! `LH_CRASH_CHILD=k`), whose agent has a fault hook (feature `faults`)
//! that SIGKILLs the process at the k-th point of the transaction: each
//! undo batch made durable, each change made in the kernel. k goes from 1
//! until the child finishes the apply (and exits without confirming it,
//! the last case). After each child the parent starts an agent on the same
//! state directory, which rolls back what the journal records.
//!
//! `harness = false`: the test must own its process to be killed in it.

use linkherd_agent::testing;

use std::{
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use linkherd_agent::testing::Pki;
use linkherd_agent::{app::AgentOptions, faults::Faults, net::rtnl::Rtnl};
use linkherd_proto::{
    model::Role,
    pb::{self, host_service_client::HostServiceClient, netns_target::Target},
};
use serde_json::{Value, json};
use test_support::{TestNetns, have_root};

const NAME: &str = "a_kill_at_every_point_of_an_apply_leaves_the_host_as_it_was";

fn main() {
    if let Ok(k) = std::env::var("LH_CRASH_CHILD") {
        child(k.parse().expect("LH_CRASH_CHILD is a number"));
        return;
    }
    // `cargo test FILTER` passes the filter on; honour it like libtest.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if !filters.is_empty() && !filters.iter().any(|f| NAME.contains(f.as_str())) {
        println!("test result: ok. 0 passed; 1 filtered out");
        return;
    }
    if !have_root(NAME) {
        return;
    }
    parent();
    println!("test {NAME} ... ok\n\ntest result: ok. 1 passed; 0 failed");
}

/// Where the child finds its lab: the host namespace, the state directory
/// and the prefix of the namespaces its agent manages.
struct Place {
    host: PathBuf,
    state: PathBuf,
    prefix: String,
}

impl Place {
    fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is set"));
        Self {
            host: var("LH_CRASH_HOST").into(),
            state: var("LH_CRASH_STATE").into(),
            prefix: var("LH_CRASH_PREFIX"),
        }
    }

    fn options(&self, faults: Faults) -> AgentOptions {
        AgentOptions {
            state_dir: Some(self.state.clone()),
            host_name: Some("crash-host".into()),
            netns_prefix: self.prefix.clone(),
            faults,
            ..Default::default()
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn endpoint(name: &str, ns: &str, cidr: &str) -> pb::MacvlanEndpoint {
    pb::MacvlanEndpoint {
        network: "crash".into(),
        name: name.into(),
        parent: "up0".into(),
        mode: pb::MacvlanMode::Bridge.into(),
        netns: Some(pb::NetnsTarget {
            target: Some(Target::Name(ns.into())),
        }),
        ifname: "eth0".into(),
        addresses: vec![cidr.into()],
        gateway: "10.77.0.1".into(),
        ..Default::default()
    }
}

fn host_access(routes: &[&str]) -> pb::HostAccess {
    pb::HostAccess {
        network: "crash".into(),
        parent: "up0".into(),
        addresses: vec!["10.77.0.254/32".into()],
        routes: routes.iter().map(|r| (*r).to_owned()).collect(),
        ..Default::default()
    }
}

/// Before: one endpoint and host access routed to it.
fn before() -> pb::DesiredState {
    pb::DesiredState {
        networks: vec!["crash".into()],
        endpoints: vec![endpoint("e0", "c0", "10.77.0.10/24")],
        host_access: vec![host_access(&["10.77.0.10/32"])],
        ..Default::default()
    }
}

/// The apply that is killed: e0 goes (with its namespace), two endpoints
/// in new namespaces come, and host access is replaced.
fn after() -> pb::DesiredState {
    pb::DesiredState {
        networks: vec!["crash".into()],
        endpoints: vec![
            endpoint("e1", "c1", "10.77.0.11/24"),
            endpoint("e2", "c2", "10.77.0.12/24"),
        ],
        host_access: vec![host_access(&["10.77.0.11/32", "10.77.0.12/32"])],
        ..Default::default()
    }
}

async fn apply(
    host: &mut HostServiceClient<tonic::transport::Channel>,
    d: pb::DesiredState,
) -> String {
    let generation = testing::generation(host).await;
    host.apply(pb::ApplyRequest {
        desired: Some(d),
        expected_generation: generation,
        confirm_timeout_seconds: 600,
        address_check_ms: 0,
    })
    .await
    .expect("apply")
    .into_inner()
    .txn_id
}

/// The child: applies [`after`] and is killed at point `k`; when the apply
/// has fewer points it prints how many and exits without confirming.
fn child(k: usize) {
    let place = Place::from_env();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let faults = Faults::new(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) + 1 == k {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
    });
    runtime().block_on(async {
        let pki = Pki::new();
        let net = Arc::new(Rtnl::in_netns(&place.host).expect("netlink"));
        let agent = testing::start_agent_with(net, &pki, place.options(faults)).await;
        let ch = agent.channel(&pki, Some(Role::Admin)).await.expect("admin");
        apply(&mut HostServiceClient::new(ch), after()).await;
    });
    println!("LH_CRASH_POINTS={}", hits.load(Ordering::SeqCst));
    // Exit as a crash would: nothing runs after the apply.
    std::process::exit(0);
}

/// Starts an agent on the state directory (rolling back any journaled
/// transaction) and runs `f` with an admin HostService client.
fn with_agent<F, Fut>(place: &Place, f: F)
where
    F: FnOnce(HostServiceClient<tonic::transport::Channel>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    runtime().block_on(async {
        let pki = Pki::new();
        let net = Arc::new(Rtnl::in_netns(&place.host).expect("netlink"));
        let agent = testing::start_agent_with(net, &pki, place.options(Faults::default())).await;
        let ch = agent.channel(&pki, Some(Role::Admin)).await.expect("admin");
        f(HostServiceClient::new(ch)).await;
    });
}

fn parent() {
    let host = TestNetns::new("crash");
    host.ip(&["link", "add", "up0", "type", "veth", "peer", "name", "up0p"]);
    host.ip(&["link", "set", "up0p", "up"]);
    host.ip(&["link", "set", "up0", "up"]);
    let state = tempfile::tempdir().expect("state dir");
    let place = Place {
        host: host.path(),
        state: state.path().to_owned(),
        prefix: format!("{}-", host.name),
    };
    let _managed = ByPrefix(place.prefix.clone());
    with_agent(&place, |mut h| async move {
        let txn = apply(&mut h, before()).await;
        h.confirm(pb::ConfirmRequest { txn_id: txn })
            .await
            .expect("confirm");
    });
    let want = snapshot(&host.name, &place.prefix);
    assert_eq!(
        want["namespaces"].as_object().map(|o| o.len()),
        Some(1),
        "{want:#}"
    );

    let (mut k, mut changed) = (1, 0);
    loop {
        let out = Command::new(std::env::current_exe().expect("this test"))
            .env("LH_CRASH_CHILD", k.to_string())
            .env("LH_CRASH_HOST", &place.host)
            .env("LH_CRASH_STATE", &place.state)
            .env("LH_CRASH_PREFIX", &place.prefix)
            .output()
            .expect("run the child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let finished = stdout
            .lines()
            .find_map(|l| l.strip_prefix("LH_CRASH_POINTS="));
        match (out.status.signal(), finished) {
            (Some(9), _) => {}
            (None, Some(points)) if out.status.success() => {
                let points: usize = points.parse().expect("points");
                assert!(
                    points >= 8,
                    "the apply has {points} points: too few to mean much"
                );
                assert!(k > points, "finished at k={k} with {points} points");
            }
            _ => panic!(
                "child k={k}: {:?}\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
        }
        assert!(
            journal_files(&place.state) > 0,
            "k={k}: the child left no journal"
        );
        // The comparison below has teeth: most kills leave the host changed.
        if snapshot(&host.name, &place.prefix) != want {
            changed += 1;
        }
        with_agent(&place, |mut h| async move {
            let owned = h.get_state(pb::GetStateRequest {}).await.expect("state");
            let names: Vec<String> = owned
                .into_inner()
                .owned
                .unwrap_or_default()
                .endpoints
                .into_iter()
                .map(|e| e.name)
                .collect();
            assert_eq!(names, ["e0"], "k={k}");
        });
        let got = snapshot(&host.name, &place.prefix);
        assert_eq!(
            got, want,
            "killed at point {k}: the host differs after restart"
        );
        assert_eq!(
            journal_files(&place.state),
            0,
            "k={k}: the journal is not empty"
        );
        eprintln!("killed at point {k}: restored");
        if finished.is_some() {
            assert!(
                changed * 2 >= k,
                "only {changed} of {k} kills had changed the host"
            );
            break;
        }
        k += 1;
    }
}

/// Undo batches left on disk.
fn journal_files(state: &Path) -> usize {
    std::fs::read_dir(state.join("txn"))
        .map(|d| d.flatten().filter(|e| e.path().is_file()).count())
        .unwrap_or(0)
}

/// The links, addresses and routes of the host namespace and of every
/// namespace named with `prefix`, without what the kernel renumbers
/// (ifindex) or counts.
fn snapshot(host: &str, prefix: &str) -> Value {
    let mut namespaces = serde_json::Map::new();
    let listed = test_support::run("ip", &["-j", "netns", "list"]);
    let listed: Value = serde_json::from_str(if listed.trim().is_empty() {
        "[]"
    } else {
        &listed
    })
    .expect("netns list");
    for ns in listed.as_array().into_iter().flatten() {
        let Some(name) = ns["name"].as_str() else {
            continue;
        };
        if let Some(short) = name.strip_prefix(prefix) {
            namespaces.insert(short.to_owned(), namespace(name));
        }
    }
    json!({ "host": namespace(host), "namespaces": namespaces })
}

fn ip_json(ns: &str, args: &[&str]) -> Vec<Value> {
    let mut full = vec!["-n", ns, "-j", "-d"];
    full.extend_from_slice(args);
    let out = test_support::run("ip", &full);
    serde_json::from_str::<Vec<Value>>(&out).unwrap_or_default()
}

fn namespace(ns: &str) -> Value {
    let links: Vec<Value> = ip_json(ns, &["link", "show"])
        .into_iter()
        .map(|l| {
            json!({
                "name": l["ifname"], "kind": l["linkinfo"]["info_kind"],
                "mode": l["linkinfo"]["info_data"]["mode"], "mac": l["address"],
                "alias": l["ifalias"], "mtu": l["mtu"], "up": l["flags"].to_string().contains("\"UP\""),
            })
        })
        .collect();
    let addrs: Vec<Value> = ip_json(ns, &["addr", "show"])
        .into_iter()
        .flat_map(|l| {
            let dev = l["ifname"].clone();
            l["addr_info"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|a| a["scope"] != "link")
                .map(move |a| json!({"dev": dev, "addr": a["local"], "len": a["prefixlen"]}))
        })
        .collect();
    let routes: Vec<Value> = ip_json(ns, &["route", "show"])
        .into_iter()
        .map(|r| json!({"dst": r["dst"], "via": r["gateway"], "dev": r["dev"]}))
        .collect();
    json!({ "links": sorted(links), "addrs": sorted(addrs), "routes": sorted(routes) })
}

/// In a fixed order: the kernel lists by ifindex, which a re-created link
/// changes.
fn sorted(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by_key(|x| x.to_string());
    v
}

/// Deletes every namespace named with the prefix, on failure too.
struct ByPrefix(String);

impl Drop for ByPrefix {
    fn drop(&mut self) {
        let listed = test_support::run("ip", &["netns", "list"]);
        for line in listed.lines() {
            if let Some(name) = line.split_whitespace().next()
                && name.starts_with(&self.0)
            {
                let _ = Command::new("ip").args(["netns", "del", name]).status();
            }
        }
    }
}
