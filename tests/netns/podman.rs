//! Podman (its CNI backend, runc) running containers on a linkherd network
//! of a netns lab through `linkherd-cni`, one podman network configuration
//! per lab host: each container gets an address of its host's block (or the
//! one it asks for), containers on the two hosts reach each other, `podman
//! restart` keeps address and reachability, an address in use is refused
//! with the agent's words, `podman rm` releases the attachment, and with the
//! agent stopped `podman run` fails and leaves nothing; the restarted agent
//! still has its attachments.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use linkherd_lab::{
    self as lab, LabState,
    docker::busybox_rootfs,
    fleet::{apply_ok, seed_lab, seed_spec, text, write_spec},
};
use linkherdctl::spec::FleetSpec;
use test_support::have_root;

/// Podman with its storage under `dir`, and the lab's containers.conf and
/// network configuration directories (what `linkherd-lab` writes for
/// runtimes: this test proves they work).
struct Podman {
    dir: PathBuf,
    lab: LabState,
    names: Vec<String>,
}

impl Podman {
    fn new(dir: &Path, state: &LabState) -> Self {
        for d in ["root", "runroot"] {
            std::fs::create_dir_all(dir.join(d)).expect("mkdir");
        }
        let p = Self {
            dir: dir.to_owned(),
            lab: state.clone(),
            names: Vec::new(),
        };
        // The image: a busybox rootfs, no registry.
        let tar = busybox_rootfs(dir).expect("busybox rootfs");
        let out = p.run(None, &["import", tar.to_str().expect("path"), "lh-busybox"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        p
    }

    /// `podman ARGS` on `host`'s network configuration.
    fn run(&self, host: Option<&str>, args: &[&str]) -> Output {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.lab.containers_conf())
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .args(["--storage-driver", "vfs"]);
        if let Some(h) = host {
            c.arg("--network-config-dir").arg(self.lab.cni_dir(h));
        }
        c.args(args).output().expect("run podman")
    }

    /// Starts container `name` on `host` (extra `podman run` flags first).
    fn start(&mut self, host: &str, name: &str, flags: &[&str]) -> Output {
        self.names.push(name.to_owned());
        let mut args = vec!["run", "-d", "--name", name, "--network", "net_a"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["lh-busybox", "sleep", "3600"]);
        self.run(Some(host), &args)
    }

    fn addr(&self, host: &str, name: &str) -> String {
        let out = self.run(
            Some(host),
            &["exec", name, "ip", "-4", "-o", "addr", "show", "eth0"],
        );
        let t = text(&out.stdout);
        t.split_whitespace()
            .skip_while(|w| *w != "inet")
            .nth(1)
            .unwrap_or_default()
            .to_owned()
    }

    fn pings(&self, host: &str, name: &str, ip: &str) -> bool {
        let out = self.run(
            Some(host),
            &["exec", name, "ping", "-c", "1", "-W", "2", ip],
        );
        out.status.success()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = self.run(None, &["rm", "-f", "-t", "0", n]);
        }
    }
}

fn attachments(state: &LabState, host: &str) -> Vec<String> {
    let dir = state.dir.join(host).join("state/attachments");
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_containers_on_two_hosts_reach_each_other_and_keep_their_addresses() {
    if !have_root("the podman lab") {
        return;
    }
    assert!(
        Command::new("podman")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "podman is missing: scripts/setup.sh installs it"
    );
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("podman");
    let (mut state, _guard) = seed_lab(&dir).await;
    let spec = write_spec(
        &state.dir,
        "podman.yaml",
        &seed_spec(
            &state,
            "networks:\n  net_a:\n    subnet: 10.0.100.0/24\n    gateway: 10.0.100.1\n    \
             hosts: [no1, no2]\n    containers: {block: 28}\n",
        ),
    );
    apply_ok(&state, &spec);
    let parsed = FleetSpec::load(Path::new(&spec)).expect("spec");
    let lists = lab::containers::write_networks(&state, &parsed).expect("network lists");
    assert_eq!(
        lists,
        [
            state.cni_dir("no1").join("net_a.conflist"),
            state.cni_dir("no2").join("net_a.conflist")
        ]
    );
    let tag = std::process::id();
    let (b1, b2, b3) = (
        format!("lhp{tag}-b1"),
        format!("lhp{tag}-b2"),
        format!("lhp{tag}-b3"),
    );
    let mut p = Podman::new(&dir.join("podman"), &state);

    let out = p.start("no1", &b1, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = p.start("no2", &b2, &["--ip", "10.0.100.200"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = p.start("no2", &b3, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        p.addr("no1", &b1),
        "10.0.100.16/24",
        "no1's block is .16/28"
    );
    assert_eq!(p.addr("no2", &b2), "10.0.100.200/24");
    assert_eq!(
        p.addr("no2", &b3),
        "10.0.100.32/24",
        "no2's block is .32/28"
    );
    assert!(
        p.pings("no1", &b1, "10.0.100.200"),
        "b1 on no1 does not reach b2 on no2"
    );
    assert!(
        p.pings("no2", &b3, "10.0.100.16"),
        "b3 on no2 does not reach b1 on no1"
    );

    // Restarted: a new namespace, the same address, reachable again.
    let out = p.run(Some("no1"), &["restart", "-t", "0", &b1]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(p.addr("no1", &b1), "10.0.100.16/24");
    assert!(
        p.pings("no2", &b2, "10.0.100.16"),
        "b1 unreachable after its restart"
    );

    // An address in use is refused, with the agent's words.
    let b4 = format!("lhp{tag}-b4");
    let out = p.start("no2", &b4, &["--ip", "10.0.100.200"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("address 10.0.100.200 is attached to another container on this host already"),
        "{err}"
    );

    // rm releases the attachment.
    assert_eq!(attachments(&state, "no1").len(), 1);
    let out = p.run(Some("no1"), &["rm", "-f", "-t", "0", &b1]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(attachments(&state, "no1"), Vec::<String>::new());

    // The agent stopped: podman run fails, and nothing is attached.
    let pid = state.host("no2").and_then(|h| h.pid).expect("agent pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the agent this lab started");
    let b5 = format!("lhp{tag}-b5");
    let out = p.start("no2", &b5, &[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("cannot reach linkherd-agent at "), "{err}");
    lab::restart_agent(&mut state, "no2")
        .await
        .expect("restart no2");
    let kept = attachments(&state, "no2");
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(
        p.pings("no2", &b3, "10.0.100.200"),
        "b3 does not reach b2 after the agent's restart"
    );

    // b3's macvlan deleted from the host side: made again by the agent,
    // with the same MAC and address, and b3 reaches b2 again.
    let mac = |p: &Podman| {
        let out = p.run(
            Some("no2"),
            &["exec", &b3, "cat", "/sys/class/net/eth0/address"],
        );
        text(&out.stdout).trim().to_owned()
    };
    let (mac_before, addr_before) = (mac(&p), p.addr("no2", &b3));
    let out = p.run(Some("no2"), &["inspect", "-f", "{{.State.Pid}}", &b3]);
    let pid = text(&out.stdout).trim().to_owned();
    let del = Command::new("nsenter")
        .args(["-t", &pid, "-n", "ip", "link", "del", "eth0"])
        .output()
        .expect("nsenter");
    assert!(del.status.success(), "{}", text(&del.stderr));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while p.addr("no2", &b3) != addr_before {
        assert!(
            std::time::Instant::now() < deadline,
            "b3's link not made again"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(mac(&p), mac_before, "the same MAC");
    assert!(p.pings("no2", &b3, "10.0.100.200"), "b3 reaches b2 again");

    // b2 removed while no2's agent is stopped (its runtime's DEL cannot
    // reach the agent): after the restart it is stale, and released once
    // its grace is over (the lab's agents wait 3 s), audited.
    lab::stop_agent(&mut state, "no2").expect("stop no2");
    let _ = p.run(Some("no2"), &["rm", "-f", "-t", "0", &b2]);
    lab::restart_agent(&mut state, "no2")
        .await
        .expect("start no2");
    assert_eq!(
        attachments(&state, "no2").len(),
        2,
        "kept through the grace"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while attachments(&state, "no2").len() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "b2's attachment not released"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The audit log is written behind the agent's answers: give it a moment.
    let released = || {
        let audit =
            std::fs::read_to_string(state.dir.join("no2/state/audit.log")).unwrap_or_default();
        audit.lines().any(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .is_ok_and(|r| r["action"] == "release" && r["result"] == "ok")
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !released() {
        assert!(
            std::time::Instant::now() < deadline,
            "no release in the audit log"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
