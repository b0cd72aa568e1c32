//! The kernel contract against the real kernel, inside a private network
//! namespace per test (root only; veth pairs stand in for NICs).

use crate::contract;

use std::sync::Arc;

use async_trait::async_trait;
use contract::{Env, Fixture};
use linkherd_agent::net::rtnl::Rtnl;
use test_support::{TestNetns, caps::kernel_has_vlan, have_root};

struct IpFixture {
    ns: String,
    vlan: bool,
}

impl Drop for IpFixture {
    /// Named namespaces a case created (and may have left behind on failure).
    fn drop(&mut self) {
        if let Ok(dir) = std::fs::read_dir("/run/netns") {
            for e in dir.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with(&format!("{}-", self.ns)) {
                    let _ = std::process::Command::new("ip")
                        .args(["netns", "del", &n])
                        .status();
                }
            }
        }
    }
}

impl IpFixture {
    fn ip(&self, args: &[&str]) {
        let mut full = vec!["-n", self.ns.as_str()];
        full.extend_from_slice(args);
        test_support::run("ip", &full);
    }
}

#[async_trait]
impl Fixture for IpFixture {
    async fn add_veth(&self, a: &str, b: &str) {
        self.ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
    }
    async fn del_link(&self, name: &str) {
        self.ip(&["link", "del", name]);
    }
    async fn add_addr(&self, name: &str, cidr: &str) {
        // nodad: the address is usable at once, as in the fake.
        if cidr.contains(':') {
            self.ip(&["addr", "add", cidr, "dev", name, "nodad"]);
        } else {
            self.ip(&["addr", "add", cidr, "dev", name]);
        }
    }
    fn vlan_expected(&self) -> bool {
        self.vlan
    }
    async fn add_bridge_with_port(&self, bridge: &str, port: &str) {
        self.ip(&["link", "add", bridge, "type", "bridge"]);
        self.ip(&["link", "set", port, "master", bridge]);
    }
    fn netns_name(&self, base: &str) -> String {
        format!("{}-{base}", self.ns)
    }
}

async fn make(case: &str) -> Option<(Env, TestNetns)> {
    if !have_root(case) {
        return None;
    }
    let ns = TestNetns::new("ct");
    let vlan = kernel_has_vlan(&ns);
    let net = Arc::new(Rtnl::in_netns(ns.path()).expect("netlink in netns"));
    Some((
        Env {
            net,
            fx: Box::new(IpFixture {
                ns: ns.name.clone(),
                vlan,
            }),
        },
        ns,
    ))
}

contract_tests!(make);
