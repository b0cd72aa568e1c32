//! Connections into other namespaces, kept briefly by namespace identity,
//! and the thread kept inside a connection's namespace for sysctls.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, atomic::Ordering},
    time::Instant,
};

use super::{Rtnl, runtime::blocking};
use crate::net::{NetError, netns};

/// Namespace (device, inode) -> connection and when it was last used.
pub(super) type Children = HashMap<(u64, u64), (Arc<Rtnl>, std::time::Instant)>;

/// How long an idle connection into another namespace is kept. Short: an
/// open socket keeps its namespace alive after the last process left it.
pub(super) const CHILD_IDLE: std::time::Duration = std::time::Duration::from_secs(2);

/// Drops the connections idle for [`CHILD_IDLE`]; they are returned to be
/// dropped outside the lock.
fn idle_ones(children: &mut Children, now: Instant) -> Vec<Arc<Rtnl>> {
    let idle: Vec<(u64, u64)> = children
        .iter()
        .filter(|(_, (_, used))| now.duration_since(*used) >= CHILD_IDLE)
        .map(|(k, _)| *k)
        .collect();
    idle.iter()
        .filter_map(|k| children.remove(k).map(|(c, _)| c))
        .collect()
}

/// The identity of a namespace file: the same namespace has the same inode
/// whether reached as /run/netns/NAME or /proc/PID/ns/net.
/// Opened with [`netns::open`]'s checks, which never block.
pub(super) fn ns_key(file: &Path) -> Option<(u64, u64)> {
    netns::identity(file).ok().map(|id| (id.dev, id.ino))
}

impl Rtnl {
    pub(super) fn cached(&self, key: (u64, u64)) -> Option<Arc<Rtnl>> {
        let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let _idle = idle_ones(&mut children, now);
        children.get_mut(&key).map(|(c, used)| {
            *used = now;
            c.clone()
        })
    }

    /// Starts, once, the task that drops idle connections on a timer: a
    /// namespace a runtime deleted must not be kept alive — with the links
    /// in it — until the next call into some namespace. It ends when no
    /// connection is left, or with this instance.
    fn prune_on_a_timer(&self) {
        if self.pruning.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(handle) = self.rt.handle() else {
            self.pruning.store(false, Ordering::Release);
            return;
        };
        let (children, pruning) = (Arc::downgrade(&self.children), self.pruning.clone());
        handle.spawn(async move {
            loop {
                tokio::time::sleep(CHILD_IDLE / 2).await;
                let Some(children) = children.upgrade() else {
                    return;
                };
                let mut map = children.lock().unwrap_or_else(|p| p.into_inner());
                let idle = idle_ones(&mut map, Instant::now());
                if map.is_empty() {
                    // Under the lock: an insert after it starts a new task.
                    pruning.store(false, Ordering::Release);
                }
                let done = map.is_empty();
                drop(map);
                drop(idle);
                if done {
                    return;
                }
            }
        });
    }

    /// Drops the cached connections into namespaces whose file is gone or
    /// names another namespace now (someone ran `ip netns del`): held, the
    /// socket would keep the deleted namespace and its links alive.
    pub(super) fn forget_unlinked(&self) {
        let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
        let gone: Vec<(u64, u64)> = children
            .iter()
            .filter(|(key, (c, _))| c.netns_file().and_then(ns_key) != Some(**key))
            .map(|(k, _)| *k)
            .collect();
        let dropped: Vec<_> = gone.iter().filter_map(|k| children.remove(k)).collect();
        drop(children);
        drop(dropped);
    }

    pub(super) fn forget(&self, file: &Path) {
        if let Some(key) = ns_key(file) {
            self.children
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
        }
    }

    /// The connection into the namespace at `file`, opened once and kept
    /// briefly (see `children`).
    pub(super) async fn child(&self, file: &Path) -> Result<Arc<Rtnl>, NetError> {
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
            .insert(key, (child.clone(), Instant::now()));
        self.prune_on_a_timer();
        Ok(child)
    }

    /// The thread kept inside this connection's namespace (`path`),
    /// started at first use.
    pub(super) async fn worker(&self, path: PathBuf) -> Result<Arc<netns::NsWorker>, NetError> {
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
}
