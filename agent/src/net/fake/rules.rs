//! The kernel's rules the fake keeps: names resolved per namespace, flags
//! and carrier derived, one macvlan per MAC and mode on a lower device, the
//! checks a new link passes.

use std::collections::{BTreeMap, HashMap};

use ipnet::IpNet;
use linkherd_proto::model::{Interface, LinkDetails, LinkKind, MacAddr, MacvlanMode, OperState};

use crate::net::{NetError, NetEvent, NewLink, NewLinkKind};

use super::{FakeKernel, index_not_found, not_found, world::State};

pub(super) fn link_index_filter(st: &State, index: u32) -> Result<Interface, NetError> {
    st.links
        .get(&index)
        .map(|l| l.iface.clone())
        .ok_or_else(|| index_not_found(index))
}

impl FakeKernel {
    pub(super) fn index_of(st: &State, name: &str) -> Result<u32, NetError> {
        st.links
            .values()
            .find(|l| l.iface.name == name)
            .map(|l| l.iface.index)
            .ok_or_else(|| not_found(name))
    }

    pub(super) fn resolve_names(st: &mut State) {
        let names: BTreeMap<u32, String> = st
            .links
            .iter()
            .map(|(i, l)| (*i, l.iface.name.clone()))
            .collect();
        for link in st.links.values_mut() {
            // A lower device in another namespace has no name here.
            let local = link.lower.is_none() || link.peer.is_some();
            if local || link.iface.parent.is_none() {
                link.iface.parent = names.get(&link.iface.parent_index).cloned();
            }
        }
    }

    /// Recomputes flags and carrier the way the kernel does: RUNNING and
    /// LOWER_UP only when up with carrier; a veth has carrier when its peer
    /// is up; a VLAN or macvlan when its lower device is up.
    pub(super) fn refresh(&self) {
        let lower_up: HashMap<(u64, u32), bool> = self
            .world
            .all()
            .iter()
            .flat_map(|ns| {
                let st = ns.lock();
                let id = ns.id;
                st.links
                    .iter()
                    .map(|(i, l)| ((id, *i), l.iface.admin_up))
                    .collect::<Vec<_>>()
            })
            .collect();
        let id = self.ns.id;
        let mut st = self.lock();
        for link in st.links.values_mut() {
            let i = &mut link.iface;
            let carrier = match (link.peer, link.lower) {
                (Some(p), _) => lower_up.get(&(id, p)).copied().unwrap_or(false),
                (None, Some(l)) => lower_up.get(&l).copied().unwrap_or(false),
                (None, None) => true,
            };
            let running = i.admin_up && carrier;
            i.oper_state = match (i.admin_up, carrier, i.kind) {
                (false, _, _) => OperState::Down,
                (true, _, LinkKind::Loopback) => OperState::Unknown,
                (true, true, _) => OperState::Up,
                (true, false, _) => OperState::LowerLayerDown,
            };
            let loopback = i.kind == LinkKind::Loopback;
            let mut flags = vec![if loopback { "LOOPBACK" } else { "BROADCAST" }];
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

    pub(super) fn modify(
        &self,
        index: u32,
        f: impl FnOnce(&mut Interface) -> Result<bool, NetError>,
    ) -> Result<(), NetError> {
        let mut st = self.lock();
        let link = st
            .links
            .get_mut(&index)
            .ok_or_else(|| index_not_found(index))?;
        let changed = f(&mut link.iface)?;
        let peer = link.peer;
        drop(st);
        if changed {
            self.ns.emit(NetEvent::Link { index });
            if let Some(p) = peer {
                self.ns.emit(NetEvent::Link { index: p });
            }
        }
        Ok(())
    }

    pub(super) fn insert_address(&self, index: u32, addr: IpNet) -> Result<(), NetError> {
        let mut st = self.lock();
        let link = st
            .links
            .get_mut(&index)
            .ok_or_else(|| index_not_found(index))?;
        if link.iface.addresses.contains(&addr) {
            return Err(NetError::AlreadyExists {
                what: format!("address {addr}"),
            });
        }
        link.iface.addresses.push(addr);
        drop(st);
        self.ns.emit(NetEvent::Address { index });
        Ok(())
    }

    /// Removes a link and, as the kernel does, everything stacked on it
    /// (VLANs, macvlans, in any namespace) and its veth peer.
    pub(super) fn remove(&self, index: u32) {
        let mut doomed = vec![(self.ns.clone(), index)];
        let mut removed = Vec::new();
        while let Some((ns, index)) = doomed.pop() {
            let mut st = ns.lock();
            let Some(link) = st.links.remove(&index) else {
                continue;
            };
            st.routes.retain(|r| r.index != index);
            drop(st);
            if let Some(p) = link.peer {
                doomed.push((ns.clone(), p));
            }
            for other in self.world.all() {
                let st = other.lock();
                for l in st.links.values() {
                    if l.lower == Some((ns.id, index)) {
                        doomed.push((other.clone(), l.iface.index));
                    }
                }
            }
            removed.push((ns, index, link.iface.name));
        }
        for (ns, index, name) in removed {
            ns.emit(NetEvent::LinkRemoved { index, name });
        }
    }

    /// Macvlans (anywhere) whose lower device is `lower`: mode, MAC, up.
    pub(super) fn macvlans_on(
        &self,
        lower: (u64, u32),
    ) -> Vec<(MacvlanMode, Option<MacAddr>, bool)> {
        self.world
            .all()
            .iter()
            .flat_map(|ns| {
                ns.lock()
                    .links
                    .values()
                    .filter(|l| l.lower == Some(lower))
                    .filter_map(|l| match &l.iface.details {
                        Some(LinkDetails::Macvlan { mode, .. }) => {
                            Some((*mode, l.iface.mac, l.iface.admin_up))
                        }
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The kernel's macvlan_open check: no other up macvlan on the same
    /// lower device may have this MAC.
    pub(super) fn check_mac_free(&self, index: u32) -> Result<(), NetError> {
        let (lower, mac) = {
            let st = self.lock();
            let Some(l) = st.links.get(&index) else {
                return Ok(());
            };
            match (&l.iface.details, l.lower) {
                (Some(LinkDetails::Macvlan { .. }), Some(lower)) => (lower, l.iface.mac),
                _ => return Ok(()),
            }
        };
        let busy = self
            .macvlans_on(lower)
            .iter()
            .filter(|(_, m, up)| *up && *m == mac)
            .count()
            > 0;
        if busy {
            return Err(NetError::Busy {
                op: "set link state",
                detail: "Address already in use (os error 98)".into(),
            });
        }
        Ok(())
    }

    pub(super) fn check_new_link(
        &self,
        link: &NewLink,
        parent: &Interface,
    ) -> Result<(), NetError> {
        let invalid = |op: &'static str, detail: &str| NetError::Invalid {
            op,
            detail: detail.to_owned(),
        };
        match &link.kind {
            NewLinkKind::Vlan { id, .. } => {
                if !self.world.vlan_supported {
                    return Err(NetError::Unsupported {
                        op: "add vlan",
                        detail: "Operation not supported (os error 95)".into(),
                    });
                }
                if parent.kind == LinkKind::Loopback {
                    return Err(NetError::Unsupported {
                        op: "add vlan",
                        detail: "VLANs not supported on lo".into(),
                    });
                }
                let dup = self.lock().links.values().any(|l| {
                    l.lower == Some((self.ns.id, parent.index))
                        && matches!(l.iface.details, Some(LinkDetails::Vlan { id: i, .. }) if i == id.get())
                });
                if dup {
                    return Err(NetError::AlreadyExists {
                        what: format!("VLAN {id} on {}", parent.name),
                    });
                }
                if link.mtu.is_some_and(|m| m > parent.mtu) {
                    return Err(invalid("add vlan", "Invalid argument (os error 22)"));
                }
            }
            NewLinkKind::Macvlan { mode, .. } => {
                if parent.kind == LinkKind::Loopback {
                    return Err(invalid("add macvlan", "Invalid argument (os error 22)"));
                }
                if parent.master.is_some() {
                    return Err(NetError::Busy {
                        op: "add macvlan",
                        detail: "Device or resource busy (os error 16)".into(),
                    });
                }
                let port = self.macvlans_on((self.ns.id, parent.index));
                let passthru_taken = port.iter().any(|(m, _, _)| *m == MacvlanMode::Passthru);
                if passthru_taken || (*mode == MacvlanMode::Passthru && !port.is_empty()) {
                    return Err(invalid("add macvlan", "Invalid argument (os error 22)"));
                }
                if link.mtu.is_some_and(|m| m > parent.mtu) {
                    return Err(invalid("add macvlan", "Invalid argument (os error 22)"));
                }
            }
        }
        Ok(())
    }
}
