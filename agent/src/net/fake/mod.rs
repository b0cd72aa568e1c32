//! An in-memory kernel for fast tests of everything above the seam.
//!
//! It mimics the kernel's observable rules that linkherd relies on (index
//! allocation, IFF_PROMISC vs the promiscuity counter, MTU limits, veth
//! carrier, macvlan port rules, VLAN ids, namespaces, change notifications),
//! and is held to the real kernel by the shared contract suite. Inject it
//! explicitly; nothing swaps it in behind the caller's back.

use std::{
    path::Path,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
};

use async_trait::async_trait;
use ipnet::IpNet;
use linkherd_proto::model::{IfName, Interface, LinkDetails, LinkKind, MacAddr, MacvlanMode};
use tokio::sync::{broadcast, mpsc};

use super::{
    Capabilities, EventStream, NO_VLAN_NOTE, NetError, NetEvent, NetOps, NewLink, NewLinkKind,
    Route, netns::NETNS_RUN_DIR,
};

mod fixture;
mod rules;
mod world;

use rules::link_index_filter;
use world::{FakeLink, FakeNs, State, World};

/// The in-memory kernel, seen from one namespace. See the module docs.
#[derive(Debug, Clone)]
pub struct FakeKernel {
    world: Arc<World>,
    ns: Arc<FakeNs>,
}

impl Default for FakeKernel {
    fn default() -> Self {
        Self::new()
    }
}

pub(super) fn not_found(name: &str) -> NetError {
    NetError::NotFound {
        what: format!("interface {name:?}"),
    }
}

pub(super) fn index_not_found(index: u32) -> NetError {
    NetError::NotFound {
        what: format!("interface index {index}"),
    }
}

impl FakeKernel {
    /// A machine with only `lo`, like a fresh network namespace, and without
    /// 802.1Q (like this project's CI machine).
    pub fn new() -> Self {
        Self::build(false)
    }

    /// A fake machine whose kernel has 802.1Q.
    pub fn with_vlan_support() -> Self {
        Self::build(true)
    }

    fn build(vlan_supported: bool) -> Self {
        let world = Arc::new(World {
            host: FakeNs::new(0),
            others: Mutex::default(),
            next_index: AtomicU32::new(2),
            next_ns: AtomicU64::new(1),
            vlan_supported,
            add_link_delay_ms: AtomicU64::new(0),
            set_link_delay_ms: AtomicU64::new(0),
        });
        Self {
            ns: world.host.clone(),
            world,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.ns.lock()
    }

    fn alloc_index(&self) -> u32 {
        self.world.next_index.fetch_add(1, Ordering::SeqCst)
    }

    fn new_link(index: u32, name: &str, kind_name: &str, mac: MacAddr) -> Interface {
        Interface {
            kind_name: kind_name.to_owned(),
            mac: Some(mac),
            mtu: 1500,
            min_mtu: 68,
            max_mtu: 65535,
            flags: vec!["BROADCAST".into(), "MULTICAST".into()],
            ..Interface::new(index, name, LinkKind::from_kind_name(kind_name, false))
        }
    }

    fn mac_for(index: u32) -> MacAddr {
        MacAddr([0x02, 0x1f, 0, 0, (index >> 8) as u8, index as u8])
    }

    async fn set_link_delay(&self) {
        let delay = self.world.set_link_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        }
    }
}

#[async_trait]
impl NetOps for FakeKernel {
    async fn links(&self) -> Result<Vec<Interface>, NetError> {
        self.refresh();
        Ok(self
            .lock()
            .links
            .values()
            .map(|l| l.iface.clone())
            .collect())
    }

    async fn link(&self, name: &IfName) -> Result<Interface, NetError> {
        self.refresh();
        self.lock()
            .links
            .values()
            .find(|l| l.iface.name == name.as_str())
            .map(|l| l.iface.clone())
            .ok_or_else(|| not_found(name.as_str()))
    }

    async fn link_by_index(&self, index: u32) -> Result<Interface, NetError> {
        self.refresh();
        link_index_filter(&self.lock(), index)
    }

    async fn set_promisc(&self, index: u32, on: bool) -> Result<(), NetError> {
        self.modify(index, |i| {
            if i.promiscuous == on {
                return Ok(false);
            }
            i.promiscuous = on;
            if on {
                i.promiscuity += 1;
            } else {
                i.promiscuity = i.promiscuity.saturating_sub(1);
            }
            Ok(true)
        })
    }

    async fn set_up(&self, index: u32, up: bool) -> Result<(), NetError> {
        self.set_link_delay().await;
        if up
            && !self
                .lock()
                .links
                .get(&index)
                .is_some_and(|l| l.iface.admin_up)
        {
            self.check_mac_free(index)?;
        }
        self.modify(index, |i| {
            let changed = i.admin_up != up;
            i.admin_up = up;
            Ok(changed)
        })
    }

    async fn set_mtu(&self, index: u32, mtu: u32) -> Result<(), NetError> {
        self.set_link_delay().await;
        self.modify(index, |i| {
            if i.max_mtu != 0 && mtu > i.max_mtu {
                return Err(NetError::Invalid {
                    op: "set mtu",
                    detail: "mtu greater than device maximum".into(),
                });
            }
            if mtu < i.min_mtu {
                return Err(NetError::Invalid {
                    op: "set mtu",
                    detail: "mtu less than device minimum".into(),
                });
            }
            let changed = i.mtu != mtu;
            i.mtu = mtu;
            Ok(changed)
        })
    }

    async fn set_alias(&self, index: u32, alias: &str) -> Result<(), NetError> {
        self.modify(index, |i| {
            let new = (!alias.is_empty()).then(|| alias.to_owned());
            let changed = i.alias != new;
            i.alias = new;
            Ok(changed)
        })
    }

    async fn rename(&self, index: u32, name: &IfName) -> Result<(), NetError> {
        if self
            .lock()
            .links
            .values()
            .any(|l| l.iface.name == name.as_str() && l.iface.index != index)
        {
            return Err(NetError::AlreadyExists {
                what: format!("interface {:?}", name.as_str()),
            });
        }
        self.modify(index, |i| {
            if i.admin_up {
                return Err(NetError::Busy {
                    op: "rename link",
                    detail: "Device or resource busy (os error 16)".into(),
                });
            }
            let changed = i.name != name.as_str();
            i.name = name.to_string();
            Ok(changed)
        })
    }

    async fn capabilities(&self) -> Capabilities {
        let vlan = self.world.vlan_supported;
        Capabilities {
            vlan,
            macvlan: true,
            macvlan_modes: MacvlanMode::ALL.to_vec(),
            netns: true,
            notes: if vlan {
                Vec::new()
            } else {
                vec![NO_VLAN_NOTE.to_owned()]
            },
        }
    }

    async fn watch(&self) -> Result<EventStream, NetError> {
        let mut rx = self.ns.events.subscribe();
        let (tx, out) = mpsc::channel(256);
        tokio::spawn(async move {
            loop {
                let event = match rx.recv().await {
                    Ok(e) => e,
                    Err(broadcast::error::RecvError::Lagged(_)) => NetEvent::Overrun,
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                if tx.send(event).await.is_err() {
                    break;
                }
            }
        });
        Ok(out)
    }

    async fn add_link(&self, link: &NewLink) -> Result<(), NetError> {
        let delay = self.world.add_link_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        }
        let parent_index = match &link.kind {
            NewLinkKind::Vlan { parent_index, .. } | NewLinkKind::Macvlan { parent_index, .. } => {
                *parent_index
            }
        };
        self.refresh();
        let parent = link_index_filter(&self.lock(), parent_index)?;
        let target = match &link.target {
            Some(path) => self.world.find(path)?,
            None => self.ns.clone(),
        };
        if target
            .lock()
            .links
            .values()
            .any(|l| l.iface.name == link.name.as_str())
        {
            return Err(NetError::AlreadyExists {
                what: format!("interface {:?}", link.name.as_str()),
            });
        }
        self.check_new_link(link, &parent)?;
        let index = self.alloc_index();
        let (kind_name, details) = match &link.kind {
            NewLinkKind::Vlan { id, protocol, .. } => (
                "vlan",
                LinkDetails::Vlan {
                    id: id.get(),
                    protocol: *protocol,
                    reorder_header: true,
                },
            ),
            NewLinkKind::Macvlan {
                mode, source_macs, ..
            } => (
                "macvlan",
                LinkDetails::Macvlan {
                    mode: *mode,
                    source_macs: source_macs.clone(),
                },
            ),
        };
        let mut iface = Self::new_link(
            index,
            link.name.as_str(),
            kind_name,
            link.mac.unwrap_or(Self::mac_for(index)),
        );
        iface.parent_index = parent_index;
        iface.parent = Arc::ptr_eq(&target, &self.ns).then(|| parent.name.clone());
        iface.mtu = link.mtu.unwrap_or(parent.mtu);
        iface.max_mtu = parent.max_mtu;
        iface.alias = (!link.alias.is_empty()).then(|| link.alias.clone());
        iface.group = link.group;
        iface.details = Some(details);
        target.lock().links.insert(
            index,
            FakeLink {
                iface,
                peer: None,
                lower: Some((self.ns.id, parent_index)),
            },
        );
        target.emit(NetEvent::Link { index });
        Ok(())
    }

    async fn del_link(&self, index: u32) -> Result<(), NetError> {
        if !self.lock().links.contains_key(&index) {
            return Err(index_not_found(index));
        }
        self.remove(index);
        Ok(())
    }

    async fn del_group(&self, group: u32) -> Result<(), NetError> {
        let members: Vec<u32> = self
            .lock()
            .links
            .values()
            .filter(|l| l.iface.group == group)
            .map(|l| l.iface.index)
            .collect();
        for index in members {
            self.remove(index);
        }
        Ok(())
    }

    async fn add_address(&self, index: u32, addr: IpNet) -> Result<(), NetError> {
        self.insert_address(index, addr)
    }

    async fn routes(&self) -> Result<Vec<Route>, NetError> {
        let st = self.lock();
        // Connected routes of every address on an up link, as the kernel
        // adds them, then the explicit ones.
        let mut out: Vec<Route> = st
            .links
            .values()
            .filter(|l| l.iface.admin_up)
            .flat_map(|l| {
                l.iface
                    .addresses
                    .iter()
                    .filter(|a| a.addr().is_ipv4())
                    .map(|a| Route {
                        dest: a.trunc(),
                        gateway: None,
                        index: l.iface.index,
                    })
            })
            .collect();
        out.extend(st.routes.iter().cloned());
        Ok(out)
    }

    async fn add_route(&self, route: &Route) -> Result<(), NetError> {
        let mut st = self.lock();
        let link = st
            .links
            .get(&route.index)
            .ok_or_else(|| index_not_found(route.index))?;
        if !link.iface.admin_up {
            return Err(NetError::Kernel {
                op: "add route",
                errno: libc::ENETDOWN,
            });
        }
        if let Some(gw) = route.gateway
            && !link.iface.addresses.iter().any(|a| a.contains(&gw))
        {
            return Err(NetError::Kernel {
                op: "add route",
                errno: libc::ENETUNREACH,
            });
        }
        if st.routes.iter().any(|r| r.dest == route.dest) {
            return Err(NetError::AlreadyExists {
                what: format!("route to {}", route.dest),
            });
        }
        st.routes.push(route.clone());
        Ok(())
    }

    /// The fake machine is one flat wire: every other up link, in any
    /// namespace, that has the address answers.
    async fn probe_address(
        &self,
        index: u32,
        _mac: MacAddr,
        addr: std::net::Ipv4Addr,
        _timeout: std::time::Duration,
    ) -> Result<Vec<MacAddr>, NetError> {
        let mut out = Vec::new();
        for ns in self.world.all() {
            let st = ns.lock();
            out.extend(
                st.links
                    .values()
                    .filter(|l| !(Arc::ptr_eq(&ns, &self.ns) && l.iface.index == index))
                    .filter(|l| l.iface.admin_up)
                    .filter(|l| l.iface.addresses.iter().any(|a| a.addr() == addr))
                    .filter_map(|l| l.iface.mac),
            );
        }
        Ok(out)
    }

    async fn enable_announce(&self, name: &IfName) -> Result<(), NetError> {
        let mut st = self.lock();
        Self::index_of(&st, name.as_str())?;
        st.announce.insert(name.to_string());
        Ok(())
    }

    async fn netns(&self, file: &Path) -> Result<Arc<dyn NetOps>, NetError> {
        Ok(Arc::new(self.namespace(file)?))
    }

    async fn create_netns(&self, name: &str) -> Result<(), NetError> {
        let path = Path::new(NETNS_RUN_DIR).join(name);
        if self.world.find(&path).is_ok() {
            return Err(NetError::AlreadyExists {
                what: format!("network namespace {name:?}"),
            });
        }
        self.register(path);
        Ok(())
    }

    async fn delete_netns(&self, name: &str) -> Result<(), NetError> {
        // Virtual links die with their namespace.
        self.remove_netns_at(&Path::new(NETNS_RUN_DIR).join(name))
            .map_err(|_| NetError::NotFound {
                what: format!("network namespace {name:?}"),
            })
    }

    async fn netns_names(&self) -> Result<Vec<String>, NetError> {
        let run = Path::new(NETNS_RUN_DIR);
        let mut names: Vec<String> = self
            .world
            .others
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .filter(|p| p.parent() == Some(run))
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }
}
