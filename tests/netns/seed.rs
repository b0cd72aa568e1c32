//! T3: two agent processes in two network namespaces (no1 with NIC ens192,
//! no2 with eth0), driven by the `linkherdctl` binary over TCP mTLS. Every
//! change is checked in the kernel with `ip -j`; refused clients are checked
//! to have changed nothing.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};
use tokio::io::AsyncBufReadExt;

use linkherd_lab::{
    self as lab, HostSpec, LabGuard, LabState, bins, fleet::macvlan_create, sh::ip_in,
};
use test_support::have_root;

struct Ctl<'a> {
    state: &'a LabState,
}

impl Ctl<'_> {
    /// `linkherdctl --config DIR/ctl.toml --host HOST ARGS…`.
    fn host(&self, host: &str, args: &[&str]) -> Output {
        Command::new(bins::ctl().expect("linkherdctl built"))
            .arg("--config")
            .arg(self.state.ctl_config())
            .args(["--host", host])
            .args(args)
            .output()
            .expect("run linkherdctl")
    }

    /// `linkherdctl` with explicit connection flags (no config file).
    fn raw(&self, args: &[&str]) -> Output {
        Command::new(bins::ctl().expect("linkherdctl built"))
            .args(args)
            .output()
            .expect("run linkherdctl")
    }

    fn json(&self, host: &str, args: &[&str]) -> serde_json::Value {
        let mut full = args.to_vec();
        full.extend(["-o", "json"]);
        let out = self.host(host, &full);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json output")
    }
}

fn link(netns: &str, dev: &str) -> serde_json::Value {
    let out = ip_in(netns, &["-j", "-d", "link", "show", "dev", dev]).expect("ip");
    serde_json::from_str::<serde_json::Value>(&out).expect("json")[0].clone()
}

/// `host info` on no1 says whether this kernel has 802.1Q.
fn info_vlan(ctl: &Ctl) -> serde_json::Value {
    ctl.json("no1", &["host", "info"])
}

fn linkherd_agent_has_vlan(info: &serde_json::Value) -> bool {
    info["capabilities"]["vlan"] == true
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn p(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_hosts_over_mtls() {
    if !have_root("the seed lab") {
        return;
    }
    // A fixed directory: a lab left behind by a crashed run is replaced.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("seed-netns");
    let started = Instant::now();
    let state = lab::up(&dir, &HostSpec::seed(), lab::Backend::Netns, true)
        .await
        .expect("lab up");
    let _guard = LabGuard(state.dir.clone());
    eprintln!("lab up in {:?}", started.elapsed());
    let ctl = Ctl { state: &state };
    let no1 = state.host("no1").expect("no1");
    let no2 = state.host("no2").expect("no2");

    // Each agent answers as itself, over mTLS, to the admin client.
    for h in [no1, no2] {
        let info = ctl.json(&h.name, &["host", "info"]);
        assert_eq!(info["hostname"], h.name.as_str());
        assert_eq!(info["caller"]["identity"], "admin");
        assert_eq!(info["caller"]["transport"], "mtls");
        assert_eq!(info["capabilities"]["macvlan"], true);
    }

    // The parent NICs are named differently on each host.
    let names = |host: &str| -> Vec<String> {
        ctl.json(host, &["if", "list"])
            .as_array()
            .expect("array")
            .iter()
            .map(|i| i["name"].as_str().expect("name").to_owned())
            .collect()
    };
    assert!(names("no1").contains(&"ens192".to_owned()));
    assert!(names("no2").contains(&"eth0".to_owned()));
    let got = ctl.json("no1", &["if", "get", "ens192"]);
    assert_eq!(got["mac"], link(&no1.netns, "ens192")["address"]);

    // Promiscuous mode through the CLI, checked in the kernel.
    let r = ctl.json("no1", &["promisc", "on", "ens192"]);
    assert_eq!(r["outcome"], "changed");
    assert_eq!(link(&no1.netns, "ens192")["promiscuity"], 1);
    let r = ctl.json("no1", &["promisc", "on", "ens192"]);
    assert_eq!(r["outcome"], "unchanged");
    assert_eq!(link(&no1.netns, "ens192")["promiscuity"], 1);
    assert_eq!(link(&no2.netns, "eth0")["promiscuity"], 0, "no2 untouched");

    // MTU and admin state.
    ctl.json("no2", &["if", "mtu", "eth0", "9000"]);
    assert_eq!(link(&no2.netns, "eth0")["mtu"], 9000);
    ctl.json("no2", &["if", "down", "eth0"]);
    let flags = link(&no2.netns, "eth0")["flags"].to_string();
    assert!(!flags.contains("\"UP\""), "{flags}");
    ctl.json("no2", &["if", "up", "eth0"]);

    // Bad input: exit non-zero with the gRPC code and the field.
    let out = ctl.host("no2", &["if", "mtu", "eth0", "70000"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("INVALID_ARGUMENT: invalid mtu \"70000\""),
        "{}",
        stderr(&out)
    );
    assert_eq!(link(&no2.netns, "eth0")["mtu"], 9000);
    let out = ctl.host("no2", &["if", "get", "ens192"]);
    assert!(
        stderr(&out).contains("NOT_FOUND: interface \"ens192\" not found"),
        "{}",
        stderr(&out)
    );

    // A lease reverts by itself.
    ctl.json("no2", &["promisc", "on", "eth0", "--lease", "1"]);
    assert_eq!(link(&no2.netns, "eth0")["promiscuity"], 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while link(&no2.netns, "eth0")["promiscuity"] != 0 {
        assert!(Instant::now() < deadline, "lease did not revert");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Refused clients change nothing.
    let pki = state.pki();
    let url = no1.agent_url.as_str();
    let ca = p(&pki.join("ca.pem"));
    let no_cert = ctl.raw(&["--agent", url, "--ca", &ca, "promisc", "off", "ens192"]);
    assert!(!no_cert.status.success());
    assert!(
        stderr(&no_cert).contains("linkherd agents require a client certificate"),
        "{}",
        stderr(&no_cert)
    );
    // And the agent itself refuses a TLS client without a certificate.
    let raw = tonic::transport::Endpoint::from_shared(url.to_owned())
        .expect("endpoint")
        .tls_config(tonic::transport::ClientTlsConfig::new().ca_certificate(
            tonic::transport::Certificate::from_pem(std::fs::read(pki.join("ca.pem")).expect("ca")),
        ))
        .expect("tls");
    let refused = match raw.connect().await {
        Err(e) => Err(e.to_string()),
        Ok(ch) => linkherd_proto::pb::interface_service_client::InterfaceServiceClient::new(ch)
            .set_promiscuous(linkherd_proto::pb::SetPromiscuousRequest {
                name: "ens192".into(),
                enabled: false,
                lease_seconds: 0,
            })
            .await
            .map(|_| ())
            .map_err(|s| s.to_string()),
    };
    assert!(
        refused.is_err(),
        "the agent accepted a client without a certificate"
    );

    let other = tempfile::tempdir().expect("tempdir");
    linkherdctl::certs::init(other.path(), 1, false).expect("ca");
    linkherdctl::certs::issue_client(
        other.path(),
        "mallory",
        linkherd_proto::model::Role::Admin,
        1,
    )
    .expect("cert");
    let wrong_ca = ctl.raw(&[
        "--agent",
        url,
        "--ca",
        &ca,
        "--cert",
        &p(&other.path().join("client-mallory.pem")),
        "--key",
        &p(&other.path().join("client-mallory-key.pem")),
        "promisc",
        "off",
        "ens192",
    ]);
    assert!(!wrong_ca.status.success());
    assert!(
        stderr(&wrong_ca).starts_with("error: "),
        "{}",
        stderr(&wrong_ca)
    );

    let viewer = ctl.raw(&[
        "--agent",
        url,
        "--ca",
        &ca,
        "--cert",
        &p(&pki.join("client-viewer.pem")),
        "--key",
        &p(&pki.join("client-viewer-key.pem")),
        "promisc",
        "off",
        "ens192",
    ]);
    assert!(!viewer.status.success());
    assert!(
        stderr(&viewer).contains(
            "PERMISSION_DENIED: viewer has role viewer, but linkherd.v1.InterfaceService/SetPromiscuous needs role admin"
        ),
        "{}",
        stderr(&viewer)
    );
    // The viewer may still read.
    let viewer_list = ctl.raw(&[
        "--agent",
        url,
        "--ca",
        &ca,
        "--cert",
        &p(&pki.join("client-viewer.pem")),
        "--key",
        &p(&pki.join("client-viewer-key.pem")),
        "if",
        "list",
    ]);
    assert!(viewer_list.status.success(), "{}", stderr(&viewer_list));
    assert_eq!(
        link(&no1.netns, "ens192")["promiscuity"],
        1,
        "refused clients changed the NIC"
    );

    // Audit: the admin's changes were recorded with the caller's identity.
    let audit = std::fs::read_to_string(dir.join("no1/state/audit.log")).expect("audit log");
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"caller\":\"admin\"") && l.contains("SetPromiscuous"))
    );
    // The viewer's refused change is audited as a refusal, and nothing it
    // asked for is recorded as done.
    let viewer: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("\"caller\":\"viewer\""))
        .collect();
    assert!(!viewer.is_empty(), "the refusal is audited:\n{audit}");
    assert!(
        viewer.iter().all(|l| l.contains("\"result\":\"refused\"")),
        "{viewer:?}"
    );

    // Watch via the CLI sees a change made with `ip` behind the agent's back:
    // read its output until the snapshot is synced, then change the MTU.
    let mut watch = tokio::process::Command::new(bins::ctl().expect("ctl"))
        .arg("--config")
        .arg(state.ctl_config())
        .args(["--host", "no1", "if", "watch", "--count", "1", "-o", "json"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start watch");
    let mut lines = tokio::io::BufReader::new(watch.stdout.take().expect("stdout")).lines();
    let mut events: Vec<serde_json::Value> = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await.expect("read") {
            let ev: serde_json::Value = serde_json::from_str(&line).expect("ndjson");
            let synced = ev["event"] == "synced";
            events.push(ev);
            if synced {
                ip_in(&no1.netns, &["link", "set", "ens192", "mtu", "1400"]).expect("ip");
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("watch ended in time");
    assert!(watch.wait().await.expect("watch").success());
    let last = events.last().expect("events");
    assert_eq!(last["event"], "changed");
    assert_eq!(last["interface"]["name"], "ens192");
    assert_eq!(last["interface"]["mtu"], 1400);
    assert!(last["fields"].to_string().contains("mtu"));
    assert!(events.iter().any(|e| e["event"] == "synced"));

    // The source document's first example: macvlan network mac_net
    // (10.0.100.0/24, gateway .33), node_1 on no1's ens192, node_2 on no2's
    // eth0, reaching each other across the lab switch.
    // Each lab host's agent keeps its namespaces under its own prefix.
    let ns1 = format!("{}-node1", no1.netns);
    let ns2 = format!("{}-node2", no2.netns);
    for (host, nic, ns, name, ip) in [
        ("no1", "ens192", &ns1, "node_1", "10.0.100.100/24"),
        ("no2", "eth0", &ns2, "node_2", "10.0.100.101/24"),
    ] {
        let short = if host == "no1" { "node1" } else { "node2" };
        let r = ctl.json(
            host,
            &macvlan_create("mac_net", name, nic, short, Some(ip), Some("10.0.100.33")),
        );
        assert_eq!(r["outcome"], "created");
        let eth0 = serde_json::from_str::<serde_json::Value>(
            &ip_in(ns, &["-j", "-4", "addr", "show", "dev", "eth0"]).expect("ip"),
        )
        .expect("json");
        assert_eq!(
            eth0[0]["addr_info"][0]["local"],
            ip.split('/').next().expect("ip")
        );
    }
    let reach = linkherd_lab::traffic::tcp_reaches(
        &PathBuf::from("/run/netns").join(&ns1),
        &PathBuf::from("/run/netns").join(&ns2),
        "10.0.100.101".parse().expect("ip"),
        7300,
        Duration::from_secs(2),
    )
    .expect("traffic test");
    assert!(reach, "node_1 on no1 does not reach node_2 on no2");
    // ...and the upstream router answers as the gateway (.33), seen by the
    // agent's own probe from inside node_1.
    let gw = ctl.host(
        "no1",
        &[
            "probe",
            "tcp",
            "--netns",
            "node1",
            "--to",
            "10.0.100.33",
            "--port",
            "7",
        ],
    );
    assert_eq!(
        gw.status.code(),
        Some(2),
        "gateway: {}",
        String::from_utf8_lossy(&gw.stdout)
    );
    // Diagnose, layer by layer: OK; the target's parent down; an endpoint
    // without address; an endpoint on another network.
    let diag = |from: &str, to: &str| {
        let out = ctl.host(
            "no1",
            &[
                "probe", "diagnose", "--from", from, "--to", to, "-o", "json",
            ],
        );
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("diagnose json");
        (out.status.code(), r)
    };
    let (code, r) = diag("no1/node_1", "no2/node_2");
    assert_eq!((code, r["verdict"].as_str()), (Some(0), Some("ok")), "{r}");
    assert!(
        r["steps"].to_string().contains("node_1 sent"),
        "counters back the ARP step: {r}"
    );
    ip_in(&no2.netns, &["link", "set", "eth0", "down"]).expect("ip");
    let (code, r) = diag("no1/node_1", "no2/node_2");
    assert_eq!(code, Some(1));
    assert_eq!(r["verdict"], "eth0 on no2 is down: bring it up", "{r}");
    ip_in(&no2.netns, &["link", "set", "eth0", "up"]).expect("ip");
    ctl.json(
        "no2",
        &macvlan_create("mac_net", "node_3", "eth0", "node3", None, None),
    );
    let (_, r) = diag("no1/node_1", "no2/node_3");
    assert_eq!(r["verdict"], "endpoint no2/node_3 has no address", "{r}");
    ctl.json(
        "no2",
        &macvlan_create(
            "other",
            "node_4",
            "eth0",
            "node4",
            Some("192.168.77.4/24"),
            None,
        ),
    );
    let (_, r) = diag("no1/node_1", "no2/node_4");
    assert!(
        r["verdict"]
            .as_str()
            .is_some_and(|v| v.starts_with("the endpoints are on different networks")),
        "{r}"
    );
    for n in ["node_3", "node_4"] {
        let net = if n == "node_3" { "mac_net" } else { "other" };
        ctl.json("no2", &["macvlan", "delete", "--network", net, "--name", n]);
    }

    // The host's state as linkherd owns it, and transaction commands.
    let st = ctl.json("no1", &["host", "state"]);
    assert_eq!(st["endpoints"][0]["name"], "node_1", "{st}");
    assert!(st["generation"].as_u64().is_some_and(|g| g != 0));
    let out = ctl.host("no1", &["host", "rollback", "txn-nope"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("NOT_FOUND: no pending transaction txn-nope on this host"),
        "{}",
        stderr(&out)
    );

    let list = ctl.json("no2", &["macvlan", "list"]);
    assert_eq!(list[0]["name"], "node_2");
    assert_eq!(list[0]["parent"], "eth0");
    let d = ctl.json(
        "no1",
        &[
            "macvlan",
            "delete",
            "--network",
            "mac_net",
            "--name",
            "node_1",
        ],
    );
    assert_eq!(
        d["removed"],
        serde_json::json!([
            "endpoint mac_net/node_1 (eth0 in netns node1)",
            "netns node1"
        ])
    );
    assert!(!PathBuf::from("/run/netns").join(&ns1).exists());
    let err = ctl.host(
        "no1",
        &["vlan", "create", "--parent", "ens192", "--id", "10"],
    );
    if !linkherd_agent_has_vlan(&info_vlan(&ctl)) {
        assert!(
            stderr(&err)
                .contains("FAILED_PRECONDITION: kernel lacks 802.1Q VLAN support (module 8021q)"),
            "{}",
            stderr(&err)
        );
    }

    drop(_guard);
    // Everything the lab made is gone.
    let left = linkherd_lab::sh::ip(&["netns", "list"]).expect("ip");
    assert!(!left.contains(&format!("lh-{}-", state.id)), "{left}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_labs_in_different_directories_do_not_collide() {
    if !have_root("the seed lab") {
        return;
    }
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let (a, b) = (base.join("twin-a"), base.join("twin-b"));
    let la = lab::up(
        &a,
        &HostSpec::from_names(&["no1".into()]),
        lab::Backend::Netns,
        true,
    )
    .await
    .expect("lab a");
    let _ga = LabGuard(la.dir.clone());
    let lb = lab::up(
        &b,
        &HostSpec::from_names(&["no1".into()]),
        lab::Backend::Netns,
        true,
    )
    .await
    .expect("lab b");
    let _gb = LabGuard(lb.dir.clone());
    assert_ne!(la.id, lb.id);
    assert_ne!(la.mgmt_subnet, lb.mgmt_subnet);
    for s in [&la, &lb] {
        let info = Ctl { state: s }.json("no1", &["host", "info"]);
        assert_eq!(info["hostname"], "no1");
    }
    drop(_ga);
    // Taking one down leaves the other working.
    let info = Ctl { state: &lb }.json("no1", &["if", "list"]);
    assert!(
        info.as_array()
            .is_some_and(|l| l.iter().any(|i| i["name"] == "ens192"))
    );
}
