//! `linkherd-cni` driven by hand as the CNI specification says (verb and
//! container in the environment, network configuration on stdin) against
//! the agents of a netns lab whose network is open to containers: ADD on
//! each host answers an address of that host's block in the asked version,
//! the two containers reach each other across the lab switch, ADD again is
//! the same, CHECK passes with prevResult, an address asked for is refused
//! by the catalog's rules with the agent's words, or because another
//! machine on the wire answers for it (RFC 5227), the fleet tools show the
//! containers (`get endpoints`, `status`) and prove them (`verify` with
//! `verify.containers`), a container gone without a DEL is reported stale,
//! DEL is idempotent, GC and STATUS work, and an agent that cannot be
//! reached is code 11.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use linkherd_lab::{
    self as lab, HostSpec, LabGuard, LabState, bins,
    fleet::{apply_ok, ctl, rogue, seed_spec, text, write_spec},
    sh::ip,
    traffic::tcp_reaches,
};
use test_support::{TestNetns, have_root};

/// Runs the plugin: (exit code, stdout as JSON or null).
fn cni(
    verb: &str,
    ns: Option<&TestNetns>,
    id: &str,
    conf: &serde_json::Value,
) -> (i32, serde_json::Value) {
    let mut c = Command::new(bins::cni().expect("linkherd-cni built"));
    c.env_clear()
        .env("CNI_COMMAND", verb)
        .env("CNI_CONTAINERID", id)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/nonexistent")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(ns) = ns {
        c.env("CNI_NETNS", ns.path());
    }
    let mut child = c.spawn().expect("run linkherd-cni");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(conf.to_string().as_bytes())
        .expect("write config");
    let out = child.wait_with_output().expect("wait");
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), json)
}

fn conf(version: &str, socket: &Path) -> serde_json::Value {
    serde_json::json!({
        "cniVersion": version,
        "name": "net_a",
        "type": "linkherd-cni",
        "agent_socket": socket,
    })
}

fn socket(state: &LabState, host: &str) -> PathBuf {
    state.host(host).expect("host").socket.clone()
}

fn ip_of(result: &serde_json::Value) -> std::net::IpAddr {
    let cidr = result["ips"][0]["address"].as_str().expect("address");
    cidr.split('/').next().expect("ip").parse().expect("ip")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_plugin_attaches_containers_on_each_host_by_the_spec() {
    if !have_root("the CNI lab") {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cni");
    let state = lab::up(&dir, &HostSpec::seed(), lab::Backend::Netns, true)
        .await
        .expect("lab up");
    let _guard = LabGuard(state.dir.clone());
    let spec = write_spec(
        &state.dir,
        "cni.yaml",
        &seed_spec(
            &state,
            "networks:\n  net_a:\n    subnet: 10.0.100.0/24\n    gateway: 10.0.100.1\n    \
             hosts: [no1, no2]\n    containers: {block: 28}\n",
        ),
    );
    apply_ok(&state, &spec);
    let (s1, s2) = (socket(&state, "no1"), socket(&state, "no2"));
    let (c1, c2, c3) = (
        TestNetns::new("cni-c1"),
        TestNetns::new("cni-c2"),
        TestNetns::new("cni-c3"),
    );

    // ADD on each host: an address of its own block (.16/28 and .32/28;
    // .0/28 holds the gateway), in the configuration's version.
    let (code, r1) = cni("ADD", Some(&c1), "ctr1", &conf("1.0.0", &s1));
    assert_eq!(code, 0, "{r1}");
    assert_eq!(r1["cniVersion"], "1.0.0");
    assert_eq!(r1["ips"][0]["address"], "10.0.100.16/24");
    assert_eq!(r1["ips"][0]["gateway"], "10.0.100.1");
    assert_eq!(
        r1["interfaces"][0]["sandbox"],
        c1.path().display().to_string()
    );
    assert_eq!(
        r1["routes"],
        serde_json::json!([{"dst": "0.0.0.0/0", "gw": "10.0.100.1"}])
    );
    let (code, r2) = cni("ADD", Some(&c2), "ctr2", &conf("0.4.0", &s2));
    assert_eq!(code, 0, "{r2}");
    assert_eq!(
        (
            r2["ips"][0]["address"].as_str(),
            r2["ips"][0]["version"].as_str()
        ),
        (Some("10.0.100.32/24"), Some("4"))
    );
    let reached = tcp_reaches(
        &c1.path(),
        &c2.path(),
        ip_of(&r2),
        7401,
        Duration::from_secs(2),
    )
    .expect("traffic");
    assert!(reached, "ctr1 on no1 does not reach ctr2 on no2");
    assert_eq!(
        cni("ADD", Some(&c1), "ctr1", &conf("1.0.0", &s1)),
        (0, r1.clone()),
        "ADD again"
    );
    // The fleet reads the attachments: the blocks in use stay, nothing to do.
    let again = apply_ok(&state, &spec);
    assert!(
        again.ends_with("No changes: the fleet matches the spec.\n"),
        "{again}"
    );
    let mut check = conf("1.0.0", &s1);
    check["prevResult"] = r1.clone();
    assert_eq!(
        cni("CHECK", Some(&c1), "ctr1", &check),
        (0, serde_json::Value::Null)
    );

    // Addresses asked for: the agent's words, code 100, nothing made.
    let mut asked = conf("1.0.0", &s2);
    asked["runtimeConfig"] = serde_json::json!({"ips": ["10.0.100.20"]});
    let (code, e) = cni("ADD", Some(&c3), "ctr3", &asked);
    assert_eq!((code, e["code"].as_u64()), (1, Some(100)), "{e}");
    assert_eq!(
        e["msg"],
        "address 10.0.100.20 is taken: no1's container block (10.0.100.16/28); ask for another"
    );
    asked["runtimeConfig"] = serde_json::json!({"ips": ["10.0.100.32"]});
    let (_, e) = cni("ADD", Some(&c3), "ctr3", &asked);
    assert_eq!(
        e["msg"],
        "address 10.0.100.32 is attached to another container on this host already; ask for another"
    );
    asked["runtimeConfig"] = serde_json::json!({"ips": ["10.0.100.200"]});
    let (code, r3) = cni("ADD", Some(&c3), "ctr3", &asked);
    assert_eq!(
        (code, r3["ips"][0]["address"].as_str()),
        (0, Some("10.0.100.200/24")),
        "{r3}"
    );

    refused_when_answered_on_the_wire(&state, &s2);
    fleet_sees_and_proves_the_containers(&state, &spec);

    // DEL twice; GC keeps only what the runtime lists; STATUS is ready.
    assert_eq!(cni("DEL", Some(&c1), "ctr1", &conf("1.0.0", &s1)).0, 0);
    assert_eq!(
        cni("DEL", None, "ctr1", &conf("1.0.0", &s1)).0,
        0,
        "DEL again"
    );
    let gone = c1.ip(&["-j", "link", "show"]);
    assert!(!gone.contains("\"eth0\""), "{gone}");
    let mut gc = conf("1.1.0", &s2);
    gc["cni.dev/valid-attachments"] =
        serde_json::json!([{"containerID": "ctr3", "ifname": "eth0"}]);
    assert_eq!(cni("GC", None, "", &gc).0, 0);
    assert!(
        !c2.ip(&["-j", "link", "show"]).contains("\"eth0\""),
        "GC left ctr2"
    );
    assert!(
        c3.ip(&["-j", "link", "show"]).contains("\"eth0\""),
        "GC took ctr3"
    );
    assert_eq!(
        cni("STATUS", None, "", &conf("1.1.0", &s2)),
        (0, serde_json::Value::Null)
    );

    // A container that went without a DEL (its namespace deleted): stale,
    // named by status, and removed by a GC that does not list it.
    let gone_path = c3.path().display().to_string();
    drop(c3);
    let out = ctl(&state, &["status", "-f", &spec]);
    assert_eq!(
        text(&out.stdout),
        format!(
            "no1: in sync\nno2: in sync\n  containers  1 on net_a\n  \
             stale       ctr3/eth0 on net_a: namespace {gone_path} is gone; GC or DEL removes it\n"
        )
    );
    gc["cni.dev/valid-attachments"] = serde_json::json!([]);
    assert_eq!(cni("GC", None, "", &gc).0, 0);
    let out = ctl(&state, &["status", "-f", &spec]);
    assert_eq!(text(&out.stdout), "no1: in sync\nno2: in sync\n");

    // No agent there: try again later.
    let (code, e) = cni(
        "ADD",
        Some(&c1),
        "ctr1",
        &conf("1.0.0", Path::new("/nonexistent/agent.sock")),
    );
    assert_eq!((code, e["code"].as_u64()), (1, Some(11)), "{e}");
    assert_eq!(
        e["msg"],
        "cannot reach linkherd-agent at /nonexistent/agent.sock: No such file or directory (os error 2)"
    );
}

/// With ctr1 on no1 and ctr2, ctr3 on no2: `get endpoints` lists them,
/// `status` counts them, and `verify` with `verify.containers` probes every
/// pair from inside the containers' namespaces.
fn fleet_sees_and_proves_the_containers(state: &LabState, spec: &str) {
    let out = ctl(state, &["-o", "json", "get", "endpoints", "-f", spec]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let seen: Vec<(String, String, String, String, bool)> = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().expect("kind").to_owned(),
                r["host"].as_str().expect("host").to_owned(),
                r["container_id"].as_str().expect("id").to_owned(),
                r["addresses"][0].as_str().expect("address").to_owned(),
                r["present"].as_bool().expect("present"),
            )
        })
        .collect();
    let row = |host: &str, id: &str, a: &str| {
        ("container".into(), host.into(), id.into(), a.into(), true)
    };
    assert_eq!(
        seen,
        [
            row("no1", "ctr1", "10.0.100.16/24"),
            row("no2", "ctr2", "10.0.100.32/24"),
            row("no2", "ctr3", "10.0.100.200/24"),
        ]
    );
    let out = ctl(state, &["status", "-f", spec]);
    assert_eq!(
        text(&out.stdout),
        "no1: in sync\n  containers  1 on net_a\nno2: in sync\n  containers  2 on net_a\n"
    );

    let body = std::fs::read_to_string(spec).expect("spec")
        + "verify: {containers: true, mode: mesh, timeout_ms: 500}\n";
    let proving = write_spec(&state.dir, "cni-verify.yaml", &body);
    let out = ctl(state, &["verify", "-f", &proving]);
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{shown}\n{}", text(&out.stderr));
    for from in ["ctr1/eth0@no1", "ctr2/eth0@no2", "ctr3/eth0@no2"] {
        let line = shown
            .lines()
            .find(|l| l.split_whitespace().take(2).eq(["net_a", from]))
            .unwrap_or_else(|| panic!("no row {from} in:\n{shown}"));
        assert_eq!(line.matches(" ok ").count(), 2, "{line}\n{shown}");
    }
    assert!(
        shown.contains("address check (RFC 5227): 3 of 3 address(es) used only by their endpoint"),
        "{shown}"
    );
    assert!(
        shown.ends_with("Verified: the fleet does what the spec says.\n"),
        "{shown}"
    );
}

/// A machine on no2's wire that is not linkherd's answers for 10.0.100.210:
/// asked for, it is refused after the RFC 5227 probe, and nothing is made.
fn refused_when_answered_on_the_wire(state: &LabState, socket: &Path) {
    let (rogue_ns, rogue_mac) = rogue(state, "no2", "10.0.100.210/24");
    let c4 = TestNetns::new("cni-c4");
    let mut asked = conf("1.0.0", socket);
    asked["runtimeConfig"] = serde_json::json!({"ips": ["10.0.100.210"]});
    let (code, e) = cni("ADD", Some(&c4), "ctr4", &asked);
    assert_eq!((code, e["code"].as_u64()), (1, Some(100)), "{e}");
    let msg = e["msg"].as_str().expect("msg");
    assert!(
        msg.starts_with(
            "10.0.100.210 (for net_a/ctr4/eth0) is already in use on the wire, answered by "
        ),
        "{msg}"
    );
    assert!(
        msg.contains(&rogue_mac) && msg.ends_with("; ask for another"),
        "{msg}"
    );
    assert!(
        !c4.ip(&["-j", "link", "show"]).contains("\"eth0\""),
        "a link was left"
    );
    ip(&["netns", "del", &rogue_ns]).expect("rogue gone");
}
