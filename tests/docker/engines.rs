//! Docker (Debian's dockerd, one engine per lab host, each in its host's
//! namespace) running the source document's containers on linkherd's
//! networks through the agent's driver `linkherd`: the document's own
//! `docker network create` commands with `-d linkherd --ipam-driver
//! linkherd`, its b1..b4 with its `--ip`s, b1↔b3 and b2↔b4 across hosts and
//! nothing across networks, `docker restart` keeping address and
//! reachability, `docker rm` releasing, a drifting `--subnet`, `--gateway`
//! or parent refused with the fleet's value, addresses from each host's own
//! block (never one address from two hosts), `get endpoints` and `verify`
//! seeing the containers, and with the agent down `docker run` failing
//! clearly, then working once it is back.
//!
//! The netns tier: this machine's kernel has no 802.1Q, and dockerd does
//! not run in the lab's QEMU guests, so mac_net10 and mac_net20 are on the
//! hosts' NICs without VLANs: the networks are apart by subnet here, and by
//! VLAN on the QEMU tier's fleet and CNI suites.

use std::path::{Path, PathBuf};

use linkherd_lab::{
    self as lab, LabState,
    docker::{Dockerd, busybox_rootfs},
    fleet::{apply_ok, ctl, seed_lab, seed_spec, text, write_spec},
    sh::ip_in,
};
use test_support::have_root;

const IMAGE: &str = "lh-busybox";

/// The document's networks, open to containers: each host has a block of
/// 16 addresses per network, the document's `--ip`s lie outside them.
const NETWORKS: &str = "networks:\n  \
    mac_net10:\n    subnet: 172.16.10.0/24\n    gateway: 172.16.10.1\n    \
    hosts: [no1, no2]\n    containers: {block: 28}\n  \
    mac_net20:\n    subnet: 172.16.20.0/24\n    gateway: 172.16.20.1\n    \
    hosts: [no1, no2]\n    containers: {block: 28}\n";

/// An engine per lab host, and the containers a test started on it.
struct Engines {
    no1: Dockerd,
    no2: Dockerd,
}

impl Engines {
    fn on(&self, host: &str) -> &Dockerd {
        if host == "no1" { &self.no1 } else { &self.no2 }
    }
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The document's `docker network create`, with linkherd's driver: on no1
/// the parent is ens192, on no2 eth0 (the VLAN sub-interfaces' NICs).
fn create_network(
    d: &Dockerd,
    name: &str,
    subnet: &str,
    gw: &str,
    parent: &str,
) -> std::process::Output {
    d.docker(&[
        "network",
        "create",
        "-d",
        "linkherd",
        "--ipam-driver",
        "linkherd",
        &format!("--subnet={subnet}"),
        &format!("--gateway={gw}"),
        "-o",
        &format!("parent={parent}"),
        name,
    ])
}

fn run(d: &Dockerd, name: &str, network: &str, ip: Option<&str>) -> std::process::Output {
    let ip = ip.map(|i| format!("--ip={i}"));
    let mut args = vec!["run", "-d", "--name", name, "--network", network];
    args.extend(ip.as_deref());
    args.extend([IMAGE, "sleep", "3600"]);
    d.docker(&args)
}

/// eth0's IPv4 address inside container `name`, with its prefix length.
fn addr(d: &Dockerd, name: &str) -> String {
    let out = d.docker(&["exec", name, "ip", "-4", "-o", "addr", "show", "eth0"]);
    text(&out.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}

fn pings(d: &Dockerd, name: &str, ip: &str) -> bool {
    d.docker(&["exec", name, "ping", "-c", "1", "-W", "2", ip])
        .status
        .success()
}

fn records(state: &LabState, host: &str) -> usize {
    std::fs::read_dir(state.dir.join(host).join("state/attachments"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Links in `host`'s namespace named as the agent makes them for Docker
/// (`lh` and 12 characters): none once Docker moved them in, or after the
/// agent deleted them.
fn handed_over_links(state: &LabState, host: &str) -> Vec<String> {
    let ns = &state.host(host).expect("host").netns;
    let links = ip_in(ns, &["-o", "link", "show"]).expect("ip link");
    links
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|n| n.split(['@', ':']).next())
        .filter(|n| n.starts_with("lh") && n.len() == 14)
        .map(str::to_owned)
        .collect()
}

fn start_engines(state: &LabState, dir: &Path) -> Engines {
    let tar = busybox_rootfs(dir).expect("rootfs");
    let start = |h: &str| {
        let d = Dockerd::start(state, h, &dir.join(h)).expect("dockerd");
        d.import(&tar, IMAGE).expect("import");
        d
    };
    Engines {
        no1: start("no1"),
        no2: start("no2"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_documents_docker_commands_run_on_linkherd_networks() {
    let _one = crate::ONE_AT_A_TIME.lock().await;
    if !have_root("the docker lab") {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("docker");
    let (mut state, _guard) = seed_lab(&dir).await;
    let spec = write_spec(&state.dir, "docker.yaml", &seed_spec(&state, NETWORKS));
    apply_ok(&state, &spec);
    let e = start_engines(&state, &dir.join("engines"));

    drift_is_refused_with_the_fleets_values(&e);
    for (h, parent) in [("no1", "ens192"), ("no2", "eth0")] {
        ok(&create_network(
            e.on(h),
            "mac_net10",
            "172.16.10.0/24",
            "172.16.10.1",
            parent,
        ));
        ok(&create_network(
            e.on(h),
            "mac_net20",
            "172.16.20.0/24",
            "172.16.20.1",
            parent,
        ));
    }
    the_documents_containers_reach_across_hosts(&state, &e);
    fleet_sees_and_proves_the_containers(&state, &spec);
    restart_keeps_and_rm_releases(&state, &e);
    agent_down_fails_clearly(&mut state, &e).await;
}

/// The document's commands with another subnet, gateway or parent than the
/// fleet's, or a network the catalog lacks: refused, naming the fleet's
/// value, and Docker has no such network afterwards.
fn drift_is_refused_with_the_fleets_values(e: &Engines) {
    let cases = [
        (
            create_network(
                &e.no1,
                "mac_net10",
                "172.16.99.0/24",
                "172.16.99.1",
                "ens192",
            ),
            "no network of this host's linkherd catalog has subnet 172.16.99.0/24 (it has \
             mac_net10 (--subnet=172.16.10.0/24), mac_net20 (--subnet=172.16.20.0/24))",
        ),
        (
            create_network(
                &e.no1,
                "mac_net10",
                "172.16.10.0/24",
                "172.16.10.254",
                "ens192",
            ),
            "--gateway=172.16.10.254 is not mac_net10's: the fleet's gateway of mac_net10 is \
             172.16.10.1",
        ),
        (
            create_network(
                &e.no2,
                "mac_net10",
                "172.16.10.0/24",
                "172.16.10.1",
                "ens192",
            ),
            "-o parent=ens192 is not mac_net10's on this host: the fleet's parent here is eth0",
        ),
        (
            e.no1.docker(&[
                "network",
                "create",
                "-d",
                "linkherd",
                "--ipam-driver",
                "linkherd",
                "--ipam-opt",
                "linkherd.network=mac_net30",
                "mac_net30",
            ]),
            "network \"mac_net30\" is not in this host's linkherd catalog; add it to the fleet \
             spec (with containers: ...) and run linkherdctl apply",
        ),
    ];
    for (out, want) in cases {
        assert!(!out.status.success(), "accepted: {}", text(&out.stdout));
        let err = text(&out.stderr);
        assert!(err.contains(want), "want {want:?} in:\n{err}");
    }
    let listed = ok(&e
        .no1
        .docker(&["network", "ls", "--filter", "driver=linkherd", "-q"]));
    assert_eq!(listed, "", "a refused network was left behind");
}

/// b1 (mac_net10) and b2 (mac_net20) on no1, b3 and b4 on no2, with the
/// document's addresses; the same network reaches across hosts, the other
/// does not; a container without --ip gets its own host's block.
fn the_documents_containers_reach_across_hosts(state: &LabState, e: &Engines) {
    let cs = [
        ("no1", "b1", "mac_net10", "172.16.10.10"),
        ("no1", "b2", "mac_net20", "172.16.20.10"),
        ("no2", "b3", "mac_net10", "172.16.10.11"),
        ("no2", "b4", "mac_net20", "172.16.20.11"),
    ];
    for (h, name, net, ip) in cs {
        ok(&run(e.on(h), name, net, Some(ip)));
        assert_eq!(addr(e.on(h), name), format!("{ip}/24"), "{name}");
    }
    assert!(
        pings(&e.no1, "b1", "172.16.10.11"),
        "b1 on no1 does not reach b3 on no2"
    );
    assert!(
        pings(&e.no2, "b4", "172.16.20.10"),
        "b4 on no2 does not reach b2 on no1"
    );
    assert!(
        !pings(&e.no1, "b1", "172.16.20.11"),
        "b1 (mac_net10) reaches b4 (mac_net20)"
    );
    assert!(
        !pings(&e.no2, "b3", "172.16.20.10"),
        "b3 (mac_net10) reaches b2 (mac_net20)"
    );
    // Without --ip: each host's own block, so never one address twice.
    ok(&run(&e.no1, "b5", "mac_net10", None));
    ok(&run(&e.no2, "b6", "mac_net10", None));
    let (a5, a6) = (addr(&e.no1, "b5"), addr(&e.no2, "b6"));
    assert_eq!(
        (a5.as_str(), a6.as_str()),
        ("172.16.10.16/24", "172.16.10.32/24")
    );
    assert!(pings(&e.no1, "b5", "172.16.10.32"), "b5 does not reach b6");
    // Docker moved the macvlans in and named them eth0: none is left in
    // the hosts' namespaces under the name the agent made it with.
    let inside = ok(&e
        .no1
        .docker(&["exec", "b1", "ip", "-o", "link", "show", "eth0"]));
    assert!(inside.contains("eth0@"), "{inside}");
    for h in ["no1", "no2"] {
        assert_eq!(
            handed_over_links(state, h),
            Vec::<String>::new(),
            "left on {h}"
        );
    }
}

/// `get endpoints` lists the Docker containers as attachments, and `verify`
/// with `verify.containers` probes them from inside their namespaces.
fn fleet_sees_and_proves_the_containers(state: &LabState, spec: &str) {
    let out = ctl(state, &["-o", "json", "get", "endpoints", "-f", spec]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let mut seen: Vec<(String, String, String)> = rows
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["kind"] == "container")
        .map(|r| {
            (
                r["host"].as_str().expect("host").to_owned(),
                r["addresses"][0].as_str().expect("address").to_owned(),
                r["ifname"].as_str().expect("ifname").to_owned(),
            )
        })
        .collect();
    seen.sort();
    let row = |h: &str, a: &str| (h.to_owned(), format!("{a}/24"), "eth0".to_owned());
    assert_eq!(
        seen,
        [
            row("no1", "172.16.10.10"),
            row("no1", "172.16.10.16"),
            row("no1", "172.16.20.10"),
            row("no2", "172.16.10.11"),
            row("no2", "172.16.10.32"),
            row("no2", "172.16.20.11"),
        ]
    );
    let body = std::fs::read_to_string(spec).expect("spec")
        + "verify: {containers: true, mode: mesh, timeout_ms: 500}\n";
    let proving = write_spec(&state.dir, "docker-verify.yaml", &body);
    let out = ctl(state, &["verify", "-f", &proving]);
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{shown}\n{}", text(&out.stderr));
    assert!(
        shown.ends_with("Verified: the fleet does what the spec says.\n"),
        "{shown}"
    );
}

/// `docker restart` keeps b1's address and reachability; `docker rm`
/// releases b5's attachment and its address goes to the next container.
fn restart_keeps_and_rm_releases(state: &LabState, e: &Engines) {
    ok(&e.no1.docker(&["restart", "-t", "0", "b1"]));
    assert_eq!(addr(&e.no1, "b1"), "172.16.10.10/24");
    assert!(
        pings(&e.no2, "b3", "172.16.10.10"),
        "b1 unreachable after its restart"
    );
    ok(&e.no1.docker(&["restart", "-t", "0", "b5"]));
    assert_eq!(
        addr(&e.no1, "b5"),
        "172.16.10.16/24",
        "the lowest free again"
    );
    assert_eq!(records(state, "no1"), 3);
    ok(&e.no1.docker(&["rm", "-f", "b5"]));
    assert_eq!(records(state, "no1"), 2);
    ok(&run(&e.no1, "b7", "mac_net10", None));
    assert_eq!(addr(&e.no1, "b7"), "172.16.10.16/24");
    ok(&e.no1.docker(&["rm", "-f", "b7"]));
    // An address another container holds is refused, with the agent's words.
    let out = run(&e.no1, "b8", "mac_net10", Some("172.16.10.10"));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("address 172.16.10.10 is attached to another container on this host already"),
        "{err}"
    );
    let _ = e.no1.docker(&["rm", "-f", "b8"]);
    assert_eq!(records(state, "no1"), 2);
}

/// no2's agent stopped: `docker run` fails, saying the plugin cannot be
/// reached; the agent back, the same command works and old containers
/// still reach each other.
async fn agent_down_fails_clearly(state: &mut LabState, e: &Engines) {
    let pid = state.host("no2").and_then(|h| h.pid).expect("agent pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid")),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("stop the agent this lab started");
    let socket = state.docker_plugins("no2").join("linkherd.sock");
    for _ in 0..100 {
        if !socket.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = run(&e.no2, "b9", "mac_net10", None);
    assert!(!out.status.success(), "ran without its driver");
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "dial unix /run/docker/plugins/linkherd.sock: connect: no such file or directory"
        ),
        "{err}"
    );
    let _ = e.no2.docker(&["rm", "-f", "b9"]);
    let out = create_network(
        &e.no2,
        "mac_net10b",
        "172.16.10.0/24",
        "172.16.10.1",
        "eth0",
    );
    assert!(
        !out.status.success(),
        "a network created without its driver"
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("linkherd.sock: connect: no such file or directory"),
        "{err}"
    );
    // Running containers keep their network: the macvlans are the kernel's.
    assert!(
        pings(&e.no1, "b1", "172.16.10.11"),
        "b3 lost its network with the agent"
    );
    assert_eq!(records(state, "no2"), 3, "b3, b4 and b6; nothing of b9");
    // Removed while no agent hears it (Docker retries Leave and
    // DeleteEndpoint for 30 s each, then goes on): Docker forgets the
    // endpoint, and hands the macvlan back to the host's namespace.
    ok(&e.no2.docker(&["rm", "-f", "b6"]));
    assert_eq!(
        records(state, "no2"),
        3,
        "b6's record outlives its container"
    );

    // Back: the agent reaps b6 (its namespace is gone) at start, so its
    // address is free for b9, and its macvlan is gone from the host.
    lab::restart_agent(state, "no2").await.expect("restart no2");
    assert_eq!(records(state, "no2"), 2, "b3 and b4");
    assert_eq!(handed_over_links(state, "no2"), Vec::<String>::new());
    ok(&run(&e.no2, "b9", "mac_net10", None));
    assert_eq!(addr(&e.no2, "b9"), "172.16.10.32/24", "b6's, released");
    assert!(pings(&e.no2, "b9", "172.16.10.10"), "b9 does not reach b1");
    assert!(
        pings(&e.no2, "b3", "172.16.10.10"),
        "b3 does not reach b1 after the agent's restart"
    );
    // A container started before the restart is released by `docker rm`.
    ok(&e.no2.docker(&["rm", "-f", "b4"]));
    assert_eq!(records(state, "no2"), 2, "b3 and b9");
}
