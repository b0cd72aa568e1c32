//! [`NetOps`] over rtnetlink. This module is the only place that imports
//! rtnetlink; netlink types do not leave it.
//!
//! All netlink I/O runs on a small runtime of its own ("lh-netlink" threads):
//! the kernel does its work inside `sendmsg`, and a link delete blocks the
//! calling thread for ~16 ms (RCU), so this work must never run on the
//! threads that serve gRPC.

mod parse;

mod create;
mod nsfs;

use std::{
    collections::HashMap,
    future::Future,
    path::{Path, PathBuf},
    sync::Arc,
};

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use linkherd_proto::model::{IfName, Interface, MacvlanMode};
use rtnetlink::{
    LinkMessageBuilder, LinkUnspec, MulticastGroup,
    packet_core::NetlinkPayload,
    packet_route::{
        RouteNetlinkMessage,
        link::{InfoData, InfoKind, InfoVlan, LinkAttribute, LinkMessage},
    },
};
use tokio::{
    runtime::Runtime,
    sync::{mpsc, oneshot},
};

use super::{
    Capabilities, EventStream, LinkSetup, NO_VLAN_NOTE, NetError, NetEvent, NetOps, NewLink, Route,
    netns,
};

/// Netlink worker threads: enough to overlap a slow delete with reads.
const NETLINK_THREADS: usize = 2;

/// The dedicated runtime that netlink work runs on.
struct NetRuntime {
    rt: Option<Runtime>,
}

impl std::fmt::Debug for NetRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NetRuntime")
    }
}

impl NetRuntime {
    fn new() -> Result<Self, NetError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(NETLINK_THREADS)
            .thread_name("lh-netlink")
            .enable_all()
            .build()
            .map_err(|e| NetError::Io {
                op: "start netlink runtime",
                detail: e.to_string(),
            })?;
        Ok(Self { rt: Some(rt) })
    }

    fn handle(&self) -> Result<&tokio::runtime::Handle, NetError> {
        self.rt.as_ref().map(Runtime::handle).ok_or(NetError::Io {
            op: "netlink",
            detail: "netlink runtime is shut down".into(),
        })
    }

    /// Runs `fut` on the netlink threads and waits for it from the caller's.
    async fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, NetError>> + Send + 'static,
    ) -> Result<T, NetError> {
        self.handle()?.spawn(fut).await.map_err(|e| NetError::Io {
            op: "netlink",
            detail: format!("netlink task failed: {e}"),
        })?
    }
}

impl Drop for NetRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            // Dropping a runtime from async context would panic; the
            // background shutdown is safe anywhere.
            rt.shutdown_background();
        }
    }
}

/// The real kernel, for one network namespace.
#[derive(Debug)]
pub struct Rtnl {
    rt: Arc<NetRuntime>,
    /// The request connection's handle, replaced when the connection dies.
    conn: Arc<Supervised>,
    netns: Option<PathBuf>,
    /// Dropping this ends the connection task (and closes its socket).
    _conn: oneshot::Sender<()>,
    /// Connections into other namespaces, by namespace (device, inode),
    /// kept briefly: one endpoint create talks to its namespace several
    /// times, and opening a socket there costs a thread and a setns.
    children: std::sync::Mutex<Children>,
    /// The kernel runs one dump at a time per netlink socket and answers
    /// EBUSY to a second; concurrent callers (probes from one namespace,
    /// say) share this connection's socket, so dumps take turns.
    dumps: Arc<tokio::sync::Mutex<()>>,
    /// A thread inside `netns`, for sysctls (see [`netns::NsWorker`]).
    worker: std::sync::Mutex<Option<Arc<netns::NsWorker>>>,
}

/// Namespace (device, inode) -> connection and when it was last used.
type Children = HashMap<(u64, u64), (Arc<Rtnl>, std::time::Instant)>;

/// How long an idle connection into another namespace is kept. Short: an
/// open socket keeps its namespace alive after the last process left it.
const CHILD_IDLE: std::time::Duration = std::time::Duration::from_secs(2);

/// The identity of a namespace file: the same namespace has the same inode
/// whether reached as /run/netns/NAME or /proc/PID/ns/net.
/// Opened with [`netns::open`]'s checks, which never block.
fn ns_key(file: &Path) -> Option<(u64, u64)> {
    netns::identity(file).ok().map(|id| (id.dev, id.ino))
}

type Connection = rtnetlink::proto::Connection<RouteNetlinkMessage>;
type Unsolicited = futures::channel::mpsc::UnboundedReceiver<(
    rtnetlink::packet_core::NetlinkMessage<RouteNetlinkMessage>,
    rtnetlink::sys::SocketAddr,
)>;

impl Rtnl {
    /// Works on the agent's own network namespace.
    pub fn new() -> Result<Self, NetError> {
        Self::build(None)
    }

    /// Works on the namespace at `path` (e.g. `/run/netns/NAME`) without
    /// moving the calling process: sockets are opened inside it.
    pub fn in_netns(path: impl Into<PathBuf>) -> Result<Self, NetError> {
        Self::build(Some(path.into()))
    }

    fn build(netns: Option<PathBuf>) -> Result<Self, NetError> {
        Self::on(Arc::new(NetRuntime::new()?), netns)
    }

    /// A connection to `netns` on an existing netlink runtime, kept alive
    /// by [`supervise`].
    fn on(rt: Arc<NetRuntime>, netns: Option<PathBuf>) -> Result<Self, NetError> {
        let (conn, handle, _) = connect(rt.handle()?, netns.as_deref(), &[])?;
        let (stop, stopped) = oneshot::channel::<()>();
        let supervised = Arc::new(Supervised::new(handle));
        rt.handle()?
            .spawn(supervise(netns.clone(), conn, supervised.clone(), stopped));
        Ok(Self {
            rt,
            conn: supervised,
            netns,
            _conn: stop,
            children: std::sync::Mutex::default(),
            dumps: Arc::default(),
            worker: std::sync::Mutex::default(),
        })
    }

    fn cached(&self, key: (u64, u64)) -> Option<Arc<Rtnl>> {
        let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        children.retain(|_, (_, used)| now.duration_since(*used) < CHILD_IDLE);
        children.get_mut(&key).map(|(c, used)| {
            *used = now;
            c.clone()
        })
    }

    fn forget(&self, file: &Path) {
        if let Some(key) = ns_key(file) {
            self.children
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
        }
    }

    /// The namespace this instance works on, if not the agent's own.
    pub fn netns_file(&self) -> Option<&Path> {
        self.netns.as_deref()
    }

    /// How many times the request connection died and was re-created.
    pub fn reconnects(&self) -> u64 {
        self.conn
            .reconnects
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Kills the request connection, as a crash inside it would (feature
    /// `faults`): the supervisor must re-create it.
    #[cfg(feature = "faults")]
    pub fn break_connection(&self) {
        if let Some(task) = self
            .conn
            .task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            task.abort();
        }
    }
}

/// The request connection of one [`Rtnl`]: the handle callers clone, and
/// the task that drives the socket.
#[derive(Debug)]
struct Supervised {
    handle: std::sync::RwLock<rtnetlink::Handle>,
    task: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
    reconnects: std::sync::atomic::AtomicU64,
}

impl Supervised {
    fn new(handle: rtnetlink::Handle) -> Self {
        Self {
            handle: std::sync::RwLock::new(handle),
            task: std::sync::Mutex::default(),
            reconnects: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn handle(&self) -> rtnetlink::Handle {
        self.handle
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Drives the request connection until its [`Rtnl`] is dropped. A
/// connection that ends, panics or is aborted is logged with why and
/// re-created (backing off while the kernel refuses a socket), so one bad
/// moment does not leave every later call failing while health says
/// SERVING. Calls in flight when it dies fail; later ones use the new one.
async fn supervise(
    netns: Option<PathBuf>,
    mut conn: Connection,
    slot: Arc<Supervised>,
    mut stopped: oneshot::Receiver<()>,
) {
    loop {
        let task = tokio::spawn(conn);
        *slot.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task.abort_handle());
        let abort = task.abort_handle();
        let why = tokio::select! {
            r = task => match r {
                Ok(()) => "it ended".to_owned(),
                Err(e) if e.is_panic() => format!("it panicked: {}", panic_text(e.into_panic())),
                Err(_) => "it was aborted".to_owned(),
            },
            _ = &mut stopped => {
                abort.abort();
                return;
            }
        };
        tracing::error!(netns = ?netns, why, "the netlink connection died; re-creating it");
        let mut backoff = std::time::Duration::from_millis(50);
        conn = loop {
            let ns = netns.clone();
            let rt = tokio::runtime::Handle::current();
            let made = tokio::task::spawn_blocking(move || connect(&rt, ns.as_deref(), &[])).await;
            match made {
                Ok(Ok((c, h, _))) => {
                    *slot.handle.write().unwrap_or_else(|p| p.into_inner()) = h;
                    slot.reconnects
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(netns = ?netns, "netlink connection re-created");
                    break c;
                }
                Ok(Err(e)) => {
                    tracing::error!(netns = ?netns, error = %e, ?backoff, "cannot re-create the netlink connection")
                }
                Err(e) => {
                    tracing::error!(netns = ?netns, error = %e, "cannot re-create the netlink connection")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = &mut stopped => return,
            }
            backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
        };
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Opens a netlink socket inside `netns`, registered with runtime `rt`,
/// joined to multicast `groups` (none for a request socket).
fn connect(
    rt: &tokio::runtime::Handle,
    netns: Option<&Path>,
    groups: &[MulticastGroup],
) -> Result<(Connection, rtnetlink::Handle, Unsolicited), NetError> {
    netns::run_in(netns, || {
        let _enter = rt.enter();
        let res = if groups.is_empty() {
            rtnetlink::new_connection().map(|(mut conn, h, rx)| {
                strict(&mut conn);
                (conn, h, rx)
            })
        } else {
            rtnetlink::new_multicast_connection(groups)
        };
        res.map_err(|e| NetError::Io {
            op: "open netlink socket",
            detail: e.to_string(),
        })
    })
}

/// Asks the kernel to honour the filters of dump requests (the interface
/// of an address or route dump), so that one link's addresses cost one
/// link's worth of messages, not the whole namespace's. A kernel before
/// 4.20 refuses the option and dumps everything; the same filters are
/// applied here too, so answers are the same either way.
fn strict(conn: &mut Connection) {
    use rtnetlink::sys::AsyncSocket;
    if let Err(e) = conn
        .socket_mut()
        .socket_ref()
        .set_netlink_get_strict_chk(true)
    {
        tracing::debug!(error = %e, "netlink strict checking unavailable; filtering dumps here");
    }
}

/// Runs blocking namespace or file-system work on the blocking pool, never on
/// a runtime worker.
async fn blocking<T: Send + 'static>(
    op: &'static str,
    f: impl FnOnce() -> Result<T, NetError> + Send + 'static,
) -> Result<T, NetError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| NetError::Io {
            op,
            detail: e.to_string(),
        })?
}

/// A name no one else uses, for a link on its way to another namespace.
fn temporary_name() -> Result<IfName, NetError> {
    let mut bytes = [0u8; 4];
    temp_entropy(&mut bytes);
    let name = format!("lhtmp{:08x}", u32::from_ne_bytes(bytes));
    IfName::parse("name", &name).map_err(|e| NetError::Io {
        op: "add link",
        detail: e.to_string(),
    })
}

/// Randomness for temporary names: the clock and the pid are enough to avoid
/// collisions between concurrent requests, which also hold the host lock.
fn temp_entropy(out: &mut [u8; 4]) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mix = nanos
        ^ std::process::id().rotate_left(16)
        ^ TEMP_SEQ.fetch_add(0x9e37_79b9, std::sync::atomic::Ordering::Relaxed);
    *out = mix.to_ne_bytes();
}

static TEMP_SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn iface_what(name: &str) -> impl FnOnce() -> String + '_ {
    move || format!("interface {name:?}")
}

fn index_what(index: u32) -> impl FnOnce() -> String {
    move || format!("interface index {index}")
}

/// Fetches one link and its addresses, resolving the names of its parent
/// and master.
async fn one_link(
    h: rtnetlink::Handle,
    req: rtnetlink::LinkGetRequest,
    what: impl FnOnce() -> String,
) -> Result<Interface, NetError> {
    let msg = req
        .execute()
        .try_next()
        .await
        .map_err(|e| parse::error("get link", what, e))?
        .ok_or_else(|| NetError::Io {
            op: "get link",
            detail: "kernel returned no link".into(),
        })?;
    let parsed = parse::link(&msg);
    let mut iface = parsed.iface;
    let index = iface.index;
    let mut addrs = h.address().get().set_link_index_filter(index);
    // Filtered by the kernel too, on a strict socket (see `strict`).
    addrs.message_mut().header.index = index;
    iface.addresses = addrs
        .execute()
        .map_ok(|a| parse::address(&a))
        .try_filter_map(|a| async move { Ok(a.map(|(_, net)| net)) })
        .try_collect()
        .await
        .map_err(|e| parse::error("get addresses", index_what(index), e))?;
    if iface.parent_index != 0 && !parsed.parent_elsewhere {
        iface.parent = name_of(&h, iface.parent_index).await;
    }
    if parsed.master_index != 0 {
        iface.master = name_of(&h, parsed.master_index).await;
    }
    Ok(iface)
}

async fn name_of(h: &rtnetlink::Handle, index: u32) -> Option<String> {
    let msg = h
        .link()
        .get()
        .match_index(index)
        .execute()
        .try_next()
        .await
        .ok()??;
    Some(parse::link(&msg).iface.name)
}

fn probe_vlan_message() -> LinkMessage {
    // A VLAN without IFLA_LINK: a kernel with 8021q rejects it with EINVAL
    // ("link not specified"), one without with EOPNOTSUPP ("Unknown device
    // type"). Either way nothing is created.
    LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Vlan)
        .name("lh-capprobe".to_owned())
        .set_info_data(InfoData::Vlan(vec![InfoVlan::Id(1)]))
        .build()
}

fn probe_macvlan_message() -> LinkMessage {
    LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::MacVlan)
        .name("lh-capprobe".to_owned())
        .build()
}

/// `Some(true)` when the kernel knows the link kind, `Some(false)` when not,
/// `None` when it cannot be told (e.g. no permission).
async fn probe_kind(h: &rtnetlink::Handle, msg: LinkMessage) -> Option<bool> {
    match h.link().add(msg).execute().await {
        Err(rtnetlink::Error::NetlinkError(e)) if -e.raw_code() == libc::EOPNOTSUPP => Some(false),
        Err(rtnetlink::Error::NetlinkError(e)) if -e.raw_code() == libc::EPERM => None,
        Err(_) => Some(true),
        Ok(()) => {
            // Should be impossible; never leave a stray link behind.
            if let Ok(Some(m)) = h
                .link()
                .get()
                .match_name("lh-capprobe")
                .execute()
                .try_next()
                .await
            {
                let _ = h.link().del(m.header.index).execute().await;
            }
            Some(true)
        }
    }
}

fn to_event(msg: rtnetlink::packet_core::NetlinkMessage<RouteNetlinkMessage>) -> Option<NetEvent> {
    match msg.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => Some(NetEvent::Link {
            index: l.header.index,
        }),
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) => {
            let name = l
                .attributes
                .iter()
                .find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            Some(NetEvent::LinkRemoved {
                index: l.header.index,
                name,
            })
        }
        NetlinkPayload::InnerMessage(
            RouteNetlinkMessage::NewAddress(a) | RouteNetlinkMessage::DelAddress(a),
        ) => Some(NetEvent::Address {
            index: a.header.index,
        }),
        NetlinkPayload::Overrun(_) => Some(NetEvent::Overrun),
        _ => None,
    }
}

#[async_trait]
impl NetOps for Rtnl {
    async fn links(&self) -> Result<Vec<Interface>, NetError> {
        let h = self.conn.handle();
        let dumps = self.dumps.clone();
        self.rt
            .run(async move {
                let _turn = dumps.lock().await;
                let links: Vec<LinkMessage> = h
                    .link()
                    .get()
                    .execute()
                    .try_collect()
                    .await
                    .map_err(|e| parse::error("list links", String::new, e))?;
                let addrs: Vec<_> = h
                    .address()
                    .get()
                    .execute()
                    .try_collect()
                    .await
                    .map_err(|e| parse::error("list addresses", String::new, e))?;
                let mut by_index: HashMap<u32, Vec<ipnet::IpNet>> = HashMap::new();
                for (index, net) in addrs.iter().filter_map(parse::address) {
                    by_index.entry(index).or_default().push(net);
                }
                let parsed: Vec<_> = links.iter().map(parse::link).collect();
                let names: HashMap<u32, String> = parsed
                    .iter()
                    .map(|p| (p.iface.index, p.iface.name.clone()))
                    .collect();
                let mut out: Vec<Interface> = parsed
                    .into_iter()
                    .map(|p| {
                        let mut i = p.iface;
                        i.addresses = by_index.remove(&i.index).unwrap_or_default();
                        if !p.parent_elsewhere {
                            i.parent = names.get(&i.parent_index).cloned();
                        }
                        i.master = names.get(&p.master_index).cloned();
                        i
                    })
                    .collect();
                out.sort_by_key(|i| i.index);
                Ok(out)
            })
            .await
    }

    async fn link(&self, name: &IfName) -> Result<Interface, NetError> {
        let h = self.conn.handle();
        let name = name.to_string();
        let dumps = self.dumps.clone();
        self.rt
            .run(async move {
                let _turn = dumps.lock().await;
                let req = h.link().get().match_name(name.clone());
                one_link(h, req, iface_what(&name)).await
            })
            .await
    }

    async fn link_by_index(&self, index: u32) -> Result<Interface, NetError> {
        let h = self.conn.handle();
        let dumps = self.dumps.clone();
        self.rt
            .run(async move {
                let _turn = dumps.lock().await;
                let req = h.link().get().match_index(index);
                one_link(h, req, index_what(index)).await
            })
            .await
    }

    async fn set_promisc(&self, index: u32, on: bool) -> Result<(), NetError> {
        let msg = LinkUnspec::new_with_index(index).promiscuous(on).build();
        self.set(index, "set promiscuous mode", msg).await
    }

    async fn set_up(&self, index: u32, up: bool) -> Result<(), NetError> {
        let b = LinkUnspec::new_with_index(index);
        let msg = if up { b.up() } else { b.down() }.build();
        self.set(index, "set link state", msg).await
    }

    async fn set_mtu(&self, index: u32, mtu: u32) -> Result<(), NetError> {
        let msg = LinkUnspec::new_with_index(index).mtu(mtu).build();
        self.set(index, "set mtu", msg).await
    }

    async fn set_alias(&self, index: u32, alias: &str) -> Result<(), NetError> {
        let msg = LinkUnspec::new_with_index(index)
            .alias(alias.to_owned())
            .build();
        self.set(index, "set alias", msg).await
    }

    async fn capabilities(&self) -> Capabilities {
        let h = self.conn.handle();
        let probed = self
            .rt
            .run(async move {
                Ok((
                    probe_kind(&h, probe_vlan_message()).await,
                    probe_kind(&h, probe_macvlan_message()).await,
                ))
            })
            .await;
        let (vlan, macvlan) = probed.unwrap_or((None, None));
        let mut notes = Vec::new();
        match vlan {
            Some(false) => notes.push(NO_VLAN_NOTE.to_owned()),
            None => notes.push("cannot probe for 802.1Q: the agent lacks CAP_NET_ADMIN".to_owned()),
            Some(true) => {}
        }
        if macvlan == Some(false) {
            notes.push(
                "kernel lacks macvlan support (module macvlan): load it with `modprobe macvlan`"
                    .to_owned(),
            );
        }
        let macvlan = macvlan.unwrap_or(false);
        Capabilities {
            vlan: vlan.unwrap_or(false),
            macvlan,
            macvlan_modes: if macvlan {
                MacvlanMode::ALL.to_vec()
            } else {
                Vec::new()
            },
            netns: Path::new("/proc/self/ns/net").exists(),
            notes,
        }
    }

    async fn watch(&self) -> Result<EventStream, NetError> {
        let groups = [
            MulticastGroup::Link,
            MulticastGroup::Ipv4Ifaddr,
            MulticastGroup::Ipv6Ifaddr,
        ];
        let (conn, _handle, mut messages) = connect(self.rt.handle()?, self.netns_file(), &groups)?;
        let (tx, rx) = mpsc::channel(256);
        // One task owns the socket: it ends, closing the socket, when the
        // subscriber goes away or the connection dies.
        self.rt.handle()?.spawn(async move {
            tokio::pin!(conn);
            loop {
                tokio::select! {
                    () = &mut conn => break,
                    () = tx.closed() => break,
                    msg = messages.next() => {
                        let Some((msg, _)) = msg else { break };
                        if let Some(event) = to_event(msg)
                            && tx.send(event).await.is_err()
                        {
                            break;
                        }
                    }
                }
            }
        });
        Ok(rx)
    }

    async fn add_link(&self, link: &NewLink) -> Result<(), NetError> {
        // RTM_NEWLINK looks the name up in the *sending* namespace first: if
        // it exists here (say the host's own eth0), the kernel answers
        // EEXIST even though the link is meant for another namespace. Then
        // the link is created under a temporary name and renamed once it is
        // there (it is created down, so renaming works) — only then: a
        // rename waits for an RCU grace period (~16 ms). A name taken in the
        // target namespace itself fails that rename, with EEXIST.
        let mut new = link.clone();
        match self.send_new_link(&new).await {
            Err(NetError::AlreadyExists { .. }) if link.target.is_some() => {
                new.name = temporary_name()?;
                self.send_new_link(&new).await?;
            }
            r => r?,
        }
        let there = match &link.target {
            Some(file) => self.child(file).await?,
            None => return self.finish_link(self, &new, link).await,
        };
        self.finish_link(&there, &new, link).await
    }

    async fn rename(&self, index: u32, name: &IfName) -> Result<(), NetError> {
        let msg = LinkUnspec::new_with_index(index)
            .name(name.to_string())
            .build();
        let what = name.to_string();
        let h = self.conn.handle();
        self.rt
            .run(async move {
                h.link()
                    .set(msg)
                    .execute()
                    .await
                    .map_err(|e| parse::error("rename link", || format!("interface {what:?}"), e))
            })
            .await
    }

    async fn del_link(&self, index: u32) -> Result<(), NetError> {
        let h = self.conn.handle();
        self.rt
            .run(async move {
                h.link()
                    .del(index)
                    .execute()
                    .await
                    .map_err(|e| parse::error("delete link", index_what(index), e))
            })
            .await
    }

    async fn del_group(&self, group: u32) -> Result<(), NetError> {
        let h = self.conn.handle();
        self.rt
            .run(async move { create::del_group(&h, group).await })
            .await
    }

    async fn add_address(&self, index: u32, addr: ipnet::IpNet) -> Result<(), NetError> {
        let h = self.conn.handle();
        self.rt
            .run(async move {
                h.address()
                    .add(index, addr.addr(), addr.prefix_len())
                    .execute()
                    .await
                    .map_err(|e| parse::error("add address", || format!("address {addr}"), e))
            })
            .await
    }

    async fn setup_link(&self, index: u32, setup: &LinkSetup) -> Result<Interface, NetError> {
        let h = self.conn.handle();
        let setup = setup.clone();
        let dumps = self.dumps.clone();
        self.rt
            .run(async move {
                create::setup_link(&h, index, &setup).await?;
                let _turn = dumps.lock().await;
                one_link(
                    h.clone(),
                    h.link().get().match_index(index),
                    index_what(index),
                )
                .await
            })
            .await
    }

    async fn routes(&self) -> Result<Vec<Route>, NetError> {
        let h = self.conn.handle();
        let dumps = self.dumps.clone();
        self.rt
            .run(async move {
                let _turn = dumps.lock().await;
                create::routes(&h, None).await
            })
            .await
    }

    async fn routes_via(&self, index: u32) -> Result<Vec<Route>, NetError> {
        let h = self.conn.handle();
        let dumps = self.dumps.clone();
        self.rt
            .run(async move {
                let _turn = dumps.lock().await;
                // The kernel answers ENODEV for a link that is gone: it
                // has no routes.
                match create::routes(&h, Some(index)).await {
                    Err(NetError::NotFound { .. }) => Ok(Vec::new()),
                    r => r,
                }
            })
            .await
    }

    async fn add_route(&self, route: &Route) -> Result<(), NetError> {
        let route = route.clone();
        self.request(|h| async move { create::add_route(&h, &route).await })
            .await
    }

    async fn probe_address(
        &self,
        index: u32,
        mac: linkherd_proto::model::MacAddr,
        addr: std::net::Ipv4Addr,
        timeout: std::time::Duration,
    ) -> Result<Vec<linkherd_proto::model::MacAddr>, NetError> {
        use crate::net::probe::arp;
        let spec = arp::ArpSpec {
            netns: self.netns.clone(),
            netns_id: None,
            link: arp::Link {
                index,
                mac,
                ipv4: None,
            },
            target: std::net::IpAddr::V4(addr),
            timeout,
            free_check: true,
        };
        Ok(arp::who_has(spec, None)
            .await?
            .into_iter()
            .map(|r| r.mac)
            .collect())
    }

    async fn enable_announce(&self, name: &IfName) -> Result<(), NetError> {
        let name = name.to_string();
        match self.netns.clone() {
            None => blocking("enable announcements", move || nsfs::enable_announce(&name)).await,
            Some(path) => {
                self.worker(path)
                    .await?
                    .run(move || nsfs::enable_announce(&name))
                    .await
            }
        }
    }

    async fn netns(&self, file: &Path) -> Result<Arc<dyn NetOps>, NetError> {
        Ok(self.child(file).await?)
    }

    async fn create_netns(&self, name: &str) -> Result<(), NetError> {
        let name = name.to_owned();
        blocking("create network namespace", move || {
            nsfs::create_named(&name)
        })
        .await
    }

    async fn delete_netns(&self, name: &str) -> Result<(), NetError> {
        // Our own socket in it would keep the namespace alive.
        self.forget(&netns::named(name));
        let name = name.to_owned();
        blocking("delete network namespace", move || {
            nsfs::delete_named(&name)
        })
        .await
    }

    async fn netns_names(&self) -> Result<Vec<String>, NetError> {
        blocking("list network namespaces", nsfs::names).await
    }

    async fn netns_exists(&self, name: &str) -> Result<bool, NetError> {
        let name = name.to_owned();
        blocking("look up a network namespace", move || nsfs::exists(&name)).await
    }
}

impl Rtnl {
    /// The connection into the namespace at `file`, opened once and kept
    /// briefly (see `children`).
    async fn child(&self, file: &Path) -> Result<Arc<Rtnl>, NetError> {
        // A caller's path: checked on the blocking pool to be a network
        // namespace (never a FIFO or a device) before anything enters it.
        let path = file.to_owned();
        let id = blocking(netns::OPEN_OP, move || netns::identity(&path)).await?;
        let key = (id.dev, id.ino);
        if let Some(c) = self.cached(key) {
            return Ok(c);
        }
        let path = file.to_owned();
        let rt = self.rt.clone();
        let child =
            Arc::new(blocking("enter network namespace", move || Rtnl::on(rt, Some(path))).await?);
        self.children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (child.clone(), std::time::Instant::now()));
        Ok(child)
    }

    /// The thread kept inside this connection's namespace (`path`),
    /// started at first use.
    async fn worker(&self, path: PathBuf) -> Result<Arc<netns::NsWorker>, NetError> {
        if let Some(w) = self
            .worker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Ok(w);
        }
        let w = Arc::new(blocking(netns::OPEN_OP, move || netns::NsWorker::start(&path)).await?);
        Ok(self
            .worker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(w)
            .clone())
    }

    /// Runs `f` with the request connection's handle on the netlink
    /// threads.
    async fn request<T, F>(&self, f: impl FnOnce(rtnetlink::Handle) -> F) -> Result<T, NetError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, NetError>> + Send + 'static,
    {
        self.rt.run(f(self.conn.handle())).await
    }

    async fn send_new_link(&self, link: &NewLink) -> Result<(), NetError> {
        let sent = link.clone();
        self.request(|h| async move { create::add_link(&h, &sent).await })
            .await
    }

    /// After a link `new` was created for `asked` in this namespace: the
    /// rename from its temporary name, and its alias (the kernel ignores
    /// IFLA_IFALIAS on RTM_NEWLINK), set by name — no lookup in between.
    async fn finish_link(
        &self,
        here: &Rtnl,
        new: &NewLink,
        asked: &NewLink,
    ) -> Result<(), NetError> {
        if new.name != asked.name {
            let created = here.link(&new.name).await?;
            if let Err(e) = here.rename(created.index, &asked.name).await {
                let _ = here.del_link(created.index).await;
                return Err(e);
            }
        }
        if asked.alias.is_empty() {
            return Ok(());
        }
        let msg = LinkUnspec::new_with_name(asked.name.as_str())
            .alias(asked.alias.clone())
            .build();
        here.set_link(asked.name.to_string(), "set alias", msg)
            .await
    }

    async fn set(&self, index: u32, op: &'static str, msg: LinkMessage) -> Result<(), NetError> {
        self.set_link(format!("interface index {index}"), op, msg)
            .await
    }

    /// An RTM_SETLINK; `what` names the link in an error.
    async fn set_link(
        &self,
        what: String,
        op: &'static str,
        msg: LinkMessage,
    ) -> Result<(), NetError> {
        self.request(|h| async move {
            h.link()
                .set(msg)
                .execute()
                .await
                .map_err(|e| parse::error(op, || what, e))
        })
        .await
    }
}
