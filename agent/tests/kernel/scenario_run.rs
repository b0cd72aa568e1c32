//! The lifecycle scenarios against the real kernel (root only): the agent
//! on a private namespace whose NIC `up0` is a veth plugged into a switch
//! namespace. Operator changes are made with `ip`; traffic is real TCP.

use std::{net::IpAddr, path::PathBuf, sync::Arc};

use async_trait::async_trait;
use linkherd_agent::{
    net::{NetOps, netns::NetnsGuard},
    testing::tcp_reaches,
};
use test_support::caps::kernel_has_vlan;
use tonic::transport::Channel;

use crate::{
    lifecycle::{Lab as KernelLab, lab},
    scenarios::Lab,
};

struct Run {
    lab: KernelLab,
    vlan: bool,
}

impl Run {
    fn ip_in(&self, ns: &str, args: &[&str]) {
        let full_ns = self.lab.ns(ns);
        let mut full = vec!["-n", full_ns.as_str()];
        full.extend_from_slice(args);
        test_support::run("ip", &full);
    }
}

#[async_trait]
impl Lab for Run {
    fn nic(&self) -> &str {
        "up0"
    }
    fn admin(&self) -> Channel {
        self.lab.admin.clone()
    }
    fn agent_id(&self) -> String {
        self.lab.agent.agent.context().host.agent().id().to_owned()
    }
    fn vlan_expected(&self) -> bool {
        self.vlan
    }
    fn host(&self) -> Arc<dyn NetOps> {
        self.lab.net.clone()
    }
    async fn inside(&self, ns: &str) -> Option<Arc<dyn NetOps>> {
        let file = self.netns_path(ns);
        if !file.exists() {
            return None;
        }
        Some(self.lab.net.netns(&file).await.expect("netlink inside"))
    }
    fn netns_path(&self, ns: &str) -> PathBuf {
        PathBuf::from("/run/netns").join(self.lab.ns(ns))
    }
    async fn add_netns(&self, ns: &str) {
        test_support::run("ip", &["netns", "add", &self.lab.ns(ns)]);
    }
    async fn add_veth_in(&self, ns: &str, a: &str, b: &str) {
        self.ip_in(ns, &["link", "add", a, "type", "veth", "peer", "name", b]);
    }
    async fn add_default_route_in(&self, ns: &str, dev: &str, cidr: &str, via: &str) {
        self.ip_in(ns, &["addr", "add", cidr, "dev", dev]);
        self.ip_in(ns, &["link", "set", dev, "up"]);
        self.ip_in(ns, &["route", "add", "default", "via", via]);
    }
    async fn add_foreign_macvlan(&self, ns: &str, ifname: &str) {
        let host = &self.lab.host;
        host.ip(&[
            "link", "add", ifname, "link", "up0", "type", "macvlan", "mode", "bridge",
        ]);
        host.ip(&["link", "set", ifname, "netns", &self.lab.ns(ns)]);
    }
    async fn add_host_addr(&self, cidr: &str) {
        self.lab.host.ip(&["addr", "add", cidr, "dev", "up0"]);
    }
    async fn reaches(&self, from: Option<&str>, to: &str, ip: IpAddr, port: u16) -> Option<bool> {
        let from = from.map_or_else(|| self.lab.host.path(), |ns| self.netns_path(ns));
        let to = self.netns_path(to);
        let reached = tokio::task::spawn_blocking(move || tcp_reaches(&from, &to, ip, port));
        Some(reached.await.expect("probe thread"))
    }
    async fn announces(&self, ns: &str, ifname: &str) -> bool {
        let file = self.netns_path(ns);
        let knob = format!("/proc/sys/net/ipv4/conf/{ifname}/arp_notify");
        let value = tokio::task::spawn_blocking(move || {
            let _inside = NetnsGuard::enter(&file).expect("enter");
            std::fs::read_to_string(knob).expect("arp_notify")
        });
        value.await.expect("thread").trim() == "1"
    }
}

/// A lab per case, tagged short (namespace names carry the tag).
async fn make(case: &str) -> Option<Run> {
    let tag: String = format!("sc-{}", case.chars().take(10).collect::<String>());
    let lab = lab(&tag).await?;
    let vlan = kernel_has_vlan(&lab.host);
    Some(Run { lab, vlan })
}

lifecycle_tests!(make);
