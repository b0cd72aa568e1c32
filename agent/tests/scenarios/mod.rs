//! The endpoint lifecycle as one scenario list, run over the full gRPC stack
//! against the fake kernel and against the real one (as the kernel contract
//! is), so what the fast suite proves is also what the kernel does.
//!
//! A scenario sees its kernel only through [`Lab`]: it reads state through
//! the kernel seam (netlink on the real kernel, the contract suite holds
//! the two readings equal) and changes it behind the agent's back the way
//! an operator with `ip` would. Traffic is checked where the kernel carries
//! it. What only one kernel can show (macvlan modes on a switch, ARP, the
//! fake's restarts and process namespaces) stays in that kernel's suite.
#![allow(dead_code)]

use std::{net::IpAddr, path::PathBuf, sync::Arc};

use async_trait::async_trait;
use linkherd_agent::net::{NetError, NetOps};
use linkherd_proto::{
    model::{IfName, LinkDetails, MacAddr, MacvlanMode, Owner},
    pb::{self, macvlan_service_client::MacvlanServiceClient, netns_target::Target},
};
use tonic::{Code, transport::Channel};

/// One kernel with an agent on it, and an operator's hands on that kernel.
#[async_trait]
pub trait Lab: Send + Sync {
    /// The agent's NIC: the parent of the scenarios' endpoints.
    fn nic(&self) -> &str;
    /// A channel to the agent as an admin.
    fn admin(&self) -> Channel;
    /// The id the agent writes into its ownership marks.
    fn agent_id(&self) -> String;
    /// Whether this kernel has 802.1Q, judged without asking the agent.
    fn vlan_expected(&self) -> bool;
    /// The agent's own namespace, read through the kernel seam.
    fn host(&self) -> Arc<dyn NetOps>;
    /// Namespace `name` (as the agent names it), or None when it does not
    /// exist.
    async fn inside(&self, name: &str) -> Option<Arc<dyn NetOps>>;
    /// The file of namespace `name`, for requests that target a path.
    fn netns_path(&self, name: &str) -> PathBuf;
    /// `ip netns add NAME`.
    async fn add_netns(&self, name: &str);
    /// `ip -n NAME link add A type veth peer name B`.
    async fn add_veth_in(&self, name: &str, a: &str, b: &str);
    /// In namespace `name`: `cidr` on `dev`, `dev` up, and a default route
    /// via `via` (a namespace already routed, as a container's is).
    async fn add_default_route_in(&self, name: &str, dev: &str, cidr: &str, via: &str);
    /// A bridge macvlan `ifname` on the NIC that linkherd did not make,
    /// moved into namespace `name`.
    async fn add_foreign_macvlan(&self, name: &str, ifname: &str);
    /// `ip addr add CIDR dev NIC` in the agent's namespace.
    async fn add_host_addr(&self, cidr: &str);
    /// Whether TCP from namespace `from` (None: the agent's) reaches
    /// `ip:port` in namespace `to`; None where the kernel carries no
    /// traffic (the fake).
    async fn reaches(&self, from: Option<&str>, to: &str, ip: IpAddr, port: u16) -> Option<bool>;
    /// Whether `ifname` in namespace `name` announces itself when it comes
    /// up (gratuitous ARP, `arp_notify`).
    async fn announces(&self, name: &str, ifname: &str) -> bool;
}

/// Runs every scenario against the labs `$make(case)` builds (None skips,
/// e.g. without root).
macro_rules! lifecycle_tests {
    ($make:path) => {
        lifecycle_tests!(@each $make,
            endpoint_lives_in_its_namespace_with_a_stable_mac,
            vlans_on_this_kernel,
            foreign_links_are_deleted_only_when_forced,
            a_failure_half_way_leaves_nothing_behind,
            host_access_lets_the_host_reach_its_endpoints);
    };
    (@each $make:path, $($case:ident),*) => {$(
        #[tokio::test]
        async fn $case() {
            if let Some(lab) = $make(stringify!($case)).await {
                crate::scenarios::$case(&lab).await;
            }
        }
    )*};
}

fn name(s: &str) -> IfName {
    IfName::parse("name", s).expect("name")
}

pub fn named(ns: &str) -> Option<pb::NetnsTarget> {
    Some(pb::NetnsTarget {
        target: Some(Target::Name(ns.into())),
    })
}

/// Endpoint `network/ep` in a namespace named after it, gateway `.1`.
pub fn endpoint(network: &str, ep: &str, parent: &str, cidr: &str) -> pb::MacvlanEndpoint {
    pb::MacvlanEndpoint {
        network: network.into(),
        name: ep.into(),
        parent: parent.into(),
        mode: pb::MacvlanMode::Bridge.into(),
        netns: named(ep),
        addresses: vec![cidr.into()],
        gateway: cidr
            .rsplit_once('.')
            .map(|(n, _)| format!("{n}.1"))
            .unwrap_or_default(),
        ..Default::default()
    }
}

pub fn create(e: pb::MacvlanEndpoint, create_netns: bool) -> pb::CreateMacvlanRequest {
    pb::CreateMacvlanRequest {
        endpoint: Some(e),
        create_netns,
    }
}

fn delete(network: &str, ep: &str) -> pb::DeleteMacvlanRequest {
    pb::DeleteMacvlanRequest {
        network: network.into(),
        name: ep.into(),
        ..Default::default()
    }
}

fn mv(lab: &dyn Lab) -> MacvlanServiceClient<Channel> {
    MacvlanServiceClient::new(lab.admin())
}

/// Link names in namespace `name`, sorted.
async fn names_in(lab: &dyn Lab, ns: &str) -> Vec<String> {
    let inside = lab.inside(ns).await.expect("namespace exists");
    let mut names: Vec<String> = inside
        .links()
        .await
        .expect("links")
        .into_iter()
        .map(|l| l.name)
        .collect();
    names.sort();
    names
}

/// Whether the agent's namespace has link `ifname`.
async fn host_has(lab: &dyn Lab, ifname: &str) -> bool {
    match lab.host().link(&name(ifname)).await {
        Ok(_) => true,
        Err(NetError::NotFound { .. }) => false,
        Err(e) => panic!("reading {ifname}: {e}"),
    }
}

mod endpoint;
mod failures;

pub use endpoint::{endpoint_lives_in_its_namespace_with_a_stable_mac, vlans_on_this_kernel};
pub use failures::{
    a_failure_half_way_leaves_nothing_behind, foreign_links_are_deleted_only_when_forced,
    host_access_lets_the_host_reach_its_endpoints,
};

/// The bridge-mode macvlan details every endpoint in these scenarios has.
fn bridge() -> Option<LinkDetails> {
    Some(LinkDetails::Macvlan {
        mode: MacvlanMode::Bridge,
        source_macs: vec![],
    })
}

/// The owner a link's alias names, if any.
fn owner(alias: Option<&str>) -> Option<Owner> {
    alias.and_then(Owner::parse)
}

/// The stable MAC linkherd gives endpoint `network/ep`.
fn stable(network: &str, ep: &str) -> MacAddr {
    MacAddr::stable(network, ep)
}

/// The status code and message of a refusal.
fn refusal(err: &tonic::Status) -> (Code, &str) {
    (err.code(), err.message())
}
