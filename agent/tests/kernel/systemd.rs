//! The agent as systemd runs it (root): the shipped unit and its Docker
//! drop-in pass `systemd-analyze verify`, and `READY=1` (Type=notify)
//! comes only once the start pass has made again what a "reboot" took —
//! so the runtimes ordered after the unit find the host as it was set.

use std::{
    os::unix::net::UnixDatagram,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use linkherd_agent::testing;
use linkherd_proto::pb::{self, macvlan_service_client::MacvlanServiceClient};
use test_support::{TestNetns, have_root};

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn the_unit_and_its_docker_drop_in_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().expect("dir");
    let unit = std::fs::read_to_string(repo().join("deploy/systemd/linkherd-agent.service"))
        .expect("unit")
        .replace(
            "/usr/local/bin/linkherd-agent",
            env!("CARGO_BIN_EXE_linkherd-agent"),
        );
    std::fs::write(dir.path().join("linkherd-agent.service"), unit).expect("write");
    let drop_ins = dir.path().join("linkherd-agent.service.d");
    std::fs::create_dir(&drop_ins).expect("dir");
    std::fs::copy(
        repo().join("deploy/systemd/linkherd-agent.service.d/docker-plugin.conf"),
        drop_ins.join("docker-plugin.conf"),
    )
    .expect("drop-in");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.path().join("linkherd-agent.service"))
        .env("SYSTEMD_UNIT_PATH", format!("{}:", dir.path().display()))
        .output()
        .expect("systemd-analyze (Debian's systemd package; scripts/setup.sh --tests)");
    let said = String::from_utf8_lossy(&out.stderr);
    // Units it is ordered before are not installed here; that is no fault.
    let faults: Vec<&str> = said
        .lines()
        .filter(|l| !l.contains("not found") && !l.trim().is_empty())
        .collect();
    assert!(out.status.success() && faults.is_empty(), "{said}");
}

/// `linkherd-agent` in namespace `ns` with state in `dir`, telling
/// `notify` when it is ready.
fn agent(ns: &TestNetns, dir: &Path, notify: Option<&Path>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_linkherd-agent"));
    cmd.arg("--socket")
        .arg(dir.join("agent.sock"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--run-dir")
        .arg(dir.join("run"))
        .arg("--netns")
        .arg(ns.path())
        .arg("--netns-prefix")
        .arg(format!("{}-", ns.name))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(n) = notify {
        cmd.env("NOTIFY_SOCKET", n);
    }
    cmd.spawn().expect("start the agent")
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn ready_is_sent_only_after_the_restore() {
    if !have_root("systemd-ready") {
        return;
    }
    let ns = TestNetns::new("sd-ready");
    ns.ip(&["link", "add", "up0", "type", "veth", "peer", "name", "up1"]);
    ns.ip(&["link", "set", "up0", "up"]);
    let made = format!("{}-b1", ns.name);
    let _made = TestNetns::guard(made.clone());
    let dir = tempfile::tempdir().expect("dir");
    {
        let _first = Killed(agent(&ns, dir.path(), None));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !dir.path().join("agent.sock").exists() {
            assert!(Instant::now() < deadline, "the agent did not listen");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let ch = testing::unix_channel(&dir.path().join("agent.sock")).await;
        MacvlanServiceClient::new(ch)
            .create(pb::CreateMacvlanRequest {
                endpoint: Some(pb::MacvlanEndpoint {
                    network: "net".into(),
                    name: "b1".into(),
                    parent: "up0".into(),
                    mode: pb::MacvlanMode::Bridge.into(),
                    netns: Some(pb::NetnsTarget {
                        target: Some(pb::netns_target::Target::Name("b1".into())),
                    }),
                    addresses: vec!["10.66.0.11/24".into()],
                    ..Default::default()
                }),
                create_netns: true,
            })
            .await
            .expect("b1");
    } // SIGKILL, as a power cut.
    test_support::run("ip", &["-n", &made, "link", "del", "eth0"]);
    test_support::run("ip", &["netns", "del", &made]);

    let notify = dir.path().join("notify.sock");
    let sd = UnixDatagram::bind(&notify).expect("notify socket");
    sd.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let _second = Killed(agent(&ns, dir.path(), Some(&notify)));
    let mut buf = [0u8; 512];
    let n = sd.recv(&mut buf).expect("a notification within 30 s");
    let said = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(said.lines().any(|l| l == "READY=1"), "{said}");
    // Ready means restored: b1 is back at that moment, not later.
    let link = test_support::run("ip", &["-n", &made, "-j", "addr", "show", "dev", "eth0"]);
    assert!(link.contains("10.66.0.11"), "{link}");
}
