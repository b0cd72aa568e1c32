//! What an operator (or a container runtime) does to the fake kernel behind
//! the agent's back: the fixtures tests use to set a scene. The agent itself
//! never calls these.

use std::{
    path::{Path, PathBuf},
    sync::atomic::Ordering,
};

use ipnet::IpNet;

use super::{FakeKernel, FakeLink, FakeNs, NetError, NetEvent};

impl FakeKernel {
    /// Makes every later link creation (in any namespace) take `delay`.
    pub fn slow_add_link(&self, delay: std::time::Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.world.add_link_delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Makes every later `set_up` and `set_mtu` take `delay` before it
    /// changes the link.
    pub fn slow_set_link(&self, delay: std::time::Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.world.set_link_delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Adds a veth pair, as `ip link add A type veth peer name B` would.
    /// A test fixture: the agent itself never creates veths.
    pub fn add_veth(&self, a: &str, b: &str) -> Result<(u32, u32), NetError> {
        let (ia, ib) = (self.alloc_index(), self.alloc_index());
        let mut st = self.lock();
        for name in [a, b] {
            if st.links.values().any(|l| l.iface.name == name) {
                return Err(NetError::AlreadyExists {
                    what: format!("interface {name:?}"),
                });
            }
        }
        for (index, name, peer) in [(ia, a, ib), (ib, b, ia)] {
            let mut iface = Self::new_link(index, name, "veth", Self::mac_for(index));
            iface.parent_index = peer;
            st.links.insert(
                index,
                FakeLink {
                    iface,
                    peer: Some(peer),
                    lower: None,
                },
            );
        }
        Self::resolve_names(&mut st);
        drop(st);
        self.ns.emit(NetEvent::Link { index: ia });
        self.ns.emit(NetEvent::Link { index: ib });
        Ok((ia, ib))
    }

    /// Adds a bridge, as `ip link add NAME type bridge` would (fixture).
    pub fn add_bridge(&self, name: &str) -> Result<u32, NetError> {
        let index = self.alloc_index();
        let mut st = self.lock();
        if st.links.values().any(|l| l.iface.name == name) {
            return Err(NetError::AlreadyExists {
                what: format!("interface {name:?}"),
            });
        }
        let iface = Self::new_link(index, name, "bridge", Self::mac_for(index));
        st.links.insert(
            index,
            FakeLink {
                iface,
                peer: None,
                lower: None,
            },
        );
        drop(st);
        self.ns.emit(NetEvent::Link { index });
        Ok(index)
    }

    /// Enslaves `port` to `master`, as `ip link set PORT master BR` (fixture).
    pub fn set_master(&self, port: &str, master: &str) -> Result<(), NetError> {
        let mut st = self.lock();
        Self::index_of(&st, master)?;
        let p = Self::index_of(&st, port)?;
        if let Some(l) = st.links.get_mut(&p) {
            l.iface.master = Some(master.to_owned());
            l.iface.promiscuity += 1;
        }
        drop(st);
        self.ns.emit(NetEvent::Link { index: p });
        Ok(())
    }

    /// Deletes a link by name, as `ip link del` would (fixture).
    pub fn del_link_named(&self, name: &str) -> Result<(), NetError> {
        let index = Self::index_of(&self.lock(), name)?;
        self.remove(index);
        Ok(())
    }

    /// Adds an address by name, as `ip addr add` would (fixture).
    pub fn add_addr(&self, name: &str, addr: IpNet) -> Result<(), NetError> {
        let index = Self::index_of(&self.lock(), name)?;
        self.insert_address(index, addr)
    }

    /// Registers the namespace of process `pid` (`/proc/PID/ns/net`), as a
    /// container runtime would have created it.
    pub fn add_process_netns(&self, pid: u32) -> FakeKernel {
        self.register(PathBuf::from(format!("/proc/{pid}/ns/net")))
    }

    /// Removes the namespace at `file` with its links, as the kernel does
    /// when the process holding it exits.
    pub fn remove_netns_at(&self, file: &Path) -> Result<(), NetError> {
        let ns = self
            .world
            .others
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(file)
            .ok_or_else(|| NetError::NotFound {
                what: format!("network namespace {}", file.display()),
            })?;
        let indexes: Vec<u32> = ns.lock().links.keys().copied().collect();
        let view = FakeKernel {
            world: self.world.clone(),
            ns,
        };
        for i in indexes {
            view.remove(i);
        }
        Ok(())
    }

    /// Registers a namespace at `file`, as a runtime that bind-mounts one
    /// there would (Docker's sandboxes under /var/run/docker/netns).
    pub fn add_netns_at(&self, file: &Path) -> FakeKernel {
        self.register(file.to_owned())
    }

    /// The same kernel seen from the namespace at `file` (a named one under
    /// /run/netns or a process's), as `ip -n` or `nsenter` would see it.
    pub fn namespace(&self, file: &Path) -> Result<FakeKernel, NetError> {
        Ok(FakeKernel {
            world: self.world.clone(),
            ns: self.world.find(file)?,
        })
    }

    /// Whether announcements were enabled for `ifname` in this namespace.
    pub fn announces(&self, ifname: &str) -> bool {
        self.lock().announce.contains(ifname)
    }

    pub(super) fn register(&self, path: PathBuf) -> FakeKernel {
        let ns = FakeNs::new(self.world.next_ns.fetch_add(1, Ordering::SeqCst));
        self.world
            .others
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path, ns.clone());
        FakeKernel {
            world: self.world.clone(),
            ns,
        }
    }
}
