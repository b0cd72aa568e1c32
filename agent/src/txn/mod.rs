//! Commit-confirmed transactions over a host's desired state.
//!
//! `Apply` carries out a plan step by step. Before each step touches the
//! kernel, how to undo it is written to the journal (write-ahead, one
//! durable write per step); a step whose undo cannot be written is not
//! made. A failure undoes the steps done so far. Success leaves the
//! transaction pending until `Confirm`; if no confirmation comes in time
//! (the controller lost contact, or its verification failed) the agent
//! rolls back by itself. An agent that restarts with a journal rolls that
//! transaction back at once.
//!
//! The journal is the record set `txn/` of the state store: one file per
//! step, `{"format": 1, "txn": ID, "deadline": UNIX, "seq": N, "steps":
//! [UNDO…]}`, each undo a readable model type. Ending a transaction clears
//! the set in one atomic rename. The journal of older agents (`txn.json`,
//! specs as protobuf bytes) is still read and rolled back.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use linkherd_proto::{
    convert::{Desired, EndpointSelector},
    model::{
        CatalogNetwork, EndpointSpec, HostAccessSpec, IfName, MacAddr, NetnsRef, ObjName, Owner,
        VlanSpec,
    },
    pb,
};
use prost::Message;
use serde::{Deserialize, Serialize};
use tokio::{sync::Mutex, task::AbortHandle};
use tracing::Instrument;

use crate::{
    error::Error,
    faults::{Faults, Point},
    lifecycle::{
        Lifecycle, Outcome, Wanted,
        plan::{Change, Op},
    },
    state::audit::Audit,
    state::caller::Identity,
    state::store::{RecordSet, Store, Versioned},
};

/// The journal's record set in the state directory.
const JOURNAL: &str = "txn";
/// The single-file journal of agents before the store (format 0).
const LEGACY_JOURNAL: &str = "txn.json";
/// Confirmation window when the caller gives none, and the longest allowed.
pub const DEFAULT_CONFIRM: Duration = Duration::from_secs(60);
pub const MAX_CONFIRM: Duration = Duration::from_secs(3600);
/// The longest an address check may wait for answers.
pub const MAX_ADDRESS_CHECK_MS: u32 = 5000;

/// How to undo one applied transaction step, as journaled: the specs are
/// the model's own types, stored as readable JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "undo", rename_all = "snake_case")]
enum JournalStep {
    DeleteVlan {
        name: IfName,
    },
    CreateVlan {
        vlan: VlanSpec,
        /// The network it was made for, when linkherd made it for one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        auto_for_network: Option<String>,
    },
    DeleteEndpoint {
        network: ObjName,
        name: ObjName,
        /// The named namespace the create made (it did not exist before),
        /// removed with whatever is in it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        netns: Option<String>,
    },
    CreateEndpoint {
        endpoint: EndpointSpec,
    },
    DeleteHostAccess {
        network: ObjName,
    },
    CreateHostAccess {
        host_access: HostAccessSpec,
    },
    /// Put the catalog's network `name` back as it was (`None`: it was not
    /// in the catalog).
    RestoreNetwork {
        name: String,
        previous: Option<CatalogNetwork>,
    },
}

/// One journal file: the undo of one step (several records when the step
/// is a run of removals).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Batch {
    txn: String,
    /// Unix seconds.
    deadline: u64,
    seq: u32,
    steps: Vec<JournalStep>,
}

impl Versioned for Batch {
    const FORMAT: u32 = 1;
}

impl Batch {
    fn key(&self) -> String {
        format!("{:06}", self.seq)
    }
}

/// A transaction's journal in memory: its batches, oldest first.
#[derive(Debug, Clone)]
struct Journal {
    id: String,
    deadline: u64,
    batches: Vec<Batch>,
    /// The sequence number of the next batch.
    next_seq: u32,
}

impl Journal {
    fn is_empty(&self) -> bool {
        self.batches.iter().all(|b| b.steps.is_empty())
    }

    /// Every undo step, newest first.
    fn undo_order(&self) -> impl Iterator<Item = &JournalStep> {
        self.batches.iter().rev().flat_map(|b| b.steps.iter().rev())
    }
}

#[derive(Debug)]
struct Pending {
    journal: Journal,
    timer: Option<AbortHandle>,
}

/// The result of an apply.
#[derive(Debug, Clone)]
pub struct Applied {
    pub id: String,
    pub changes: Vec<Change>,
    pub deadline: SystemTime,
}

/// A host's transaction manager: at most one pending transaction.
#[derive(Debug, Clone)]
pub struct Transactions {
    lifecycle: Arc<Lifecycle>,
    audit: Arc<Audit>,
    store: Option<Store>,
    journal: Option<RecordSet<Batch>>,
    pending: Arc<Mutex<Option<Pending>>>,
    faults: Faults,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl JournalStep {
    /// What reverting this step does, in words.
    fn describe(&self) -> String {
        match self {
            JournalStep::DeleteVlan { name } => format!("deleted vlan {name}"),
            JournalStep::CreateVlan { vlan, .. } => format!("re-created vlan {}", vlan.name),
            JournalStep::DeleteEndpoint { network, name, .. } => {
                format!("deleted endpoint {network}/{name}")
            }
            JournalStep::CreateEndpoint { endpoint: e } => {
                format!("re-created endpoint {}/{}", e.network, e.name)
            }
            JournalStep::DeleteHostAccess { network } => format!("deleted host access {network}"),
            JournalStep::CreateHostAccess { host_access } => {
                format!("re-created host access {}", host_access.network)
            }
            JournalStep::RestoreNetwork { name, previous } => match previous {
                Some(_) => format!("restored network {name} in the catalog"),
                None => format!("removed network {name} from the catalog"),
            },
        }
    }

    /// Reverts the step. Deletes accept what is already gone: the undo is
    /// written before the step, which may never have happened.
    async fn revert(&self, lc: &Lifecycle) -> Result<(), Error> {
        match self {
            JournalStep::DeleteVlan { name } => gone_ok(lc.delete_vlan(name, false).await),
            JournalStep::CreateVlan {
                vlan,
                auto_for_network,
            } => {
                let owner = match auto_for_network {
                    Some(network) => Owner::AutoVlan {
                        network: network.clone(),
                    },
                    None => Owner::Vlan,
                };
                lc.create_vlan(vlan, owner).await.map(drop)
            }
            JournalStep::DeleteEndpoint {
                network,
                name,
                netns,
            } => {
                let sel = EndpointSelector::Named {
                    network: network.clone(),
                    name: name.clone(),
                };
                gone_ok(lc.delete_endpoints(&sel, false).await)?;
                match netns {
                    Some(n) => lc.remove_step_netns(n).await,
                    None => Ok(()),
                }
            }
            JournalStep::CreateEndpoint { endpoint } => {
                lc.create_endpoint(endpoint).await.map(drop)
            }
            JournalStep::DeleteHostAccess { network } => {
                gone_ok(lc.delete_host_access(network).await)
            }
            JournalStep::CreateHostAccess { host_access } => {
                lc.create_host_access(host_access).await.map(drop)
            }
            JournalStep::RestoreNetwork { name, previous } => match previous {
                Some(net) => lc.put_network(net.clone()).await.map(drop),
                None => lc.remove_network(name).await.map(drop),
            },
        }
    }

    /// How to re-create a VLAN as it is now.
    fn recreate_vlan(old: linkherd_proto::model::VlanState) -> Result<Self, Error> {
        let auto_for_network = old.auto_for_network.clone();
        let v = pb::Vlan::from(old);
        let vlan = VlanSpec::try_from(pb::CreateVlanRequest {
            parent: v.parent,
            id: v.id,
            protocol: v.protocol,
            name: v.name,
            mtu: v.mtu,
        })?;
        Ok(JournalStep::CreateVlan {
            vlan,
            auto_for_network,
        })
    }

    /// How to re-create an endpoint as it is now (its namespace too, when
    /// linkherd made that).
    fn recreate_endpoint(mut old: linkherd_proto::model::EndpointState) -> Result<Self, Error> {
        let create_netns = old.netns_created;
        // Counters and carrier are not part of what to re-create.
        old.interface = None;
        let endpoint = EndpointSpec::try_from(pb::CreateMacvlanRequest {
            endpoint: Some(old.into()),
            create_netns,
        })?;
        Ok(JournalStep::CreateEndpoint { endpoint })
    }

    fn recreate_host_access(old: linkherd_proto::model::HostAccessState) -> Result<Self, Error> {
        let host_access = HostAccessSpec::try_from(pb::CreateHostAccessRequest {
            host_access: Some(old.into()),
        })?;
        Ok(JournalStep::CreateHostAccess { host_access })
    }
}

/// Gone already counts as deleted.
fn gone_ok<T>(r: Result<T, Error>) -> Result<(), Error> {
    match r {
        Ok(_) | Err(Error::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The journal of agents before the store: `txn.json`, specs as protobuf.
#[derive(Debug, Deserialize)]
struct LegacyJournal {
    id: String,
    deadline: u64,
    undo: Vec<LegacyStep>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "undo", rename_all = "snake_case")]
enum LegacyStep {
    DeleteVlan {
        name: String,
    },
    CreateVlan {
        vlan: Vec<u8>,
    },
    DeleteEndpoint {
        network: String,
        name: String,
        #[serde(default)]
        netns: Option<String>,
    },
    CreateEndpoint {
        endpoint: Vec<u8>,
        create_netns: bool,
    },
    DeleteHostAccess {
        network: String,
    },
    CreateHostAccess {
        host_access: Vec<u8>,
    },
}

impl LegacyStep {
    /// The same undo as a [`JournalStep`].
    fn upgrade(self) -> Result<JournalStep, String> {
        let decode = |e: prost::DecodeError| format!("undecodable protobuf: {e}");
        let step = match self {
            LegacyStep::DeleteVlan { name } => JournalStep::DeleteVlan {
                name: IfName::parse("name", &name).map_err(|e| e.to_string())?,
            },
            LegacyStep::CreateVlan { vlan } => {
                let v = pb::Vlan::decode(vlan.as_slice()).map_err(decode)?;
                let auto = (!v.auto_for_network.is_empty()).then(|| v.auto_for_network.clone());
                let vlan = VlanSpec::try_from(pb::CreateVlanRequest {
                    parent: v.parent,
                    id: v.id,
                    protocol: v.protocol,
                    name: v.name,
                    mtu: v.mtu,
                })
                .map_err(|e| e.to_string())?;
                JournalStep::CreateVlan {
                    vlan,
                    auto_for_network: auto,
                }
            }
            LegacyStep::DeleteEndpoint {
                network,
                name,
                netns,
            } => JournalStep::DeleteEndpoint {
                network: ObjName::parse("network", &network).map_err(|e| e.to_string())?,
                name: ObjName::parse("name", &name).map_err(|e| e.to_string())?,
                netns,
            },
            LegacyStep::CreateEndpoint {
                endpoint,
                create_netns,
            } => {
                let e = pb::MacvlanEndpoint::decode(endpoint.as_slice()).map_err(decode)?;
                let req = pb::CreateMacvlanRequest {
                    endpoint: Some(e),
                    create_netns,
                };
                JournalStep::CreateEndpoint {
                    endpoint: EndpointSpec::try_from(req).map_err(|e| e.to_string())?,
                }
            }
            LegacyStep::DeleteHostAccess { network } => JournalStep::DeleteHostAccess {
                network: ObjName::parse("network", &network).map_err(|e| e.to_string())?,
            },
            LegacyStep::CreateHostAccess { host_access } => {
                let h = pb::HostAccess::decode(host_access.as_slice()).map_err(decode)?;
                let req = pb::CreateHostAccessRequest {
                    host_access: Some(h),
                };
                JournalStep::CreateHostAccess {
                    host_access: HostAccessSpec::try_from(req).map_err(|e| e.to_string())?,
                }
            }
        };
        Ok(step)
    }
}

impl LegacyJournal {
    /// The journal as one batch, and the steps that could not be read.
    fn upgrade(self) -> (Journal, Vec<String>) {
        let mut steps = Vec::new();
        let mut unreadable = Vec::new();
        for s in self.undo {
            match s.upgrade() {
                Ok(s) => steps.push(s),
                Err(e) => {
                    unreadable.push(format!("FAILED to read a step of {LEGACY_JOURNAL}: {e}"))
                }
            }
        }
        let batch = Batch {
            txn: self.id.clone(),
            deadline: self.deadline,
            seq: 1,
            steps,
        };
        let journal = Journal {
            id: self.id,
            deadline: self.deadline,
            batches: vec![batch],
            next_seq: 2,
        };
        (journal, unreadable)
    }
}

impl Transactions {
    /// `store`: where the journal lives; `None` keeps it in memory only.
    pub fn new(
        lifecycle: Arc<Lifecycle>,
        audit: Arc<Audit>,
        store: Option<Store>,
        faults: Faults,
    ) -> Self {
        Self {
            lifecycle,
            audit,
            journal: store.as_ref().map(|s| s.records(JOURNAL)),
            store,
            pending: Arc::default(),
            faults,
        }
    }

    /// Journals `steps` as the next batch — before the kernel is touched:
    /// when this fails, the step is not made.
    async fn write_batch(&self, j: &mut Journal, steps: Vec<JournalStep>) -> Result<(), Error> {
        if steps.is_empty() {
            return Ok(());
        }
        let batch = Batch {
            txn: j.id.clone(),
            deadline: j.deadline,
            seq: j.next_seq,
            steps,
        };
        if let Some(r) = &self.journal {
            r.put(&[&batch.txn, &batch.key()], &batch)
                .instrument(tracing::debug_span!("txn.journal"))
                .await?;
        }
        self.faults.hit(Point::Journaled { seq: batch.seq });
        j.next_seq += 1;
        j.batches.push(batch);
        Ok(())
    }

    /// Drops the newest batch: its step made nothing. `durable`: remove its
    /// file too (on a failure the whole journal goes just after).
    async fn retract(&self, j: &mut Journal, durable: bool) -> Result<(), Error> {
        let Some(batch) = j.batches.pop() else {
            return Ok(());
        };
        if durable && let Some(r) = &self.journal {
            r.remove(&[&batch.txn, &batch.key()]).await?;
        }
        Ok(())
    }

    /// Removes the whole journal (one atomic rename, then the files).
    async fn forget(&self) -> Result<(), Error> {
        if let Some(r) = &self.journal {
            r.clear().await?;
        }
        Ok(())
    }

    /// Rolls back a transaction left by an agent that stopped before it was
    /// confirmed — in today's journal or an older agent's `txn.json`.
    /// Called once at start; fails only when the journal cannot be read or
    /// removed.
    pub async fn recover(&self) -> Result<(), Error> {
        if let Err(e) = self.lifecycle.remove_stale_probe_netns().await {
            tracing::error!(error = %e, "cannot remove the address-check namespace a previous run left");
        }
        let (Some(store), Some(records)) = (&self.store, &self.journal) else {
            return Ok(());
        };
        if let Some(old) = store.read_legacy::<LegacyJournal>(LEGACY_JOURNAL).await? {
            let (journal, unreadable) = old.upgrade();
            self.recover_one(&journal, unreadable).await;
            store.remove_file(LEGACY_JOURNAL).await?;
        }
        let mut batches = records.load_all().await?;
        batches.sort_by(|a, b| (&a.txn, a.seq).cmp(&(&b.txn, b.seq)));
        let mut journals: Vec<Journal> = Vec::new();
        for b in batches {
            match journals.last_mut() {
                Some(j) if j.id == b.txn => j.batches.push(b),
                _ => journals.push(Journal {
                    id: b.txn.clone(),
                    deadline: b.deadline,
                    next_seq: 0,
                    batches: vec![b],
                }),
            }
        }
        for j in &journals {
            self.recover_one(j, Vec::new()).await;
        }
        self.forget().await
    }

    async fn recover_one(&self, j: &Journal, mut notes: Vec<String>) {
        tracing::warn!(
            txn = j.id,
            "rolling back a transaction left unconfirmed by a previous run"
        );
        notes.extend(self.revert(j).await);
        let who = Identity::agent("restart with an unconfirmed transaction");
        self.audit
            .record(&who, "txn-recover", &j.id, &notes.join("; "), "rolled back");
    }

    /// Applies `desired` if the host is still at `expected` (0: any); with
    /// `check`, the addresses of new endpoints are probed free on the wire
    /// (waiting that long for answers) before any endpoint is made.
    pub async fn apply(
        &self,
        desired: &Desired,
        expected: u64,
        confirm: Duration,
        check: Option<Duration>,
    ) -> Result<Applied, Error> {
        let mut pending = self.pending.lock().await;
        if let Some(p) = pending.as_ref() {
            return Err(Error::Precondition(format!(
                "transaction {} is pending on this host; confirm or roll it back first",
                p.journal.id
            )));
        }
        let now = generation(&self.lifecycle).await?;
        if expected != 0 && expected != now {
            return Err(Error::Precondition(format!(
                "this host changed since it was planned (generation {expected}, now {now}); plan again"
            )));
        }
        let changes = self.lifecycle.plan(desired).await?;
        let deadline = SystemTime::now() + confirm;
        let mut journal = Journal {
            id: txn_id(),
            deadline: unix(deadline),
            batches: Vec::new(),
            next_seq: 1,
        };
        if !changes.is_empty() {
            // A journal whose removal failed before must not mix with this.
            self.forget().await?;
        }
        self.run(&changes, check, &mut journal).await?;
        let id = journal.id.clone();
        if !journal.is_empty() {
            let timer = Some(self.expire_after(&id, confirm));
            *pending = Some(Pending { journal, timer });
        }
        Ok(Applied {
            id,
            changes,
            deadline,
        })
    }

    /// Carries out `changes` in order; on a failure undoes what was done.
    /// A step's error keeps its own code, with the step named.
    async fn run(
        &self,
        changes: &[Change],
        check: Option<Duration>,
        j: &mut Journal,
    ) -> Result<(), Error> {
        // The address check runs once, right before the first endpoint is
        // made: VLAN parents exist by then, removed endpoints are gone.
        let mut check = check;
        let mut i = 0;
        while let Some(c) = changes.get(i) {
            let endpoint = matches!(c.op, Op::CreateEndpoint(_) | Op::ReplaceEndpoint(_));
            if let Some(wait) = check.take_if(|_| endpoint)
                && let Err(e) = self.check_addresses(changes, wait).await
            {
                let reverted = self.abandon(j).await;
                tracing::warn!(error = %e, reverted, "address check failed; rolled back");
                return Err(e);
            }
            match self.step(&changes[i..], i, j).await {
                Ok(done) => {
                    self.faults.hit(Point::Made {
                        index: i + done - 1,
                    });
                    i += done;
                }
                Err(e) => {
                    let reverted = self.abandon(j).await;
                    tracing::warn!(step = c.object, error = %e, reverted, "apply failed; rolled back");
                    // A group names its own failed member.
                    return Err(match e {
                        e @ Error::Step { .. } => e,
                        e => Error::Step {
                            step: format!("{} {}", c.kind, c.object),
                            source: Box::new(e),
                        },
                    });
                }
            }
        }
        Ok(())
    }

    /// Rolls the transaction back by itself when `confirm` passes first.
    fn expire_after(&self, id: &str, confirm: Duration) -> AbortHandle {
        let this = self.clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(confirm).await;
            let who = Identity::agent("confirmation timed out");
            match this.roll_back(&id, false).await {
                Ok(reverted) => {
                    this.audit
                        .record(&who, "txn-expiry", &id, &reverted.join("; "), "rolled back")
                }
                Err(Error::NotFound(_)) => {}
                Err(e) => {
                    let result = format!("error: {e}");
                    this.audit.record(&who, "txn-expiry", &id, "", &result);
                }
            }
        })
        .abort_handle()
    }

    /// Keeps a pending transaction. The journal goes first: a confirmed
    /// transaction must not be rolled back by a restart.
    pub async fn confirm(&self, id: &str) -> Result<u64, Error> {
        let mut pending = self.pending.lock().await;
        match pending.as_ref() {
            Some(p) if p.journal.id == id => {}
            _ => {
                return Err(Error::NotFound(format!(
                    "no pending transaction {id} on this host"
                )));
            }
        }
        self.forget().await?;
        if let Some(p) = pending.take()
            && let Some(t) = p.timer
        {
            t.abort();
        }
        drop(pending);
        generation(&self.lifecycle).await
    }

    /// Undoes a pending transaction; returns what was reverted, in words.
    pub async fn rollback(&self, id: &str) -> Result<Vec<String>, Error> {
        self.roll_back(id, true).await
    }

    /// Rolls back the pending transaction `id`; `stop_timer` aborts its
    /// expiry task — which must not be done from that task itself: it would
    /// cancel its own rollback after the first step.
    async fn roll_back(&self, id: &str, stop_timer: bool) -> Result<Vec<String>, Error> {
        let mut pending = self.pending.lock().await;
        let p = match pending.take() {
            Some(p) if p.journal.id == id => p,
            other => {
                *pending = other;
                return Err(Error::NotFound(format!(
                    "no pending transaction {id} on this host"
                )));
            }
        };
        if let Some(t) = p.timer.filter(|_| stop_timer) {
            t.abort();
        }
        let reverted = self.revert(&p.journal).await;
        self.forget().await?;
        Ok(reverted)
    }

    /// Undoes what a transaction that failed half way did and forgets its
    /// journal; returns how many steps were reverted. The caller returns
    /// the failure itself, so a journal that cannot be removed is logged
    /// (the next apply removes it first, or fails saying why).
    async fn abandon(&self, j: &Journal) -> usize {
        let reverted = self.revert(j).await;
        if let Err(e) = self.forget().await {
            tracing::error!(error = %e, "cannot remove the journal of a rolled-back transaction");
        }
        reverted.len()
    }

    /// Reverts every step of `j`, newest first. Every step is tried;
    /// failures are logged and reported, since the rest must be undone
    /// regardless.
    async fn revert(&self, j: &Journal) -> Vec<String> {
        let mut out = Vec::new();
        for step in j.undo_order() {
            let what = step.describe();
            match step.revert(&self.lifecycle).await {
                Ok(()) => out.push(what),
                Err(e) => {
                    tracing::error!(step = what, error = %e, "rollback step failed");
                    out.push(format!("FAILED: {what}: {e}"));
                }
            }
        }
        out
    }

    /// Probes the IPv4 addresses the plan's new and replaced endpoints are
    /// to get, all at once; any in use fails the transaction.
    async fn check_addresses(&self, changes: &[Change], wait: Duration) -> Result<(), Error> {
        let mut wanted = Vec::new();
        let mut replaced = Vec::new();
        for c in changes {
            let (Op::CreateEndpoint(spec) | Op::ReplaceEndpoint(spec)) = &c.op else {
                continue;
            };
            // A passthru macvlan is the only one its parent may carry: no
            // probe link can go next to it.
            if spec.mode == linkherd_proto::model::MacvlanMode::Passthru {
                continue;
            }
            if matches!(c.op, Op::ReplaceEndpoint(_)) {
                replaced.push((spec.network.to_string(), spec.name.to_string()));
            }
            wanted.extend(spec.addresses.iter().filter_map(|a| match a.addr() {
                std::net::IpAddr::V4(v4) => Some(Wanted {
                    parent: spec.parent.clone(),
                    addr: v4,
                    endpoint: format!("{}/{}", spec.network, spec.name),
                }),
                std::net::IpAddr::V6(_) => None,
            }));
        }
        // Endpoints about to be replaced still answer for their addresses.
        let expected: Vec<MacAddr> = self
            .lifecycle
            .list_endpoints()
            .await?
            .into_iter()
            .filter(|e| replaced.contains(&(e.network.clone(), e.name.clone())))
            .filter_map(|e| e.mac)
            .collect();
        let in_use = self
            .lifecycle
            .addresses_in_use(&wanted, &expected, wait)
            .await?;
        if in_use.is_empty() {
            Ok(())
        } else {
            Err(Error::Precondition(format!(
                "address check failed, nothing was changed on this host: {}; give those \
                 endpoints other addresses, or free these",
                in_use.join("; ")
            )))
        }
    }

    /// Carries out the first of `ops` — with the removals of the same
    /// network's endpoints that follow it, as one — each part journaled
    /// before it is made; returns how many of `ops` it did.
    async fn step(&self, ops: &[Change], at: usize, j: &mut Journal) -> Result<usize, Error> {
        let Some(first) = ops.first() else {
            return Ok(0);
        };
        if let Op::CreateEndpoint(_) = &first.op {
            // New endpoints in a row go together: one durable journal
            // write for them all.
            let specs: Vec<&EndpointSpec> = ops
                .iter()
                .map_while(|c| match &c.op {
                    Op::CreateEndpoint(spec) => Some(spec),
                    _ => None,
                })
                .take(CREATE_GROUP)
                .collect();
            return match self.add_endpoints(&specs, at, j).await {
                Ok(()) => Ok(specs.len()),
                Err((k, e)) if k > 0 => Err(Error::Step {
                    step: format!("{} {}", ops[k].kind, ops[k].object),
                    source: Box::new(e),
                }),
                Err((_, e)) => Err(e),
            };
        }
        match &first.op {
            Op::CreateVlan(spec) => self.add_vlan(spec, j).await?,
            Op::DeleteVlan { name } => self.remove_vlan(name, j).await?,
            Op::ReplaceVlan(spec) => {
                self.remove_vlan(&spec.name, j).await?;
                self.add_vlan(spec, j).await?;
            }
            Op::DeleteEndpoint { network, .. } => {
                // Removals of one network's endpoints in a row go together.
                let names: Vec<&str> = ops
                    .iter()
                    .map_while(|c| match &c.op {
                        Op::DeleteEndpoint { network: n, name } if n == network => {
                            Some(name.as_str())
                        }
                        _ => None,
                    })
                    .collect();
                self.remove_endpoints(network, &names, j).await?;
                return Ok(names.len());
            }
            Op::ReplaceEndpoint(spec) => {
                self.remove_endpoints(spec.network.as_str(), &[spec.name.as_str()], j)
                    .await?;
                self.add_endpoints(&[spec], at, j).await.map_err(|e| e.1)?;
            }
            Op::CreateEndpoint(spec) => {
                self.add_endpoints(&[spec], at, j).await.map_err(|e| e.1)?
            }
            Op::DeleteHostAccess { network } => self.remove_host_access(network, j).await?,
            Op::ReplaceHostAccess(spec) => {
                self.remove_host_access(spec.network.as_str(), j).await?;
                self.add_host_access(spec, j).await?;
            }
            Op::CreateHostAccess(spec) => self.add_host_access(spec, j).await?,
            Op::PutNetwork(net) => self.change_network(net.name.as_str(), Some(net), j).await?,
            Op::RemoveNetwork { name } => self.change_network(name, None, j).await?,
        }
        Ok(1)
    }

    /// Journals `undo`, then runs `create`; the record stays only when the
    /// create made something (there already: nothing to undo; failed: the
    /// create undid itself).
    async fn journaled_create(
        &self,
        j: &mut Journal,
        undo: JournalStep,
        create: impl Future<Output = Result<Outcome, Error>>,
    ) -> Result<(), Error> {
        self.write_batch(j, vec![undo]).await?;
        match create.await {
            Ok(Outcome::Created) => Ok(()),
            Ok(_) => self.retract(j, true).await,
            Err(e) => {
                self.retract(j, false).await?;
                Err(e)
            }
        }
    }

    async fn add_vlan(&self, spec: &VlanSpec, j: &mut Journal) -> Result<(), Error> {
        let undo = JournalStep::DeleteVlan {
            name: spec.name.clone(),
        };
        let create = async { Ok(self.lifecycle.create_vlan(spec, Owner::Vlan).await?.1) };
        self.journaled_create(j, undo, create).await
    }

    /// Creates endpoints, write-ahead: the undo of them all is on disk, in
    /// one batch, before the kernel is touched for the first, so an agent
    /// killed half way through still removes what it made when it restarts
    /// (an undo of one not made yet finds nothing to remove). Afterwards
    /// the batch keeps only those this apply made: one found there already
    /// is not this transaction's to remove. `at`: the first one's index in
    /// the plan (for the crash-test hooks). A failure says which of
    /// `specs` failed.
    async fn add_endpoints(
        &self,
        specs: &[&EndpointSpec],
        at: usize,
        j: &mut Journal,
    ) -> Result<(), (usize, Error)> {
        let undo = self.endpoint_undo(specs).await.map_err(|e| (0, e))?;
        self.write_batch(j, undo).await.map_err(|e| (0, e))?;
        let (outcomes, failed) = self
            .lifecycle
            .create_endpoints(specs, |k| self.faults.hit(Point::Made { index: at + k }))
            .await;
        let mut made = vec![false; specs.len()];
        for (m, outcome) in made.iter_mut().zip(&outcomes) {
            *m = *outcome == Outcome::Created;
        }
        self.keep_made(j, &made).await.map_err(|e| (0, e))?;
        failed.map_or(Ok(()), Err)
    }

    /// How to undo each of `specs`: delete it, and the namespace it is to
    /// be made in when this apply is to create that.
    async fn endpoint_undo(&self, specs: &[&EndpointSpec]) -> Result<Vec<JournalStep>, Error> {
        let mut undo = Vec::with_capacity(specs.len());
        for spec in specs {
            let netns = match (&spec.netns, spec.create_netns) {
                (NetnsRef::Named(n), true) if !self.lifecycle.netns_exists(n).await? => {
                    Some(n.clone())
                }
                _ => None,
            };
            undo.push(JournalStep::DeleteEndpoint {
                network: spec.network.clone(),
                name: spec.name.clone(),
                netns,
            });
        }
        Ok(undo)
    }

    /// Rewrites the newest batch with only the steps whose `made` is true
    /// (nothing to write when that is all of them; removed when none).
    async fn keep_made(&self, j: &mut Journal, made: &[bool]) -> Result<(), Error> {
        if made.iter().all(|m| *m) {
            return Ok(());
        }
        if !made.iter().any(|m| *m) {
            return self.retract(j, true).await;
        }
        let Some(batch) = j.batches.last_mut() else {
            return Ok(());
        };
        let mut keep = made.iter();
        batch
            .steps
            .retain(|_| keep.next().copied().unwrap_or(false));
        if let Some(r) = &self.journal {
            r.put(&[&batch.txn, &batch.key()], batch)
                .instrument(tracing::debug_span!("txn.journal"))
                .await?;
        }
        Ok(())
    }

    async fn add_host_access(&self, spec: &HostAccessSpec, j: &mut Journal) -> Result<(), Error> {
        let undo = JournalStep::DeleteHostAccess {
            network: spec.network.clone(),
        };
        let create = async { Ok(self.lifecycle.create_host_access(spec).await?.1) };
        self.journaled_create(j, undo, create).await
    }

    /// Removes endpoints `names` of `network`, write-ahead: how to
    /// re-create each is on disk first, in one file. When they are all the
    /// network has on this host (a teardown), one link-group request
    /// removes them: a link delete waits for an RCU grace period, which a
    /// group pays once.
    async fn remove_endpoints(
        &self,
        network: &str,
        names: &[&str],
        j: &mut Journal,
    ) -> Result<(), Error> {
        let here = self.lifecycle.endpoint_names(network).await;
        let whole = here.iter().all(|n| names.contains(&n.as_str()));
        let undo = self
            .lifecycle
            .endpoints_of(network, Some(names))
            .await?
            .into_iter()
            .map(JournalStep::recreate_endpoint)
            .collect::<Result<Vec<_>, _>>()?;
        self.write_batch(j, undo).await?;
        let network_name = ObjName::parse("network", network)?;
        if whole {
            self.lifecycle
                .delete_endpoints(&EndpointSelector::Network(network_name), false)
                .await?;
            return Ok(());
        }
        for name in names {
            let sel = EndpointSelector::Named {
                network: network_name.clone(),
                name: ObjName::parse("name", name)?,
            };
            self.lifecycle.delete_endpoints(&sel, false).await?;
        }
        Ok(())
    }

    /// Puts `net` in the catalog as `name` (`None`: removes it),
    /// write-ahead: what it was is on disk first.
    async fn change_network(
        &self,
        name: &str,
        net: Option<&CatalogNetwork>,
        j: &mut Journal,
    ) -> Result<(), Error> {
        let previous = self.lifecycle.network(name).await;
        let undo = JournalStep::RestoreNetwork {
            name: name.to_owned(),
            previous,
        };
        self.write_batch(j, vec![undo]).await?;
        match net {
            Some(net) => self.lifecycle.put_network(net.clone()).await.map(drop),
            None => self.lifecycle.remove_network(name).await.map(drop),
        }
    }

    /// Deletes host access, write-ahead: how to re-create it is on disk
    /// first.
    async fn remove_host_access(&self, network: &str, j: &mut Journal) -> Result<(), Error> {
        let old = self
            .lifecycle
            .list_host_access()
            .await?
            .into_iter()
            .find(|h| h.network == network);
        let undo = old.map(JournalStep::recreate_host_access).transpose()?;
        self.write_batch(j, undo.into_iter().collect()).await?;
        self.lifecycle
            .delete_host_access(&ObjName::parse("network", network)?)
            .await?;
        Ok(())
    }

    /// Deletes an owned VLAN, write-ahead: how to re-create it as it was is
    /// on disk first.
    async fn remove_vlan(&self, name: &IfName, j: &mut Journal) -> Result<(), Error> {
        let lc = &self.lifecycle;
        let old = lc
            .list_vlans()
            .await?
            .into_iter()
            .find(|v| v.name == name.as_str());
        let undo = old.map(JournalStep::recreate_vlan).transpose()?;
        self.write_batch(j, undo.into_iter().collect()).await?;
        lc.delete_vlan(name, false).await?;
        Ok(())
    }
}

/// At most this many new endpoints share one journal batch (and its one
/// durable write): a batch file stays small.
const CREATE_GROUP: usize = 256;

/// Everything linkherd owns on this host, as the kernel has it, in a stable
/// order (so equal states encode to equal bytes).
pub async fn observed(lc: &Lifecycle) -> Result<pb::OwnedObjects, Error> {
    let mut vlans: Vec<pb::Vlan> = lc
        .list_vlans()
        .await?
        .into_iter()
        .filter(|v| v.owned)
        .map(Into::into)
        .collect();
    vlans.sort_by(|a, b| a.name.cmp(&b.name));
    let mut endpoints: Vec<pb::MacvlanEndpoint> = lc
        .list_endpoints()
        .await?
        .into_iter()
        .filter(|e| e.owned)
        .map(|mut e| {
            // Counters and carrier change all the time; they are not state.
            e.interface = None;
            e.into()
        })
        .collect();
    endpoints.sort_by(|a, b| (&a.network, &a.name).cmp(&(&b.network, &b.name)));
    let mut host_access: Vec<pb::HostAccess> = lc
        .list_host_access()
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    host_access.sort_by(|a, b| a.network.cmp(&b.network));
    // In name order already.
    let catalog = lc.networks().await.iter().map(Into::into).collect();
    Ok(pb::OwnedObjects {
        vlans,
        endpoints,
        host_access,
        catalog,
    })
}

/// `txn-<unix seconds>-<8 hex digits>`: the digits come from the clock's
/// nanoseconds and the pid, so transactions of several hosts started in the
/// same second (agents in identical guests have the same pid) differ.
fn txn_id() -> String {
    let now = SystemTime::now();
    let nanos = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "txn-{}-{:08x}",
        unix(now),
        nanos ^ std::process::id().rotate_left(16)
    )
}

/// A fingerprint of the owned state: any change to an owned object changes
/// it, so a transaction planned against one state can refuse another.
pub fn fingerprint(state: &pb::OwnedObjects) -> u64 {
    state
        .encode_to_vec()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

/// The current generation of this host.
pub async fn generation(lc: &Lifecycle) -> Result<u64, Error> {
    Ok(fingerprint(&observed(lc).await?))
}

#[cfg(test)]
mod tests {
    use linkherd_proto::field_violations;
    use tonic::{Code, Status};

    use super::*;
    use crate::{net::NetError, state::store::StoreError};

    fn step(source: Error) -> Status {
        Status::from(Error::Step {
            step: "endpoint mac_net/b1".into(),
            source: Box::new(source),
        })
    }

    #[test]
    fn a_failed_step_keeps_its_causes_code_and_names_the_step() {
        let eio = step(Error::Net(NetError::Kernel {
            op: "add link",
            errno: libc::EIO,
        }));
        assert_eq!(eio.code(), Code::Internal);
        assert!(
            eio.message()
                .starts_with("endpoint mac_net/b1 failed: add link"),
            "{}",
            eio.message()
        );
        assert!(
            eio.message()
                .ends_with("; everything done before it was rolled back"),
            "{}",
            eio.message()
        );
        let missing = step(Error::NotFound(
            "parent interface \"eth9\" not found".into(),
        ));
        assert_eq!(missing.code(), Code::NotFound);
        assert_eq!(
            missing.message(),
            "endpoint mac_net/b1 failed: parent interface \"eth9\" not found; everything done \
             before it was rolled back"
        );
        let invalid = step(Error::Invalid(linkherd_proto::model::ValidationError::new(
            "mtu",
            "9",
            "is too small",
            "use 68+",
        )));
        assert_eq!(invalid.code(), Code::InvalidArgument);
        assert_eq!(field_violations(&invalid)[0].0, "mtu", "details kept");
        let full = step(Error::Store(StoreError::Io {
            op: "write",
            path: "/s/txn/x.json".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        }));
        assert_eq!(full.code(), Code::FailedPrecondition);
        assert!(
            full.message().contains(
                "cannot write /s/txn/x.json: No space left on device (os error 28); free space"
            ),
            "{}",
            full.message()
        );
        let eio = step(Error::Store(StoreError::Io {
            op: "write",
            path: "/s/txn/x.json".into(),
            source: std::io::Error::from_raw_os_error(libc::EIO),
        }));
        assert_eq!(eio.code(), Code::Internal);
    }

    fn spec() -> EndpointSpec {
        EndpointSpec::try_from(pb::CreateMacvlanRequest {
            endpoint: Some(pb::MacvlanEndpoint {
                network: "mac_net".into(),
                name: "b1".into(),
                parent: "ens192".into(),
                mode: pb::MacvlanMode::Bridge.into(),
                netns: Some(pb::NetnsTarget {
                    target: Some(pb::netns_target::Target::Name("b1".into())),
                }),
                addresses: vec!["10.0.100.10/24".into()],
                ..Default::default()
            }),
            create_netns: true,
        })
        .expect("spec")
    }

    #[test]
    fn journal_steps_are_readable_json_and_read_back() {
        let batch = Batch {
            txn: "txn-1-1".into(),
            deadline: 4_102_444_800,
            seq: 1,
            steps: vec![JournalStep::CreateEndpoint { endpoint: spec() }],
        };
        let v = serde_json::to_value(&batch).expect("json");
        let e = &v["steps"][0];
        assert_eq!(e["undo"], "create_endpoint");
        assert_eq!(e["endpoint"]["network"], "mac_net");
        assert_eq!(e["endpoint"]["netns"], serde_json::json!({"named": "b1"}));
        assert_eq!(
            e["endpoint"]["addresses"],
            serde_json::json!(["10.0.100.10/24"])
        );
        assert_eq!(e["endpoint"]["mode"], "bridge");
        let back: Batch = serde_json::from_value(v).expect("read back");
        assert_eq!(back, batch);
    }

    #[test]
    fn an_old_journal_step_in_protobuf_is_upgraded() {
        let old = pb::MacvlanEndpoint::from(linkherd_proto::model::EndpointState {
            network: "mac_net".into(),
            name: "b1".into(),
            parent: "ens192".into(),
            mode: linkherd_proto::model::MacvlanMode::Bridge,
            netns: NetnsRef::Named("b1".into()),
            ifname: "eth0".into(),
            addresses: vec!["10.0.100.10/24".parse().expect("cidr")],
            gateway: None,
            mac: None,
            mtu: 1500,
            source_macs: vec![],
            owned: true,
            parent_created: false,
            netns_created: true,
            interface: None,
        });
        let legacy: LegacyJournal = serde_json::from_value(serde_json::json!({
            "id": "txn-1-1",
            "deadline": 1,
            "undo": [
                {"undo": "create_endpoint", "endpoint": old.encode_to_vec(), "create_netns": true},
                {"undo": "create_vlan", "vlan": [255, 255]},
            ],
        }))
        .expect("old journal");
        let (journal, unreadable) = legacy.upgrade();
        let JournalStep::CreateEndpoint { endpoint } = &journal.batches[0].steps[0] else {
            panic!("{journal:?}");
        };
        assert_eq!(
            (endpoint.network.as_str(), endpoint.ifname.as_str()),
            ("mac_net", "eth0")
        );
        assert!(endpoint.create_netns);
        assert_eq!(journal.batches[0].steps.len(), 1);
        assert_eq!(unreadable.len(), 1);
        assert!(
            unreadable[0].starts_with("FAILED to read a step of txn.json: undecodable protobuf"),
            "{}",
            unreadable[0]
        );
    }
}
