//! A fleet of 20 lab hosts with 2 endpoints each, verified with the full
//! mesh (1600 probes): `apply` must exit 0 with no failed probe, and the
//! endpoints really be there (`ip -j`). It failed hundreds of probes while
//! the lab's hosts, which share one kernel, overflowed its single
//! neighbour table (1024 entries by default); the lab now makes room.

use std::path::PathBuf;

use linkherd_lab::{
    self as lab, HostSpec, LabGuard, LabState,
    fleet::{ctl, text, write_spec},
    sh::ip_in,
};
use test_support::have_root;

const HOSTS: usize = 20;

fn spec(state: &LabState) -> String {
    let mut s = String::from("hosts:\n");
    for h in &state.hosts {
        s.push_str(&format!(
            "  {}: {{address: \"{}\", parent: {}}}\n",
            h.name, h.agent_url, h.nic
        ));
    }
    s.push_str("networks:\n  scale:\n    subnet: 10.51.0.0/16\n    endpoints:\n");
    for (i, h) in state.hosts.iter().enumerate() {
        for k in 1..=2 {
            s.push_str(&format!(
                "      e{i}x{k}: {{host: {}, ip: 10.51.{i}.{}}}\n",
                h.name,
                10 + k
            ));
        }
    }
    s.push_str("verify: {mesh: true, mode: mesh, isolation: false}\n");
    s
}

fn neighbour_room() -> u64 {
    std::fs::read_to_string("/proc/sys/net/ipv4/neigh/default/gc_thresh3")
        .expect("gc_thresh3")
        .trim()
        .parse()
        .expect("number")
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_hosts_verified_by_the_full_mesh_with_no_failed_probe() {
    let _one = crate::ONE_AT_A_TIME.lock().await;
    if !have_root("the 20-host lab") {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("scale20");
    let hosts: Vec<HostSpec> = (1..=HOSTS)
        .map(|i| HostSpec {
            name: format!("s{i}"),
            nic: "eth0".into(),
        })
        .collect();
    let state = lab::up(&dir, &hosts, lab::Backend::Netns, true)
        .await
        .expect("lab up");
    let _guard = LabGuard(state.dir.clone());
    assert!(neighbour_room() >= 131_072, "{}", neighbour_room());
    let file = write_spec(&state.dir, "scale.yaml", &spec(&state));
    let out = ctl(&state, &["apply", "-y", "-f", &file]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "apply failed:\n{stdout}\n{stderr}"
    );
    // The verdict is progress: on stderr.
    let verdict = stderr
        .lines()
        .find(|l| l.starts_with("verify:"))
        .unwrap_or_default();
    assert!(
        verdict.starts_with("verify: ok: 1600 probe(s), 0 failed"),
        "{verdict}"
    );
    // Where the time went: the four phases of a confirmed apply, in order.
    let timing = stderr
        .lines()
        .find_map(|l| l.strip_prefix("Timing: "))
        .unwrap_or_default();
    let phases: Vec<&str> = timing
        .split(", ")
        .filter_map(|p| p.split_whitespace().next())
        .collect();
    assert_eq!(phases, ["plan", "apply", "verify", "confirm"], "{timing}");
    // Each endpoint is in its namespace, addressed as the spec says.
    for (i, h) in state.hosts.iter().enumerate() {
        let ns = format!("{}-e{i}x2", h.netns);
        let addrs = ip_in(&ns, &["-j", "-4", "addr", "show", "eth0"]).expect("ip -j");
        assert!(
            addrs.contains(&format!("\"10.51.{i}.12\"")),
            "{ns}: {addrs}"
        );
    }
    let out = ctl(&state, &["destroy", "-y", "-f", &file]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}
