//! The headline, end to end on real kernels with 802.1Q (QEMU guests, this
//! kernel has none): `linkherdctl apply -f deploy/examples/seed-vlan.yaml`
//! creates VLANs 10 and 20 on ens192 (no1) and eth0 (no2) and b1..b4 in one
//! step, proves b1<->b3 and b2<->b4 reach each other across the hosts and
//! that the VLANs are isolated, re-applies as a no-op, and `destroy` takes
//! it all away again. The guests' kernels are read through their agents;
//! the wire through the lab hub's capture.

use std::{path::Path, path::PathBuf};

use linkherd_lab::{
    self as lab, HostSpec, LabGuard,
    fleet::{ctl, ctl_json as json, text, write_spec},
    vm::hub,
};
use test_support::have_root;

fn names(v: &serde_json::Value) -> Vec<String> {
    let mut n: Vec<String> = v
        .as_array()
        .expect("list")
        .iter()
        .map(|x| x["name"].as_str().expect("name").to_owned())
        .collect();
    n.sort();
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_vlan_spec_applied_proven_and_destroyed_on_real_kernels() {
    let _one = crate::ONE_AT_A_TIME.lock().await;
    if !have_root("the vm fleet lab") {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fleet-vm");
    let state = lab::up(&dir, &HostSpec::seed(), lab::Backend::Vm, true)
        .await
        .expect("vm lab up");
    let _guard = LabGuard(state.dir.clone());
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/seed-vlan.yaml"),
    )
    .expect("seed-vlan.yaml");
    let spec = write_spec(&state.dir, "seed-vlan.yaml", &state.fleet_spec(&example));

    let out = ctl(&state, &["apply", "-y", "-f", &spec]);
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{shown}\n{}", text(&out.stderr));
    for line in [
        "  + vlan        ens192.10                VLAN 802.1Q 10 on ens192",
        "  + vlan        eth0.20                  VLAN 802.1Q 20 on eth0",
        "  + endpoint    mac_net10/b1             eth0 in netns b1 on ens192.10 (bridge), 172.16.10.10/24",
        "  + endpoint    mac_net20/b4             eth0 in netns b4 on eth0.20 (bridge), 172.16.20.11/24",
        "Plan: 8 to create, 0 to change, 0 to delete.",
        "Apply complete: 8 change(s) confirmed on no1, no2.",
    ] {
        assert!(shown.contains(line), "missing {line:?} in:\n{shown}");
    }
    // The matrix: each endpoint reaches its VLAN neighbour on the other
    // host and is isolated from both endpoints of the other VLAN.
    let rows: Vec<&str> = shown
        .lines()
        .filter(|l| l.starts_with(" mac_net"))
        .collect();
    assert_eq!(rows.len(), 4, "{shown}");
    for r in &rows {
        assert_eq!(
            (r.matches(" ok ").count(), r.matches("isolated").count()),
            (1, 2),
            "{r}\n{shown}"
        );
    }
    assert!(
        shown.contains("address check (RFC 5227): 4 of 4 address(es) used only by their endpoint"),
        "{shown}"
    );

    // What the guests' kernels now have, as their agents read it.
    for (h, nic, eps) in [
        ("no1", "ens192", ["b1", "b2"]),
        ("no2", "eth0", ["b3", "b4"]),
    ] {
        assert_eq!(
            names(&json(&state, h, &["vlan", "list"])),
            [format!("{nic}.10"), format!("{nic}.20")]
        );
        assert_eq!(names(&json(&state, h, &["macvlan", "list"])), eps);
    }
    // And the wire carried both tags.
    let tags = hub::vlan_ids(&state.wire.clone().expect("pcap")).expect("read pcap");
    assert!(
        tags.get(&10).copied().unwrap_or(0) > 0 && tags.get(&20).copied().unwrap_or(0) > 0,
        "802.1Q tags on the wire: {tags:?}"
    );

    // Again: no changes.
    let out = ctl(&state, &["apply", "-y", "-f", &spec]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).ends_with("No changes: the fleet matches the spec.\n"),
        "{}",
        text(&out.stdout)
    );

    // destroy: endpoints first, then the VLANs linkherd made.
    let out = ctl(&state, &["destroy", "-y", "-f", &spec]);
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{shown}\n{}", text(&out.stderr));
    assert!(
        shown.contains("Plan: 0 to create, 0 to change, 8 to delete."),
        "{shown}"
    );
    for h in ["no1", "no2"] {
        assert_eq!(
            names(&json(&state, h, &["vlan", "list"])),
            Vec::<String>::new()
        );
        assert_eq!(
            names(&json(&state, h, &["macvlan", "list"])),
            Vec::<String>::new()
        );
    }
}
