//! The lifecycle scenarios against the fake kernel, once without 802.1Q
//! (like this project's CI machine) and once with it, so both branches of
//! every scenario run on every change.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use async_trait::async_trait;
use linkherd_agent::net::{NetOps, NewLink, NewLinkKind, Route, fake::FakeKernel};
use linkherd_proto::model::{IfName, MacvlanMode};
use tonic::transport::Channel;

use crate::{
    lifecycle::{Fixture, fixture},
    scenarios::Lab,
};

struct FakeLab {
    f: Fixture,
    vlan: bool,
}

fn name(s: &str) -> IfName {
    IfName::parse("name", s).expect("name")
}

fn path(ns: &str) -> PathBuf {
    Path::new("/run/netns").join(ns)
}

impl FakeLab {
    async fn new(vlan: bool) -> Self {
        Self {
            f: fixture(vlan).await,
            vlan,
        }
    }

    fn at(&self, ns: &str) -> FakeKernel {
        self.f.fake.namespace(&path(ns)).expect("namespace exists")
    }
}

#[async_trait]
impl Lab for FakeLab {
    fn nic(&self) -> &str {
        "ens192"
    }
    fn admin(&self) -> Channel {
        self.f.admin.clone()
    }
    fn agent_id(&self) -> String {
        self.f.agent.agent.context().host.agent().id().to_owned()
    }
    fn vlan_expected(&self) -> bool {
        self.vlan
    }
    fn host(&self) -> Arc<dyn NetOps> {
        self.f.fake.clone()
    }
    async fn inside(&self, ns: &str) -> Option<Arc<dyn NetOps>> {
        self.f.fake.netns(&path(ns)).await.ok()
    }
    fn netns_path(&self, ns: &str) -> PathBuf {
        path(ns)
    }
    async fn add_netns(&self, ns: &str) {
        self.f.fake.create_netns(ns).await.expect("netns");
    }
    async fn add_veth_in(&self, ns: &str, a: &str, b: &str) {
        self.at(ns).add_veth(a, b).expect("veth");
    }
    async fn add_default_route_in(&self, ns: &str, dev: &str, cidr: &str, via: &str) {
        let inside = self.at(ns);
        let link = inside.link(&name(dev)).await.expect("dev");
        inside
            .add_address(link.index, cidr.parse().expect("cidr"))
            .await
            .expect("addr");
        inside.set_up(link.index, true).await.expect("up");
        inside
            .add_route(&Route {
                dest: "0.0.0.0/0".parse().expect("cidr"),
                gateway: Some(via.parse().expect("ip")),
                index: link.index,
            })
            .await
            .expect("default route");
    }
    async fn add_foreign_macvlan(&self, ns: &str, ifname: &str) {
        let nic = self.f.fake.link(&name(self.nic())).await.expect("nic");
        self.f
            .fake
            .add_link(&NewLink {
                name: name(ifname),
                kind: NewLinkKind::Macvlan {
                    parent_index: nic.index,
                    mode: MacvlanMode::Bridge,
                    source_macs: vec![],
                },
                mtu: None,
                mac: None,
                alias: String::new(),
                group: 0,
                target: Some(path(ns)),
            })
            .await
            .expect("foreign macvlan");
    }
    async fn add_host_addr(&self, cidr: &str) {
        let nic = self.nic().to_owned();
        self.f
            .fake
            .add_addr(&nic, cidr.parse().expect("cidr"))
            .expect("addr");
    }
    async fn reaches(&self, _: Option<&str>, _: &str, _: IpAddr, _: u16) -> Option<bool> {
        None
    }
    async fn announces(&self, ns: &str, ifname: &str) -> bool {
        self.at(ns).announces(ifname)
    }
}

async fn plain(_case: &str) -> Option<FakeLab> {
    Some(FakeLab::new(false).await)
}

async fn with_8021q(_case: &str) -> Option<FakeLab> {
    Some(FakeLab::new(true).await)
}

mod without_vlans {
    use super::plain;
    lifecycle_tests!(plain);
}

mod with_vlans {
    use super::with_8021q;
    lifecycle_tests!(with_8021q);
}
