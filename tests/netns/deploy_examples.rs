//! The files in deploy/ are examples people copy: they must work. The agent
//! configuration is started for real (paths pointed at a test PKI), the
//! linkherdctl configuration is loaded, and the security rules of the
//! environment-variable path are checked against the real binary.

use std::{path::PathBuf, process::Command, time::Duration};

use linkherd_lab::bins;
use linkherd_proto::model::Role;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn ctl_example_config_loads_with_both_hosts() {
    let cfg = linkherdctl::config::CtlConfig::load(&repo().join("deploy/examples/ctl.toml"))
        .expect("deploy/examples/ctl.toml must load");
    let names: Vec<&str> = cfg.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["no1", "no2"]);
    assert!(cfg.defaults.ca.expect("ca").ends_with("pki/ca.pem"));
}

#[test]
fn agent_refuses_plaintext_tcp_from_the_environment() {
    let out = Command::new(bins::agent().expect("agent built"))
        .env("LINKHERD_LISTEN", "0.0.0.0:7443")
        .env("LINKHERD_SOCKET", "none")
        .output()
        .expect("run agent");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing plaintext TCP on 0.0.0.0:7443"),
        "{err}"
    );
}

#[tokio::test]
async fn agent_example_config_serves_mtls() {
    if !test_support::have_root("agent_example_config_serves_mtls") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let pki = tmp.path().join("pki");
    linkherdctl::certs::init(&pki, 1, false).expect("ca");
    linkherdctl::certs::issue_agent(&pki, "agent", &["127.0.0.1".into()], 1).expect("agent");
    linkherdctl::certs::issue_client(&pki, "admin", Role::Admin, 1).expect("client");
    // The example, with its paths pointed at this test's files and a free port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let example = std::fs::read_to_string(repo().join("deploy/agent.toml")).expect("example");
    let cfg = example
        .replace("0.0.0.0:7443", &format!("127.0.0.1:{port}"))
        .replace(
            "/etc/linkherd/pki/agent.pem",
            &pki.join("agent-agent.pem").to_string_lossy(),
        )
        .replace(
            "/etc/linkherd/pki/agent-key.pem",
            &pki.join("agent-agent-key.pem").to_string_lossy(),
        )
        .replace(
            "/etc/linkherd/pki/ca.pem",
            &pki.join("ca.pem").to_string_lossy(),
        )
        .replace(
            "/run/linkherd/agent.sock",
            &tmp.path().join("agent.sock").to_string_lossy(),
        )
        .replace(
            "/var/lib/linkherd",
            &tmp.path().join("state").to_string_lossy(),
        );
    assert_ne!(
        cfg, example,
        "the example's paths changed: update this test"
    );
    let cfg_path = tmp.path().join("agent.toml");
    std::fs::write(&cfg_path, cfg).expect("write");

    let mut agent = Command::new(bins::agent().expect("agent built"))
        .arg("--config")
        .arg(&cfg_path)
        .spawn()
        .expect("start agent");
    let mut answered = None;
    for _ in 0..100 {
        let url = format!("https://127.0.0.1:{port}");
        let out = linkherd_lab::fleet::ctl_at(&url, &pki, &["host", "info", "-o", "json"]);
        if out.status.success() {
            answered = Some(out);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Stop the agent we started, by its PID, before asserting.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(agent.id()).expect("pid")),
        nix::sys::signal::Signal::SIGTERM,
    );
    let status = agent.wait().expect("wait");
    let out = answered.expect("the example configuration never answered over mTLS");
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(info["caller"]["transport"], "mtls");
    assert!(status.success(), "agent exit after SIGTERM: {status}");
    assert!(
        !tmp.path().join("agent.sock").exists(),
        "socket removed on shutdown"
    );
}

#[test]
fn fleet_spec_examples_pass_spec_check() {
    for (file, want) in [
        (
            "deploy/examples/seed-vlan.yaml",
            "mac_net10 vlan 10 172.16.10.0/24 on no1:ens192.10 no2:eth0.10",
        ),
        (
            "deploy/examples/seed-flat.yaml",
            "macvlan 10.0.100.0/24 on no1:ens192",
        ),
        (
            "deploy/examples/containers.yaml",
            "mac_net 10.0.100.0/24 on no1:ens192 no2:eth0 — 0 endpoint(s); containers on no1 no2, blocks /28",
        ),
    ] {
        let out = Command::new(bins::ctl().expect("linkherdctl built"))
            .args(["spec", "check", "-f"])
            .arg(repo().join(file))
            .output()
            .expect("run linkherdctl");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(want), "{file}: {text}");
    }
}

#[test]
fn spec_check_points_at_the_bad_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("fleet.yaml");
    std::fs::write(
        &bad,
        "hosts:\n  no1: {address: https://a:1, parent: ens192}\nnetworks:\n  mac_net10:\n    \
         subnet: 172.16.10.0/24\n    endpoints:\n      b3: {host: no1, ip: 172.16.20.5}\n",
    )
    .expect("write");
    let out = Command::new(bins::ctl().expect("linkherdctl built"))
        .args(["spec", "check", "-f"])
        .arg(&bad)
        .output()
        .expect("run linkherdctl");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "7:27: networks.mac_net10.endpoints.b3.ip: 172.16.20.5 is outside the subnet 172.16.10.0/24"
        ),
        "{err}"
    );
}
