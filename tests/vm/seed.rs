//! T4: the source document's VLAN scenario on real, separate kernels. Two
//! QEMU guests (no1 with NIC ens192, no2 with eth0) share one wire; driven
//! by the `linkherdctl` binary over mTLS through forwarded loopback ports:
//! VLAN 10 and 20 sub-interfaces, endpoints b1..b4, reachability within a
//! VLAN across hosts, isolation between VLANs, and the 802.1Q tags on the
//! wire.

use std::{path::PathBuf, time::Instant};

use linkherd_lab::{
    self as lab, HostSpec, LabGuard, LabState,
    fleet::{ctl_json as json, ctl_on as ctl, macvlan_create, text},
    vm::hub,
};

/// `probe tcp` from an endpoint's namespace; the exit status says whether
/// anything answered (0 connected, 2 refused = reachable, 1 no answer).
fn reach(state: &LabState, host: &str, netns: &str, to: &str) -> (i32, String) {
    let out = ctl(
        state,
        host,
        &[
            "probe",
            "tcp",
            "--netns",
            netns,
            "--to",
            to,
            "--port",
            "7",
            "--timeout-ms",
            "1500",
        ],
    );
    (out.status.code().unwrap_or(-1), text(&out.stdout))
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_vlan_scenario_on_real_kernels() {
    let _one = crate::ONE_AT_A_TIME.lock().await;
    if !test_support::have_root("seed_vlan_scenario_on_real_kernels") {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("seed-vm");
    let started = Instant::now();
    let state = lab::up(&dir, &HostSpec::seed(), lab::Backend::Vm, true)
        .await
        .expect("vm lab up");
    let _guard = LabGuard(state.dir.clone());
    eprintln!("vm lab up in {:?}", started.elapsed());

    // Real kernels with 802.1Q.
    for h in ["no1", "no2"] {
        let info = json(&state, h, &["host", "info"]);
        assert_eq!(info["hostname"], h);
        assert_eq!(info["capabilities"]["vlan"], true, "{info}");
    }

    // VLAN 10 and 20 on the differently named parents.
    for (h, nic) in [("no1", "ens192"), ("no2", "eth0")] {
        for id in ["10", "20"] {
            let r = json(&state, h, &["vlan", "create", "--parent", nic, "--id", id]);
            assert_eq!(r["outcome"], "created");
            assert_eq!(r["vlan"]["name"], format!("{nic}.{id}"));
        }
        let list = json(&state, h, &["vlan", "list"]);
        assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    }

    // The endpoints of the document.
    for (h, parent, name, ip, gw) in [
        ("no1", "ens192.10", "b1", "172.16.10.10/24", "172.16.10.1"),
        ("no1", "ens192.20", "b2", "172.16.20.10/24", "172.16.20.1"),
        ("no2", "eth0.10", "b3", "172.16.10.11/24", "172.16.10.1"),
        ("no2", "eth0.20", "b4", "172.16.20.11/24", "172.16.20.1"),
    ] {
        let net = if parent.ends_with(".10") {
            "mac_net10"
        } else {
            "mac_net20"
        };
        let r = json(
            &state,
            h,
            &macvlan_create(net, name, parent, name, Some(ip), Some(gw)),
        );
        assert_eq!(r["outcome"], "created", "{r}");
    }

    // Same VLAN across hosts: an answer (a refused port proves the path).
    for (h, from, to) in [
        ("no1", "b1", "172.16.10.11"),
        ("no2", "b3", "172.16.10.10"),
        ("no1", "b2", "172.16.20.11"),
        ("no2", "b4", "172.16.20.10"),
    ] {
        let (code, out) = reach(&state, h, from, to);
        assert_eq!(code, 2, "{from} on {h} -> {to}: {out}");
        assert!(out.contains("refused"), "{out}");
    }

    // Isolation: an address of VLAN 10's subnet placed on VLAN 20 (endpoint
    // x4 on no2) answers its VLAN-20 neighbour x2 on no1, but not b1 on
    // VLAN 10 although b1 is in the same subnet.
    for (h, parent, name, ip) in [
        ("no2", "eth0.20", "x4", "172.16.10.99/24"),
        ("no1", "ens192.20", "x2", "172.16.10.98/24"),
    ] {
        json(
            &state,
            h,
            &macvlan_create("mac_net10", name, parent, name, Some(ip), None),
        );
    }
    let (code, out) = reach(&state, "no1", "x2", "172.16.10.99");
    assert_eq!(code, 2, "x2 (VLAN 20) -> x4 (VLAN 20): {out}");
    let (code, out) = reach(&state, "no1", "b1", "172.16.10.99");
    assert_eq!(code, 1, "b1 (VLAN 10) reached x4 on VLAN 20: {out}");

    // Probes across hosts over the VLANs: ICMP, ARP, and a diagnosis that
    // finds the VLAN mismatch at the ARP layer.
    let ping = json(
        &state,
        "no1",
        &[
            "probe",
            "ping",
            "--netns",
            "b1",
            "--to",
            "172.16.10.11",
            "-c",
            "2",
            "--interval-ms",
            "100",
        ],
    );
    assert_eq!(ping["received"], 2, "{ping}");
    let b3_mac = json(&state, "no2", &["macvlan", "list"])
        .as_array()
        .and_then(|l| {
            l.iter()
                .find(|e| e["name"] == "b3")
                .map(|e| e["mac"].clone())
        })
        .expect("b3 listed");
    let arp = json(
        &state,
        "no1",
        &["probe", "arp", "--netns", "b1", "--to", "172.16.10.11"],
    );
    assert_eq!(arp["responders"][0]["mac"], b3_mac, "{arp}");
    let out = ctl(
        &state,
        "no1",
        &[
            "probe", "diagnose", "--from", "no1/b1", "--to", "no2/x4", "-o", "json",
        ],
    );
    let diag: serde_json::Value = serde_json::from_slice(&out.stdout).expect("diagnose json");
    let verdict = diag["verdict"].as_str().unwrap_or_default();
    assert!(
        verdict.starts_with("ARP for 172.16.10.99 is unanswered"),
        "{diag}"
    );
    assert!(verdict.contains("VLAN is not trunked"), "{verdict}");
    let out = ctl(
        &state,
        "no1",
        &["probe", "diagnose", "--from", "no1/b1", "--to", "no2/b3"],
    );
    assert!(out.status.success(), "{}", text(&out.stdout));

    // Promiscuous mode set remotely, as the guest kernel reports it.
    json(&state, "no1", &["promisc", "on", "ens192"]);
    let nic = json(&state, "no1", &["if", "get", "ens192"]);
    assert_eq!(nic["promiscuity"], 1, "{nic}");
    assert_eq!(nic["promiscuous"], true);

    // The wire carried real 802.1Q tags 10 and 20.
    let wire = state.wire.clone().expect("pcap");
    let tags = hub::vlan_ids(&wire).expect("read pcap");
    eprintln!("802.1Q frames on the wire by VLAN id: {tags:?}");
    assert!(
        tags.get(&10).copied().unwrap_or(0) > 0,
        "no VLAN 10 frames: {tags:?}"
    );
    assert!(
        tags.get(&20).copied().unwrap_or(0) > 0,
        "no VLAN 20 frames: {tags:?}"
    );

    let t = Instant::now();
    drop(_guard);
    eprintln!("vm lab down in {:?}", t.elapsed());
    assert!(!dir.join("lab.json").exists());
}
