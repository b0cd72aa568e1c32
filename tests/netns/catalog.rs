//! A network opened to containers (`containers: {block: 28}`), applied to
//! two real agents (netns lab, mTLS): each host's catalog gets the network
//! resolved for it with its own block, which never holds an endpoint's
//! address; `get networks` shows it, the state directory keeps it, a
//! second apply changes nothing (the blocks are sticky), and destroy takes
//! it away.

use std::path::PathBuf;

use linkherd_lab::{
    self as lab, HostSpec, LabGuard,
    fleet::{apply_ok, ctl, seed_spec, text, write_spec},
};
use test_support::have_root;

fn json(out: &std::process::Output) -> serde_json::Value {
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_network_open_to_containers_gets_a_block_per_host_in_each_catalog() {
    if !have_root("the catalog lab") {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("catalog");
    let state = lab::up(&dir, &HostSpec::seed(), lab::Backend::Netns, true)
        .await
        .expect("lab up");
    let _guard = LabGuard(state.dir.clone());
    let spec = write_spec(
        &state.dir,
        "containers.yaml",
        &seed_spec(
            &state,
            "networks:\n  net_a:\n    subnet: 10.0.100.0/24\n    gateway: 10.0.100.1\n    \
             containers: {block: 28, range: 10.0.100.128/25}\n    endpoints:\n      \
             b1: {host: no1, ip: 10.0.100.130}\n      b3: {host: no2}\n\
             verify: {mesh: true, mode: mesh, timeout_ms: 500}\n",
        ),
    );
    let stdout = apply_ok(&state, &spec);
    // .128/28 holds b1's fixed .130: no1 gets the next block, no2 the one
    // after, in host order.
    assert!(
        stdout.contains("+ network     net_a                    on ens192, 10.0.100.0/24 blocks 10.0.100.144/28\n")
            && stdout.contains("+ network     net_a                    on eth0, 10.0.100.0/24 blocks 10.0.100.160/28\n"),
        "{stdout}"
    );
    let rows = json(&ctl(
        &state,
        &["-o", "json", "get", "networks", "-f", &spec],
    ));
    let got: Vec<(String, bool, String, String)> = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["host"].as_str().unwrap_or_default().to_owned(),
                r["present"].as_bool().unwrap_or_default(),
                r["parent"].as_str().unwrap_or_default().to_owned(),
                r["blocks"].to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "no1".into(),
                true,
                "ens192".into(),
                r#"["10.0.100.144/28"]"#.into()
            ),
            (
                "no2".into(),
                true,
                "eth0".into(),
                r#"["10.0.100.160/28"]"#.into()
            ),
        ]
    );
    // b3 got an address outside every block; the agent keeps the catalog.
    let eps = json(&ctl(
        &state,
        &["-o", "json", "get", "endpoints", "-f", &spec],
    ));
    let b3 = eps
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["endpoint"] == "b3")
        .expect("b3");
    assert_eq!(b3["addresses"], serde_json::json!(["10.0.100.2/24"]));
    let record = state.dir.join("no2/state/networks/net_a.json");
    let kept: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).expect("catalog record")).expect("json");
    assert_eq!(kept["v4"]["blocks"], serde_json::json!(["10.0.100.160/28"]));

    // Again: the blocks stay, nothing to do.
    let out = ctl(&state, &["apply", "-y", "-f", &spec]);
    assert!(
        text(&out.stdout).ends_with("No changes: the fleet matches the spec.\n"),
        "{}",
        text(&out.stdout)
    );
    let out = ctl(&state, &["destroy", "-y", "-f", &spec]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rows = json(&ctl(
        &state,
        &["-o", "json", "get", "networks", "-f", &spec],
    ));
    let present: Vec<bool> = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["present"].as_bool().unwrap_or(true))
        .collect();
    assert_eq!(present, [false, false]);
    assert!(!record.exists(), "the catalog record outlived destroy");
}
