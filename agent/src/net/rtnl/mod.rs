//! [`NetOps`] over rtnetlink. This module is the only place that imports
//! rtnetlink; netlink types do not leave it.
//!
//! All netlink I/O runs on a small runtime of its own ("lh-netlink" threads):
//! the kernel does its work inside `sendmsg`, and a link delete blocks the
//! calling thread for ~16 ms (RCU), so this work must never run on the
//! threads that serve gRPC.

mod children;
mod connection;
mod create;
mod events;
mod links;
mod nsfs;
mod parse;
mod probe_caps;
mod runtime;

use std::{
    collections::HashMap,
    future::Future,
    path::{Path, PathBuf},
    sync::Arc,
};

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use linkherd_proto::model::{IfName, Interface, MacvlanMode};
use rtnetlink::{LinkUnspec, MulticastGroup, packet_route::link::LinkMessage};
use tokio::sync::{mpsc, oneshot};

use super::{
    Capabilities, EventStream, LinkSetup, NO_VLAN_NOTE, NetError, NetOps, NewLink, Route, netns,
};
use children::Children;
use connection::{Supervised, connect, supervise};
use events::to_event;
use links::{iface_what, index_what, one_link, temporary_name};
use probe_caps::{probe_kind, probe_macvlan_message, probe_vlan_message};
use runtime::{NetRuntime, blocking};

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
    children: Arc<std::sync::Mutex<Children>>,
    /// Whether the task that drops idle `children` runs (see `children.rs`).
    pruning: Arc<std::sync::atomic::AtomicBool>,
    /// The kernel runs one dump at a time per netlink socket and answers
    /// EBUSY to a second; concurrent callers (probes from one namespace,
    /// say) share this connection's socket, so dumps take turns.
    dumps: Arc<tokio::sync::Mutex<()>>,
    /// A thread inside `netns`, for sysctls (see [`netns::NsWorker`]).
    worker: std::sync::Mutex<Option<Arc<netns::NsWorker>>>,
}

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
            children: Arc::default(),
            pruning: Arc::default(),
            dumps: Arc::default(),
            worker: std::sync::Mutex::default(),
        })
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

#[async_trait]
impl NetOps for Rtnl {
    fn home_netns(&self) -> Option<PathBuf> {
        self.netns.clone()
    }

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

    fn release_deleted_namespaces(&self) {
        self.forget_unlinked();
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
