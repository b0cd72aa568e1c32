//! `linkherd-cni` on real 802.1Q (QEMU guests; this kernel has none): the
//! static plugin inside each guest, driven through the lab's guest shell as
//! a runtime drives it, ADDs a container namespace to a VLAN network on
//! both guests. Apply makes the VLAN the catalog names (`PARENT.10`); one
//! removed behind linkherd's back is made again by the attach; each
//! container gets an address of its
//! host's block, the two reach each other across the guests, `verify` with
//! `verify.containers` proves them, the wire carries their frames tagged
//! 10, and DEL takes the interfaces away.

use std::{path::PathBuf, time::Duration};

use linkherd_lab::{
    self as lab, HostSpec, LabGuard, LabState,
    fleet::{apply_ok, ctl, ctl_json as json, seed_spec, text, write_spec},
    vm::{hub, shell},
};
use test_support::have_root;

/// Guests run on TCG: a netns, a plugin run or three pings take a while.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

const CONF: &str = r#"{"cniVersion":"1.1.0","name":"mac_net10","type":"linkherd-cni"}"#;

/// Runs `script` in `host`'s guest; panics naming its output unless it
/// exits 0. Its output.
fn sh(state: &LabState, host: &str, script: &str) -> String {
    let ran = shell::run(state, host, script, SCRIPT_TIMEOUT).expect("guest shell");
    assert_eq!(ran.status, 0, "on {host}:\n{script}\n->\n{}", ran.output);
    ran.output
}

/// `CNI_COMMAND=VERB linkherd-cni < conf` for container `ctr-HOST` in the
/// guest's namespace `ctr`.
fn cni(state: &LabState, host: &str, verb: &str) -> String {
    sh(
        state,
        host,
        &format!(
            "CNI_COMMAND={verb} CNI_CONTAINERID=ctr-{host} CNI_NETNS=/run/netns/ctr \
             CNI_IFNAME=eth0 CNI_PATH=/bin /bin/linkherd-cni < /tmp/mac_net10.conf"
        ),
    )
}

fn block_of(state: &LabState, spec: &str, host: &str) -> ipnet::Ipv4Net {
    let out = ctl(state, &["-o", "json", "get", "networks", "-f", spec]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let row = rows
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["host"] == host)
        .expect("host's row");
    row["blocks"][0]
        .as_str()
        .expect("a block")
        .parse()
        .expect("cidr")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_static_plugin_attaches_containers_to_a_vlan_across_guests() {
    let _one = crate::ONE_AT_A_TIME.lock().await;
    if !have_root("the vm CNI lab") {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cni-vm");
    let state = lab::up(&dir, &HostSpec::seed(), lab::Backend::Vm, true)
        .await
        .expect("vm lab up");
    let _guard = LabGuard(state.dir.clone());
    let spec = write_spec(
        &state.dir,
        "cni-vlan.yaml",
        &seed_spec(
            &state,
            "networks:\n  mac_net10:\n    vlan: 10\n    subnet: 172.16.10.0/24\n    \
             gateway: 172.16.10.1\n    hosts: [no1, no2]\n    containers: {block: 28}\n\
             verify: {containers: true, mode: mesh, timeout_ms: 1000}\n",
        ),
    );
    apply_ok(&state, &spec);
    let vlans = |host: &str| -> Vec<String> {
        json(&state, host, &["vlan", "list"])
            .as_array()
            .expect("vlans")
            .iter()
            .map(|v| v["name"].as_str().expect("name").to_owned())
            .collect()
    };
    // The catalog's parent is part of the desired state: apply made the
    // VLANs. no2's goes (someone removed it): the attach makes it again.
    assert_eq!(
        (vlans("no1"), vlans("no2")),
        (vec!["ens192.10".to_owned()], vec!["eth0.10".to_owned()])
    );
    sh(&state, "no2", "/bin/ip link del eth0.10");
    assert_eq!(vlans("no2"), Vec::<String>::new());

    let mut results = Vec::new();
    for (host, nic) in [("no1", "ens192"), ("no2", "eth0")] {
        sh(
            &state,
            host,
            &format!(
                "/bin/ip netns add ctr && /bin/ip -n ctr link set lo up && \
                 printf '%s' '{CONF}' > /tmp/mac_net10.conf"
            ),
        );
        let out = cni(&state, host, "ADD");
        let r: serde_json::Value =
            serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(r["cniVersion"], "1.1.0", "{r}");
        assert_eq!(r["interfaces"][0]["sandbox"], "/run/netns/ctr", "{r}");
        let cidr = r["ips"][0]["address"].as_str().expect("address");
        let ip: std::net::Ipv4Addr = cidr
            .split('/')
            .next()
            .and_then(|a| a.parse().ok())
            .expect("ip");
        let block = block_of(&state, &spec, host);
        assert!(block.contains(&ip), "{ip} outside {host}'s block {block}");
        // The agent made the VLAN the container hangs off.
        assert_eq!(vlans(host), [format!("{nic}.10")], "on {host}");
        let mac = r["interfaces"][0]["mac"].as_str().expect("mac").to_owned();
        results.push((ip, mac));
    }
    assert_ne!(
        results[0].0, results[1].0,
        "both hosts gave the same address"
    );
    // The VLAN the attach made is linkherd's as apply's was: nothing to do.
    let again = apply_ok(&state, &spec);
    assert!(
        again.contains("No changes: the fleet matches the spec."),
        "{again}"
    );

    // Across the guests, over VLAN 10, from inside the containers.
    sh(
        &state,
        "no1",
        &format!("/bin/ip netns exec ctr ping -c 3 -W 5 {}", results[1].0),
    );
    let out = ctl(&state, &["verify", "-f", &spec]);
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{shown}\n{}", text(&out.stderr));
    for from in ["ctr-no1/eth0@no1", "ctr-no2/eth0@no2"] {
        let row = shown
            .lines()
            .find(|l| l.split_whitespace().take(2).eq(["mac_net10", from]))
            .unwrap_or_else(|| panic!("no row {from} in:\n{shown}"));
        assert_eq!(row.matches(" ok ").count(), 1, "{row}\n{shown}");
    }
    let senders = hub::vlan_senders(&state.wire.clone().expect("pcap")).expect("read pcap");
    for (_, mac) in &results {
        assert!(
            senders.get(&10).is_some_and(|s| s.contains(mac)),
            "no frame from {mac} tagged 10 on the wire: {senders:?}"
        );
    }

    // DEL: the interface goes; the attachment with it.
    for host in ["no1", "no2"] {
        cni(&state, host, "DEL");
        let links = sh(&state, host, "/bin/ip -n ctr -o link show");
        assert!(!links.contains("eth0"), "{host}: {links}");
    }
    let out = ctl(&state, &["-o", "json", "get", "endpoints", "-f", &spec]);
    assert_eq!(text(&out.stdout).trim(), "[]");
}
