//! `linkherdctl plan -f` against two real agents (netns lab, mTLS): the plan
//! reads every host, allocates addresses around what the fleet already uses,
//! shows per-host changes and exit status 2 — and changes nothing, checked
//! with `ip -j` in every host namespace.

use std::path::PathBuf;

use linkherd_lab::{
    self as lab, HostSpec, LabGuard,
    fleet::{ctl, ctl_on, lab_namespaces, links, macvlan_create, text, write_spec},
    sh::ip_in,
};
use test_support::have_root;

#[tokio::test(flavor = "multi_thread")]
async fn plan_reads_the_fleet_allocates_around_it_and_changes_nothing() {
    if !have_root("the fleet plan lab") {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fleet-plan");
    let state = lab::up(&dir, &HostSpec::seed(), lab::Backend::Netns, true)
        .await
        .expect("lab up");
    let _guard = LabGuard(state.dir.clone());
    let no1 = state.host("no1").expect("no1").clone();
    let no2 = state.host("no2").expect("no2").clone();
    let hosts = format!(
        "hosts:\n  no1: {{address: \"{}\", parent: ens192}}\n  no2: {{address: \"{}\", parent: eth0}}\n",
        no1.agent_url, no2.agent_url
    );
    let spec = write_spec(
        &dir,
        "flat.yaml",
        &format!(
            "{hosts}networks:\n  macvlan:\n    subnet: 10.0.100.0/24\n    gateway: 10.0.100.33\n    \
             host_access: {{no1: 10.0.100.250}}\n    endpoints:\n      node_1: {{host: no1, ip: 10.0.100.100}}\n      \
             node_2: {{host: no2}}\n"
        ),
    );

    // Something else on no2 already uses 10.0.100.1.
    let out = ctl_on(
        &state,
        "no2",
        &macvlan_create("other", "x", "eth0", "x", Some("10.0.100.1/24"), None),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let before = (links(&no1.netns), links(&no2.netns), lab_namespaces(&state));
    let out = ctl(&state, &["plan", "-f", &spec]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    let want = format!(
        "no1 ({}):\n  \
         + endpoint    macvlan/node_1           eth0 in netns node_1 on ens192 (bridge), 10.0.100.100/24\n  \
         + host-access macvlan                  lh-macvlan on ens192 -> 10.0.100.100/32\n\
         no2 ({}):\n  \
         + endpoint    macvlan/node_2           eth0 in netns node_2 on eth0 (bridge), 10.0.100.2/24\n\
         Plan: 3 to create, 0 to change, 0 to delete.\n",
        no1.agent_url, no2.agent_url
    );
    assert_eq!(shown, want);
    // A plan changes nothing.
    assert_eq!(
        (links(&no1.netns), links(&no2.netns), lab_namespaces(&state)),
        before
    );

    // What the hosts already have is kept: node_1 made by hand as the spec
    // says is no longer a change, and its address stays.
    let out = ctl_on(
        &state,
        "no1",
        &macvlan_create(
            "macvlan",
            "node_1",
            "ens192",
            "node_1",
            Some("10.0.100.100/24"),
            Some("10.0.100.33"),
        ),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = ctl(&state, &["plan", "-f", &spec, "-o", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let objects: Vec<String> = v
        .as_array()
        .expect("array")
        .iter()
        .flat_map(|h| {
            let host = h["host"].as_str().expect("host").to_owned();
            h["changes"]
                .as_array()
                .expect("changes")
                .iter()
                .map(move |c| {
                    format!("{host} {} {} {}", c["action"], c["kind"], c["object"]).replace('"', "")
                })
        })
        .collect();
    assert_eq!(
        objects,
        [
            "no1 create host-access macvlan",
            "no2 create endpoint macvlan/node_2"
        ]
    );

    // `status` tells the same as drift.
    let out = ctl(&state, &["status", "-f", &spec]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "no1: 1 difference(s) from the spec\n  \
         missing  host-access macvlan                  lh-macvlan on ens192 -> 10.0.100.100/32\n\
         no2: 1 difference(s) from the spec\n  \
         missing  endpoint    macvlan/node_2           eth0 in netns node_2 on eth0 (bridge), 10.0.100.2/24\n"
    );
    // A spec the fleet matches is in sync (other networks are not its business).
    let synced = write_spec(
        &dir,
        "synced.yaml",
        &format!(
            "{hosts}networks:\n  macvlan:\n    subnet: 10.0.100.0/24\n    gateway: 10.0.100.33\n    \
             endpoints:\n      node_1: {{host: no1, ip: 10.0.100.100}}\n"
        ),
    );
    let out = ctl(&state, &["status", "-f", &synced]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "no1: in sync\nno2: in sync\n");
    let out = ctl(&state, &["plan", "-f", &synced]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).ends_with("No changes: the fleet matches the spec.\n"),
        "{}",
        text(&out.stdout)
    );

    // `get endpoints` reports what the hosts have, as the kernel has it.
    let out = ctl(&state, &["get", "endpoints", "-f", &spec, "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let node1 = &rows[0];
    assert_eq!(
        (
            &node1["endpoint"],
            &node1["host"],
            &node1["present"],
            &node1["parent"]
        ),
        (
            &serde_json::json!("node_1"),
            &serde_json::json!("no1"),
            &serde_json::json!(true),
            &serde_json::json!("ens192")
        )
    );
    assert_eq!(node1["addresses"], serde_json::json!(["10.0.100.100/24"]));
    let kernel = ip_in(
        &format!("{}-node_1", no1.netns),
        &["-j", "link", "show", "eth0"],
    )
    .expect("ip -j link in node_1");
    let kernel: serde_json::Value = serde_json::from_str(&kernel).expect("json");
    assert_eq!(node1["mac"], kernel[0]["address"]);
    let node2 = &rows[1];
    assert_eq!(
        (&node2["endpoint"], &node2["present"], &node2["addresses"]),
        (
            &serde_json::json!("node_2"),
            &serde_json::json!(false),
            &serde_json::json!([])
        )
    );
    let table = text(&ctl(&state, &["get", "endpoints", "-f", &spec]).stdout);
    assert!(table.contains("node_2"), "{table}");
    assert!(table.contains("(missing)"), "{table}");

    // A fixed address that something else in the fleet uses is refused,
    // naming both users.
    let clash = write_spec(
        &dir,
        "clash.yaml",
        &format!(
            "{hosts}networks:\n  macvlan:\n    subnet: 10.0.100.0/24\n    endpoints:\n      \
             node_3: {{host: no1, ip: 10.0.100.1}}\n"
        ),
    );
    let out = ctl(&state, &["plan", "-f", &clash]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: networks.macvlan: 10.0.100.1 is wanted by both no2/other/x and node_3\n"
    );

    // A host that does not answer fails the plan before anything, named.
    let down = write_spec(
        &dir,
        "down.yaml",
        &format!(
            "{hosts}  no3: {{address: \"https://127.0.0.1:1\", parent: eth0}}\nnetworks:\n  macvlan:\n    \
             subnet: 10.0.100.0/24\n    endpoints:\n      node_1: {{host: no1, ip: 10.0.100.100}}\n"
        ),
    );
    let out = ctl(&state, &["plan", "-f", &down]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: cannot reach no3 (https://127.0.0.1:1): "),
        "{err}"
    );
    assert!(err.trim_end().ends_with("; nothing was changed"), "{err}");
}
