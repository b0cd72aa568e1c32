//! The records of container attachments: which runtime's container has
//! which macvlan, address and MAC on which catalog network. Kept apart
//! from the fleet's endpoint records, so fleet plans never list or remove
//! what runtimes attached, and behind the same lock, so that an automatic
//! VLAN parent stays while attachments use it. One file per attachment
//! (`attachments/NETWORK+CONTAINER+IFNAME.json`).

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use ipnet::IpNet;
use linkherd_proto::model::MacAddr;
use serde::{Deserialize, Serialize};

use super::held::{Held, Taken};
use crate::{
    net::netns::NsId,
    state::store::{RecordSet, Store, StoreError, Versioned},
};

/// The record set's directory.
const RECORDS: &str = "attachments";

/// (network, container id, interface name): CNI's key.
pub type AttachKey = (String, String, String);

/// One attachment's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attached {
    pub network: String,
    pub container_id: String,
    pub ifname: String,
    /// The runtime's namespace path, and its identity when attached: a
    /// path that later names another namespace is not mistaken for it.
    pub netns: PathBuf,
    pub netns_id: Option<NsId>,
    /// The link it hangs off, and whether linkherd made it for the network.
    pub parent: String,
    pub parent_created: bool,
    /// Sticky: asked again for this key, the same ones are given.
    pub addresses: Vec<IpNet>,
    pub mac: MacAddr,
    /// Made in the agent's own namespace as `ifname` and handed to the
    /// runtime, which moves and renames it (Docker's Join): found by its
    /// owner mark, wherever it is (see `host::attachments::handover`).
    #[serde(default)]
    pub handed_over: bool,
    /// When a hand-over was recorded (seconds since the epoch): one the
    /// runtime never joined is given up after [`RESERVATION_TTL`].
    #[serde(default)]
    pub recorded_at: Option<u64>,
}

impl Attached {
    pub fn key(&self) -> AttachKey {
        (
            self.network.clone(),
            self.container_id.clone(),
            self.ifname.clone(),
        )
    }

    /// Its owner mark's name: `CONTAINER_ID/IFNAME`.
    pub fn mark_name(&self) -> String {
        format!("{}/{}", self.container_id, self.ifname)
    }
}

impl Versioned for Attached {
    const FORMAT: u32 = 1;
}

/// How long an address handed out before its endpoint exists (Docker's
/// RequestAddress, then CreateEndpoint) stays reserved: a runtime that died
/// in between must not hold it for ever.
pub const RESERVATION_TTL: Duration = Duration::from_secs(300);

/// Addresses handed out and not yet used by an endpoint, over every
/// network; one more is refused until some are used, released or expire.
pub const MAX_RESERVATIONS: usize = 1024;

/// Hand-overs recorded and never joined (Docker's CreateEndpoint without
/// Join); one more is refused until some are joined, deleted or reaped.
pub const MAX_UNJOINED: usize = 1024;

/// Every attachment, in memory and on disk.
#[derive(Debug, Default)]
pub struct AttachmentRecords {
    records: Option<RecordSet<Attached>>,
    all: BTreeMap<AttachKey, Attached>,
    /// Addresses handed out and not yet recorded, by (network, address):
    /// in memory only. After an agent restart the runtime's next step
    /// (CreateEndpoint) records the address it was given unless another
    /// record holds it by then, which is refused.
    reserved: BTreeMap<(String, IpAddr), Instant>,
    /// Releases owed by endpoints deleted with their addresses: Docker
    /// sends ReleaseAddress after DeleteEndpoint, and that release — late,
    /// or again — must not free the address for whoever holds it by then.
    owed: BTreeMap<(String, IpAddr), (u32, Instant)>,
    /// Owed releases paid within [`RESERVATION_TTL`]: the same release
    /// again is the previous holder's too, and frees nothing either.
    paid: BTreeMap<(String, IpAddr), Instant>,
    /// Reservations released within [`RESERVATION_TTL`]: handed out again
    /// only when nothing else is free, so a repeated release finds
    /// nobody's reservation. (A deleted endpoint's address is handed out
    /// again at once: `docker restart` keeps its address.)
    cooling: HashMap<String, BTreeMap<IpAddr, Instant>>,
    /// The addresses records and reservations hold, kept as they change.
    held: Held,
}

/// What a ReleaseAddress freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// The reservation the address had.
    Reservation,
    /// Nothing: the release is a deleted endpoint's (owed, or again).
    PreviousHolders,
    /// Nothing: the address was neither reserved nor owed.
    Nothing,
}

impl AttachmentRecords {
    pub async fn load(store: Option<&Store>) -> Result<Self, StoreError> {
        let Some(store) = store else {
            return Ok(Self::default());
        };
        let records = store.records::<Attached>(RECORDS);
        let all: BTreeMap<AttachKey, Attached> = records
            .load_all()
            .await?
            .into_iter()
            .map(|a| (a.key(), a))
            .collect();
        let mut held = Held::default();
        for a in all.values() {
            for n in &a.addresses {
                held.hold(&a.network, n.addr());
            }
        }
        Ok(Self {
            records: Some(records),
            all,
            held,
            ..Self::default()
        })
    }

    pub fn get(&self, key: &AttachKey) -> Option<&Attached> {
        self.all.get(key)
    }

    pub fn all(&self) -> impl Iterator<Item = &Attached> {
        self.all.values()
    }

    /// The addresses of `network` as `except` sees them: every other key's
    /// records and the live reservations are taken (expired ones are
    /// dropped here), and with `rested`, the reservations released lately.
    pub fn taken(&mut self, network: &str, except: Option<&AttachKey>, rested: bool) -> Taken<'_> {
        self.expire();
        let mine = except
            .and_then(|k| self.all.get(k))
            .map(|a| a.addresses.iter().map(IpNet::addr).collect())
            .unwrap_or_default();
        let avoid = self.cooling.get(network).filter(|_| rested);
        self.held.view(network, mine, avoid)
    }

    /// Whether reservations released lately rest on `network`.
    pub fn resting(&mut self, network: &str) -> bool {
        self.expire();
        self.cooling.get(network).is_some_and(|c| !c.is_empty())
    }

    /// Whether one more address may be reserved (see [`MAX_RESERVATIONS`]);
    /// expired reservations are dropped first.
    pub fn has_room_to_reserve(&mut self) -> bool {
        self.expire();
        self.reserved.len() < MAX_RESERVATIONS
    }

    /// Hand-overs recorded and not joined yet.
    pub fn unjoined(&self) -> usize {
        self.all
            .values()
            .filter(|a| a.handed_over && a.netns.as_os_str().is_empty())
            .count()
    }

    pub fn reserve(&mut self, network: &str, addr: IpAddr) {
        let fresh = self
            .reserved
            .insert((network.to_owned(), addr), Instant::now())
            .is_none();
        if fresh {
            self.held.hold(network, addr);
        }
    }

    /// Whether `addr` was reserved on `network` (its endpoint now records
    /// it).
    pub fn unreserve(&mut self, network: &str, addr: IpAddr) -> bool {
        let was = self.reserved.remove(&(network.to_owned(), addr)).is_some();
        if was {
            self.held.unhold(network, addr);
        }
        was
    }

    /// An endpoint holding `addrs` was deleted: one ReleaseAddress each is
    /// owed.
    pub fn owe_releases(&mut self, network: &str, addrs: impl IntoIterator<Item = IpAddr>) {
        let now = Instant::now();
        for a in addrs {
            let owed = self.owed.entry((network.to_owned(), a)).or_insert((0, now));
            *owed = (owed.0.saturating_add(1), now);
        }
    }

    /// Docker's ReleaseAddress of `addr`: a release owed by a deleted
    /// endpoint is paid first, and one paid lately is not paid twice;
    /// only then is a reservation dropped. Wrongly kept, a reservation
    /// lapses; wrongly dropped, an address would go to two containers.
    pub fn release(&mut self, network: &str, addr: IpAddr) -> Released {
        self.expire();
        let key = (network.to_owned(), addr);
        if let Some(owed) = self.owed.get_mut(&key) {
            owed.0 -= 1;
            if owed.0 == 0 {
                self.owed.remove(&key);
            }
            self.paid.insert(key, Instant::now());
            return Released::PreviousHolders;
        }
        if self.paid.contains_key(&key) {
            return Released::PreviousHolders;
        }
        if self.unreserve(network, addr) {
            let rest = self.cooling.entry(network.to_owned()).or_default();
            rest.insert(addr, Instant::now());
            return Released::Reservation;
        }
        Released::Nothing
    }

    /// Drops what outlived [`RESERVATION_TTL`]: reservations (their
    /// addresses free again), owed and paid releases, rests.
    fn expire(&mut self) {
        let now = Instant::now();
        let live = |at: &Instant| now.duration_since(*at) < RESERVATION_TTL;
        let lapsed: Vec<(String, IpAddr)> = self
            .reserved
            .iter()
            .filter(|(_, at)| !live(at))
            .map(|(k, _)| k.clone())
            .collect();
        for (network, addr) in lapsed {
            self.unreserve(&network, addr);
        }
        self.owed.retain(|_, (_, at)| live(at));
        self.paid.retain(|_, at| live(at));
        for rest in self.cooling.values_mut() {
            rest.retain(|_, at| live(at));
        }
        self.cooling.retain(|_, rest| !rest.is_empty());
    }

    /// Records `a` on disk, then here.
    pub async fn put(&mut self, a: Attached) -> Result<(), StoreError> {
        if self.all.get(&a.key()) == Some(&a) {
            return Ok(());
        }
        if let Some(r) = &self.records {
            r.put(&[&a.network, &a.container_id, &a.ifname], &a).await?;
        }
        for n in &a.addresses {
            self.held.hold(&a.network, n.addr());
        }
        if let Some(old) = self.all.insert(a.key(), a) {
            for n in &old.addresses {
                self.held.unhold(&old.network, n.addr());
            }
        }
        Ok(())
    }

    /// Forgets `key` on disk, then here; what it was.
    pub async fn remove(&mut self, key: &AttachKey) -> Result<Option<Attached>, StoreError> {
        if let Some(r) = &self.records {
            r.remove(&[&key.0, &key.1, &key.2]).await?;
        }
        let gone = self.all.remove(key);
        for n in gone.iter().flat_map(|a| &a.addresses) {
            self.held.unhold(&key.0, n.addr());
        }
        Ok(gone)
    }
}
