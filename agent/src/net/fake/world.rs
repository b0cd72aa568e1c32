//! The fake kernel's state: its namespaces, each with its links, addresses,
//! routes and subscribers.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU32, AtomicU64},
    },
};

use linkherd_proto::model::{Interface, LinkKind, MacAddr};
use tokio::sync::broadcast;

use crate::net::{NetError, NetEvent, Route};

#[derive(Debug, Clone)]
pub(super) struct FakeLink {
    pub(super) iface: Interface,
    /// Index of the other end, for veth pairs (same namespace).
    pub(super) peer: Option<u32>,
    /// The lower device: (namespace id, index), for VLANs and macvlans.
    pub(super) lower: Option<(u64, u32)>,
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) links: BTreeMap<u32, FakeLink>,
    pub(super) routes: Vec<Route>,
    pub(super) announce: BTreeSet<String>,
}

/// One network namespace.
#[derive(Debug)]
pub(super) struct FakeNs {
    pub(super) id: u64,
    pub(super) state: Mutex<State>,
    pub(super) events: broadcast::Sender<NetEvent>,
}

impl FakeNs {
    pub(super) fn new(id: u64) -> Arc<Self> {
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
                lower: None,
            },
        );
        Arc::new(Self {
            id,
            state: Mutex::new(State {
                links,
                ..State::default()
            }),
            events,
        })
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock can only come from a test assertion;
        // the state is still consistent, so keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn emit(&self, event: NetEvent) {
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(event);
    }
}

/// Every namespace of the fake machine.
#[derive(Debug)]
pub(super) struct World {
    pub(super) host: Arc<FakeNs>,
    /// Namespace files (named namespaces and process namespaces).
    pub(super) others: Mutex<HashMap<PathBuf, Arc<FakeNs>>>,
    pub(super) next_index: AtomicU32,
    pub(super) next_ns: AtomicU64,
    pub(super) vlan_supported: bool,
    /// How long each link creation takes (0: instant), so that tests can
    /// cut a request short half way, as a client deadline does on a real
    /// kernel where a create takes milliseconds.
    pub(super) add_link_delay_ms: AtomicU64,
    pub(super) set_link_delay_ms: AtomicU64,
}

impl World {
    pub(super) fn all(&self) -> Vec<Arc<FakeNs>> {
        let mut v = vec![self.host.clone()];
        v.extend(
            self.others
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .cloned(),
        );
        v
    }

    pub(super) fn find(&self, path: &Path) -> Result<Arc<FakeNs>, NetError> {
        self.others
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .cloned()
            .ok_or_else(|| NetError::NotFound {
                what: format!("network namespace {}", path.display()),
            })
    }
}
