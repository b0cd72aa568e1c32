//! An in-memory kernel for fast tests of everything above the seam.
//!
//! It mimics the kernel's observable rules that linkherd relies on (index
//! allocation, IFF_PROMISC vs the promiscuity counter, MTU limits, veth
//! carrier, change notifications), and is held to the real kernel by the
//! shared contract suite. Inject it explicitly; nothing swaps it in behind
//! the caller's back.

use std::{
    collections::BTreeMap,
    sync::{Mutex, MutexGuard},
};

use async_trait::async_trait;
use ipnet::IpNet;
use linkherd_proto::model::{IfName, Interface, LinkKind, MacAddr, MacvlanMode, OperState};
use tokio::sync::{broadcast, mpsc};

use super::{Capabilities, EventStream, NO_VLAN_NOTE, NetError, NetEvent, NetOps};

#[derive(Debug, Clone)]
struct FakeLink {
    iface: Interface,
    /// Index of the other end, for veth pairs.
    peer: Option<u32>,
}

#[derive(Debug)]
struct State {
    links: BTreeMap<u32, FakeLink>,
    next_index: u32,
}

/// The in-memory kernel. See the module docs.
#[derive(Debug)]
pub struct FakeKernel {
    state: Mutex<State>,
    events: broadcast::Sender<NetEvent>,
    vlan_supported: bool,
}

impl Default for FakeKernel {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeKernel {
    /// A kernel with only `lo`, like a fresh network namespace, and without
    /// 802.1Q (like this project's CI machine).
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(1024);
        let mut links = BTreeMap::new();
        links.insert(
            1,
            FakeLink {
                iface: Interface {
                    mac: Some(MacAddr([0; 6])),
                    mtu: 65536,
                    flags: vec!["LOOPBACK".into()],
                    ..Interface::new(1, "lo", LinkKind::Loopback)
                },
                peer: None,
            },
        );
        Self {
            state: Mutex::new(State {
                links,
                next_index: 2,
            }),
            events,
            vlan_supported: false,
        }
    }

    /// A fake kernel that reports 802.1Q support.
    pub fn with_vlan_support(mut self) -> Self {
        self.vlan_supported = true;
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock can only come from a test assertion;
        // the state is still consistent, so keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, event: NetEvent) {
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(event);
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

    /// Adds a veth pair, as `ip link add A type veth peer name B` would.
    /// This is a test fixture: the agent itself never creates veths.
    pub fn add_veth(&self, a: &str, b: &str) -> Result<(u32, u32), NetError> {
        let mut st = self.lock();
        for name in [a, b] {
            if st.links.values().any(|l| l.iface.name == name) {
                return Err(NetError::AlreadyExists {
                    what: format!("interface {name:?}"),
                });
            }
        }
        let (ia, ib) = (st.next_index, st.next_index + 1);
        st.next_index += 2;
        for (index, name, peer) in [(ia, a, ib), (ib, b, ia)] {
            let mac = MacAddr([0x02, 0x1f, 0, 0, (index >> 8) as u8, index as u8]);
            let mut iface = Self::new_link(index, name, "veth", mac);
            iface.parent_index = peer;
            st.links.insert(
                index,
                FakeLink {
                    iface,
                    peer: Some(peer),
                },
            );
        }
        Self::resolve_parents(&mut st);
        drop(st);
        self.emit(NetEvent::Link { index: ia });
        self.emit(NetEvent::Link { index: ib });
        Ok((ia, ib))
    }

    /// Deletes a link (and its veth peer), as `ip link del` would.
    pub fn del_link(&self, name: &str) -> Result<(), NetError> {
        let mut st = self.lock();
        let index = Self::index_of(&st, name)?;
        let mut removed = Vec::new();
        if let Some(link) = st.links.remove(&index) {
            removed.push((index, link.iface.name));
            if let Some(peer) = link.peer.and_then(|p| st.links.remove(&p)) {
                removed.push((peer.iface.index, peer.iface.name));
            }
        }
        drop(st);
        for (index, name) in removed {
            self.emit(NetEvent::LinkRemoved { index, name });
        }
        Ok(())
    }

    /// Adds an address, as `ip addr add` would.
    pub fn add_addr(&self, name: &str, addr: IpNet) -> Result<(), NetError> {
        let mut st = self.lock();
        let index = Self::index_of(&st, name)?;
        let link = st.links.get_mut(&index).ok_or_else(|| not_found(name))?;
        if link.iface.addresses.contains(&addr) {
            return Err(NetError::AlreadyExists {
                what: format!("address {addr} on {name}"),
            });
        }
        link.iface.addresses.push(addr);
        drop(st);
        self.emit(NetEvent::Address { index });
        Ok(())
    }

    fn index_of(st: &State, name: &str) -> Result<u32, NetError> {
        st.links
            .values()
            .find(|l| l.iface.name == name)
            .map(|l| l.iface.index)
            .ok_or_else(|| not_found(name))
    }

    fn resolve_parents(st: &mut State) {
        let names: BTreeMap<u32, String> = st
            .links
            .iter()
            .map(|(i, l)| (*i, l.iface.name.clone()))
            .collect();
        for link in st.links.values_mut() {
            link.iface.parent = names.get(&link.iface.parent_index).cloned();
        }
    }

    /// Recomputes flags and carrier the way the kernel does: RUNNING and
    /// LOWER_UP only when up with carrier; a veth has carrier when its peer
    /// is up.
    fn refresh(st: &mut State) {
        let admin: BTreeMap<u32, bool> = st
            .links
            .iter()
            .map(|(i, l)| (*i, l.iface.admin_up))
            .collect();
        for link in st.links.values_mut() {
            let i = &mut link.iface;
            let carrier = match link.peer {
                Some(p) => admin.get(&p).copied().unwrap_or(false),
                None => true,
            };
            let running = i.admin_up && carrier;
            i.oper_state = match (i.admin_up, carrier, i.kind) {
                (false, _, _) => OperState::Down,
                (true, _, LinkKind::Loopback) => OperState::Unknown,
                (true, true, _) => OperState::Up,
                (true, false, _) => OperState::LowerLayerDown,
            };
            let mut flags = Vec::new();
            let loopback = i.kind == LinkKind::Loopback;
            flags.push(if loopback { "LOOPBACK" } else { "BROADCAST" });
            if !loopback {
                flags.push("MULTICAST");
            }
            if i.promiscuous {
                flags.push("PROMISC");
            }
            if i.admin_up {
                flags.push("UP");
            }
            if running {
                flags.push("LOWER_UP");
                flags.push("RUNNING");
            }
            i.flags = flags.into_iter().map(String::from).collect();
        }
    }

    fn modify(
        &self,
        index: u32,
        f: impl FnOnce(&mut Interface) -> Result<bool, NetError>,
    ) -> Result<(), NetError> {
        let mut st = self.lock();
        let link = st.links.get_mut(&index).ok_or_else(|| NetError::NotFound {
            what: format!("interface index {index}"),
        })?;
        let changed = f(&mut link.iface)?;
        let peer = link.peer;
        Self::refresh(&mut st);
        drop(st);
        if changed {
            self.emit(NetEvent::Link { index });
            if let Some(p) = peer {
                self.emit(NetEvent::Link { index: p });
            }
        }
        Ok(())
    }
}

fn not_found(name: &str) -> NetError {
    NetError::NotFound {
        what: format!("interface {name:?}"),
    }
}

#[async_trait]
impl NetOps for FakeKernel {
    async fn links(&self) -> Result<Vec<Interface>, NetError> {
        let mut st = self.lock();
        Self::refresh(&mut st);
        Ok(st.links.values().map(|l| l.iface.clone()).collect())
    }

    async fn link(&self, name: &IfName) -> Result<Interface, NetError> {
        let mut st = self.lock();
        Self::refresh(&mut st);
        st.links
            .values()
            .find(|l| l.iface.name == name.as_str())
            .map(|l| l.iface.clone())
            .ok_or_else(|| not_found(name.as_str()))
    }

    async fn link_by_index(&self, index: u32) -> Result<Interface, NetError> {
        let mut st = self.lock();
        Self::refresh(&mut st);
        st.links
            .get(&index)
            .map(|l| l.iface.clone())
            .ok_or_else(|| NetError::NotFound {
                what: format!("interface index {index}"),
            })
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
        self.modify(index, |i| {
            let changed = i.admin_up != up;
            i.admin_up = up;
            Ok(changed)
        })
    }

    async fn set_mtu(&self, index: u32, mtu: u32) -> Result<(), NetError> {
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

    async fn capabilities(&self) -> Capabilities {
        Capabilities {
            vlan: self.vlan_supported,
            macvlan: true,
            macvlan_modes: MacvlanMode::ALL.to_vec(),
            netns: true,
            notes: if self.vlan_supported {
                Vec::new()
            } else {
                vec![NO_VLAN_NOTE.to_owned()]
            },
        }
    }

    async fn watch(&self) -> Result<EventStream, NetError> {
        let mut rx = self.events.subscribe();
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
}
