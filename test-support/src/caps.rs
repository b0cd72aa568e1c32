//! Independent checks of what the kernel can do, used to judge the agent's
//! own capability probe and to choose what a test can prove here.

use std::process::Command;

use crate::netns::TestNetns;

/// True when `ip` can create an 802.1Q VLAN in `ns` (a module may be built
/// in or loadable, so trying is the only reliable test).
pub fn kernel_has_vlan(ns: &TestNetns) -> bool {
    ns.ip(&[
        "link", "add", "vprobe-p", "type", "veth", "peer", "name", "vprobe-q",
    ]);
    let ok = Command::new("ip")
        .args([
            "-n", &ns.name, "link", "add", "link", "vprobe-p", "name", "vprobe.5", "type", "vlan",
            "id", "5",
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    ns.ip(&["link", "del", "vprobe-p"]);
    ok
}
