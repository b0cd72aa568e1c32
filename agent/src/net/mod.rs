//! The kernel seam: the only part of the agent that changes or reads the
//! kernel's network state.
//!
//! [`NetOps`] speaks in domain verbs over model types, so everything above it
//! (services, transactions, leases) is testable without root against
//! [`fake::FakeKernel`], while [`rtnl::Rtnl`] does the same over netlink. One
//! contract suite (`agent/tests/contract`) runs against both and keeps the fake
//! honest. The probes ([`probe`]: ARP, ICMP, TCP from inside a namespace)
//! live here too: they are the other code that opens sockets in the kernel.

#[cfg(feature = "fake")]
pub mod fake;
pub mod neigh;
pub mod netns;
pub mod probe;
pub mod rtnl;

use std::{
    fmt,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use async_trait::async_trait;
use ipnet::IpNet;
use linkherd_proto::model::{IfName, Interface, MacAddr, MacvlanMode, VlanId, VlanProtocol};
use tokio::sync::mpsc;

/// Why a kernel operation failed, mapped once from errno in `rtnl` (and
/// mimicked by the fake) so that callers never look at raw numbers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{what} already exists")]
    AlreadyExists { what: String },
    /// EOPNOTSUPP: the kernel lacks the feature (e.g. no 8021q module).
    #[error("{op}: not supported by this kernel: {detail}")]
    Unsupported { op: &'static str, detail: String },
    /// EBUSY: the device is in use in a way that forbids the change.
    #[error("{op}: device busy: {detail}")]
    Busy { op: &'static str, detail: String },
    /// EPERM / EACCES from the kernel: the agent itself lacks a privilege —
    /// never the caller's role, which the auth layer decides.
    #[error(
        "{op}: the kernel refused the agent (EPERM): run linkherd-agent as root or with \
         CAP_NET_ADMIN, CAP_SYS_ADMIN and CAP_NET_RAW (see deploy/systemd/linkherd-agent.service)"
    )]
    PermissionDenied { op: &'static str },
    /// EINVAL / ERANGE: the kernel rejected a value.
    #[error("{op}: rejected by the kernel: {detail}")]
    Invalid { op: &'static str, detail: String },
    /// Any other errno.
    #[error("{op}: kernel error {errno} ({})", std::io::Error::from_raw_os_error(*errno))]
    Kernel { op: &'static str, errno: i32 },
    /// Talking to the kernel failed (socket creation, namespace entry, a
    /// netlink task that died).
    #[error("{op}: {detail}")]
    Io { op: &'static str, detail: String },
}

/// What changed in the kernel. Events carry indexes, not state: a watcher
/// re-reads the link, so it always reports the state as it is, never a
/// partial update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    /// A link appeared or changed (RTM_NEWLINK).
    Link { index: u32 },
    /// A link went away (RTM_DELLINK).
    LinkRemoved { index: u32, name: String },
    /// An address on a link was added or removed.
    Address { index: u32 },
    /// Events were lost (socket buffer overrun); the watcher must resync.
    Overrun,
}

/// A subscription to kernel changes; dropping it unsubscribes.
pub type EventStream = mpsc::Receiver<NetEvent>;

/// Kernel features, probed from the running kernel rather than guessed from
/// its version or module lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    pub vlan: bool,
    pub macvlan: bool,
    pub macvlan_modes: Vec<MacvlanMode>,
    pub netns: bool,
    /// Explanations of anything missing, with the fix.
    pub notes: Vec<String>,
}

/// A link to create. It is created down; the caller configures it, then
/// brings it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLink {
    pub name: IfName,
    pub kind: NewLinkKind,
    /// `None`: the kernel's default (the parent's MTU).
    pub mtu: Option<u32>,
    pub mac: Option<MacAddr>,
    /// IFLA_IFALIAS: the ownership mark.
    pub alias: String,
    /// Link group, for deleting many links in one request.
    pub group: u32,
    /// Create the link directly inside this namespace (a namespace file);
    /// `None`: in this one. The parent always lives in this one.
    pub target: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewLinkKind {
    Vlan {
        parent_index: u32,
        id: VlanId,
        protocol: VlanProtocol,
    },
    Macvlan {
        parent_index: u32,
        /// Always sent: the kernel's own default is VEPA.
        mode: MacvlanMode,
        source_macs: Vec<MacAddr>,
    },
}

/// A route in the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dest: IpNet,
    pub gateway: Option<IpAddr>,
    /// Output interface index.
    pub index: u32,
}

/// How a new link is configured, in one call: its addresses, then up,
/// then its routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkSetup {
    pub addresses: Vec<IpNet>,
    pub up: bool,
    pub routes: Vec<Route>,
}

/// The explanation given whenever 802.1Q is missing.
pub const NO_VLAN_NOTE: &str = "kernel lacks 802.1Q VLAN support (module 8021q): load it with `modprobe 8021q` \
     or use a kernel built with CONFIG_VLAN_8021Q";

/// Domain verbs over the kernel's network state.
///
/// Implementations must do their blocking netlink work off the caller's
/// runtime threads: the agent calls these from gRPC handlers.
#[async_trait]
pub trait NetOps: Send + Sync + fmt::Debug + 'static {
    /// Every link with its addresses, sorted by index.
    async fn links(&self) -> Result<Vec<Interface>, NetError>;
    /// One link by name, with its addresses.
    async fn link(&self, name: &IfName) -> Result<Interface, NetError>;
    /// One link by index, with its addresses.
    async fn link_by_index(&self, index: u32) -> Result<Interface, NetError>;
    /// Sets or clears IFF_PROMISC. The kernel keeps a separate promiscuity
    /// counter, changed only when the flag actually changes.
    async fn set_promisc(&self, index: u32, on: bool) -> Result<(), NetError>;
    /// Sets or clears IFF_UP.
    async fn set_up(&self, index: u32, up: bool) -> Result<(), NetError>;
    async fn set_mtu(&self, index: u32, mtu: u32) -> Result<(), NetError>;
    /// Sets IFLA_IFALIAS (the ownership mark); empty clears it.
    async fn set_alias(&self, index: u32, alias: &str) -> Result<(), NetError>;
    /// Renames a link (it must be down).
    async fn rename(&self, index: u32, name: &IfName) -> Result<(), NetError>;
    /// Probes what this kernel supports. Never creates anything.
    async fn capabilities(&self) -> Capabilities;
    /// The namespace file this instance works on when it is not the
    /// process's own (a lab host's); `None` otherwise, and for a kernel
    /// without files (the fake).
    fn home_netns(&self) -> Option<PathBuf> {
        None
    }
    /// Lets go of anything this instance holds in namespaces that were
    /// deleted behind its back (cached connections keep a namespace, and
    /// every link in it, alive). A no-op where nothing is held.
    fn release_deleted_namespaces(&self) {}
    /// Subscribes to link and address changes. Events that happen after this
    /// returns are delivered; a caller that also lists links should subscribe
    /// first so nothing falls between the list and the first event.
    async fn watch(&self) -> Result<EventStream, NetError>;

    /// Creates a link (down). Errors: parent missing (`NotFound`), name
    /// taken (`AlreadyExists`), kernel without the link type
    /// (`Unsupported`), parent unusable (`Invalid`/`Busy`).
    async fn add_link(&self, link: &NewLink) -> Result<(), NetError>;
    /// Deletes a link (~16 ms of kernel time each: RCU).
    async fn del_link(&self, index: u32) -> Result<(), NetError>;
    /// Deletes every link of a group in one request (fast for many links).
    async fn del_group(&self, group: u32) -> Result<(), NetError>;
    async fn add_address(&self, index: u32, addr: IpNet) -> Result<(), NetError>;
    /// Configures link `index` as `setup` says — addresses, up, routes, in
    /// that order, failing at the first that fails — and reads it back.
    /// One call so that a kernel seam can send it all at once.
    async fn setup_link(&self, index: u32, setup: &LinkSetup) -> Result<Interface, NetError> {
        for a in &setup.addresses {
            self.add_address(index, *a).await?;
        }
        if setup.up {
            self.set_up(index, true).await?;
        }
        for r in &setup.routes {
            self.add_route(r).await?;
        }
        self.link_by_index(index).await
    }
    /// Main-table routes.
    async fn routes(&self) -> Result<Vec<Route>, NetError>;
    /// Main-table routes out of link `index`: what one endpoint needs to
    /// know (its gateway) without listing a namespace full of others.
    async fn routes_via(&self, index: u32) -> Result<Vec<Route>, NetError> {
        Ok(self
            .routes()
            .await?
            .into_iter()
            .filter(|r| r.index == index)
            .collect())
    }
    async fn add_route(&self, route: &Route) -> Result<(), NetError>;
    /// Makes the kernel announce the link's addresses when it comes up
    /// (gratuitous ARP, unsolicited neighbour advertisement), so peers'
    /// caches pick up a new MAC at once.
    async fn enable_announce(&self, name: &IfName) -> Result<(), NetError>;
    /// RFC 5227 probe for `addr` from link `index` (up, MAC `mac`) of this
    /// namespace, with sender 0.0.0.0 so that nothing is claimed: the MACs
    /// of whoever answers within `timeout`. Empty: nobody uses it.
    async fn probe_address(
        &self,
        index: u32,
        mac: MacAddr,
        addr: std::net::Ipv4Addr,
        timeout: std::time::Duration,
    ) -> Result<Vec<MacAddr>, NetError>;

    /// The same operations inside another namespace (a namespace file).
    /// `NotFound` when it does not exist.
    async fn netns(&self, file: &Path) -> Result<Arc<dyn NetOps>, NetError>;
    /// Creates the named namespace `/run/netns/NAME`, like `ip netns add`.
    async fn create_netns(&self, name: &str) -> Result<(), NetError>;
    /// Deletes a named namespace, like `ip netns del`.
    async fn delete_netns(&self, name: &str) -> Result<(), NetError>;
    /// Names of the named namespaces.
    async fn netns_names(&self) -> Result<Vec<String>, NetError>;
    /// Whether the named namespace exists: one lookup, where listing them
    /// all would cost as much as there are namespaces.
    async fn netns_exists(&self, name: &str) -> Result<bool, NetError> {
        Ok(self.netns_names().await?.iter().any(|n| n == name))
    }
}
