//! Promiscuous mode with leases.
//!
//! Turning promiscuous mode on a remote NIC for troubleshooting is easy to
//! forget to undo. With a lease the agent undoes it by itself: when the lease
//! ends it restores the flag to what it was before the first leased change.
//! Renewing (another leased call) extends the lease but keeps that original
//! state; a call without a lease makes the change permanent and cancels the
//! lease.
//!
//! Leases are journaled in the state directory, so an agent that restarts
//! re-arms them, and reverts at once those that ended while it was down.
//! The journal is written before the kernel flag changes: a lease that
//! cannot be journaled is not taken. It is one small document
//! (`promisc-leases.json`, `{"format": 1, "leases": [...]}`), at most one
//! lease per link and changed only by an operator's call, so rewriting it
//! whole costs nothing worth a record set.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use linkherd_proto::model::{Interface, PromiscLease};
use serde::{Deserialize, Serialize};
use tokio::{sync::Mutex, task::AbortHandle};

use crate::{
    error::Error,
    net::{NetError, NetOps},
    state::audit::Audit,
    state::caller::Identity,
    state::store::{Document, Store, StoreError, Upgrade, Versioned},
};

const JOURNAL_FILE: &str = "promisc-leases.json";

/// The lease journal on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LeaseJournal {
    leases: Vec<LeaseRecord>,
    /// Links an operator set promiscuous without a lease: the agent keeps
    /// the flag on there (after a reboot, when the NIC comes back, when
    /// something turns it off), see `converge`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    kept_on: Vec<String>,
}

impl Versioned for LeaseJournal {
    const FORMAT: u32 = 1;

    /// Format 0 (before the store): a bare array of leases.
    fn upgrade(format: u32, value: serde_json::Value) -> Result<Self, Upgrade> {
        match format {
            0 => serde_json::from_value(value)
                .map(|leases| LeaseJournal {
                    leases,
                    kept_on: Vec::new(),
                })
                .map_err(|e| Upgrade::Corrupt(format!("format 0: {e}"))),
            f => Err(Upgrade::Corrupt(format!("there was never a format {f}"))),
        }
    }
}

/// A lease as journaled on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LeaseRecord {
    index: u32,
    name: String,
    revert_to: bool,
    /// Unix time (seconds) when the lease ends.
    deadline: u64,
}

#[derive(Debug)]
struct Lease {
    record: LeaseRecord,
    /// Distinguishes this lease from a later one on the same link, so a
    /// stale timer never reverts a renewed lease.
    generation: u64,
    timer: AbortHandle,
}

#[derive(Debug, Default)]
struct Inner {
    leases: HashMap<u32, Lease>,
    generation: u64,
    /// Names of the links kept promiscuous (see [`LeaseJournal::kept_on`]).
    kept_on: std::collections::BTreeSet<String>,
    /// Bumped when `kept_on` changes.
    kept_changes: u64,
}

/// The outcome of [`PromiscLeases::set`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetResult {
    /// The kernel flag changed.
    pub changed: bool,
}

/// Promiscuous-mode changes and their leases, per link index.
#[derive(Debug, Clone)]
pub struct PromiscLeases {
    net: Arc<dyn NetOps>,
    audit: Arc<Audit>,
    journal: Option<Document<LeaseJournal>>,
    // A tokio mutex: a change holds it across the netlink call, which
    // serialises promiscuous-mode changes and their timers.
    inner: Arc<Mutex<Inner>>,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl PromiscLeases {
    /// `store`: where to journal leases; `None` keeps them in memory only.
    pub fn new(net: Arc<dyn NetOps>, audit: Arc<Audit>, store: Option<&Store>) -> Self {
        Self {
            net,
            audit,
            journal: store.map(|s| s.document(JOURNAL_FILE)),
            inner: Arc::default(),
        }
    }

    /// Sets IFF_PROMISC on `link` to `enabled`, with an optional lease.
    /// The lease journal is written first; when that fails nothing changes.
    pub async fn set(
        &self,
        link: &Interface,
        enabled: bool,
        lease: Option<Duration>,
    ) -> Result<SetResult, Error> {
        let mut inner = self.inner.lock().await;
        let previous = inner.leases.get(&link.index).map(|l| l.record.clone());
        let record = lease.map(|lease| LeaseRecord {
            index: link.index,
            name: link.name.clone(),
            revert_to: previous.as_ref().map_or(link.promiscuous, |r| r.revert_to),
            deadline: now_unix() + lease.as_secs(),
        });
        let kept_before = inner.kept_on.clone();
        if lease.is_none() {
            if enabled {
                inner.kept_on.insert(link.name.clone());
            } else {
                inner.kept_on.remove(&link.name);
            }
        }
        if inner.kept_on != kept_before {
            inner.kept_changes += 1;
        }
        let journal_changes =
            previous.is_some() || record.is_some() || inner.kept_on != kept_before;
        if journal_changes {
            let mut records = records_of(&inner);
            records.retain(|r| r.index != link.index);
            records.extend(record.clone());
            if let Err(e) = self.save(records, &inner.kept_on).await {
                inner.kept_on = kept_before;
                return Err(e.into());
            }
        }
        let changed = link.promiscuous != enabled;
        if changed && let Err(e) = self.net.set_promisc(link.index, enabled).await {
            // Nothing changed: the journal goes back to what it was (the
            // old lease still runs).
            inner.kept_on = kept_before;
            if journal_changes && let Err(se) = self.save(records_of(&inner), &inner.kept_on).await
            {
                tracing::error!(error = %se, "cannot restore the lease journal");
            }
            return Err(e.into());
        }
        if let Some(old) = inner.leases.remove(&link.index) {
            old.timer.abort();
        }
        if let Some(record) = record {
            self.arm(&mut inner, record);
        }
        Ok(SetResult { changed })
    }

    /// The active lease on a link, if any.
    pub async fn lease_of(&self, index: u32) -> Option<PromiscLease> {
        let inner = self.inner.lock().await;
        inner.leases.get(&index).map(|l| PromiscLease {
            remaining_seconds: u32::try_from(l.record.deadline.saturating_sub(now_unix()))
                .unwrap_or(u32::MAX),
            revert_to: l.record.revert_to,
        })
    }

    /// Fills in `promisc_lease` on interfaces that have one.
    pub async fn annotate(&self, ifaces: &mut [Interface]) {
        for i in ifaces {
            i.promisc_lease = self.lease_of(i.index).await;
        }
    }

    /// Re-arms journaled leases after a restart; reverts those already
    /// over. A journal of the old layout is rewritten in today's.
    pub async fn restore(&self) -> Result<(), StoreError> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        let Some(loaded) = journal.load().await? else {
            return Ok(());
        };
        let mut inner = self.inner.lock().await;
        inner.kept_on = loaded.kept_on.into_iter().collect();
        for record in loaded.leases {
            // Interface indexes are reused: only trust a record whose link
            // still has the same name.
            match self.net.link_by_index(record.index).await {
                Ok(l) if l.name == record.name => {
                    tracing::info!(interface = %record.name, "re-arming promiscuous-mode lease");
                    self.arm(&mut inner, record);
                }
                _ => tracing::warn!(
                    interface = %record.name,
                    "dropping promiscuous-mode lease: the interface is gone"
                ),
            }
        }
        self.save(records_of(&inner), &inner.kept_on).await
    }

    /// A number that moves whenever the links kept promiscuous do.
    pub async fn kept_changes(&self) -> u64 {
        self.inner.lock().await.kept_changes
    }

    /// The links kept promiscuous that have no lease running now (a lease
    /// is an operator's temporary override: it is left to run out).
    pub async fn kept_on(&self) -> Vec<String> {
        let inner = self.inner.lock().await;
        let leased: std::collections::BTreeSet<&str> = inner
            .leases
            .values()
            .map(|l| l.record.name.as_str())
            .collect();
        inner
            .kept_on
            .iter()
            .filter(|n| !leased.contains(n.as_str()))
            .cloned()
            .collect()
    }

    /// Turns promiscuous mode back on for `link` when it is still kept on
    /// and has no lease (checked under the same lock a change takes, so an
    /// operator's change in between wins); whether the flag changed.
    pub async fn restore_kept(&self, link: &Interface) -> Result<bool, Error> {
        let inner = self.inner.lock().await;
        if !inner.kept_on.contains(&link.name)
            || inner.leases.values().any(|l| l.record.name == link.name)
            || link.promiscuous
        {
            return Ok(false);
        }
        self.net.set_promisc(link.index, true).await?;
        Ok(true)
    }

    fn arm(&self, inner: &mut Inner, record: LeaseRecord) {
        inner.generation += 1;
        let generation = inner.generation;
        let wait = Duration::from_secs(record.deadline.saturating_sub(now_unix()));
        let this = self.clone();
        let index = record.index;
        let timer = tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            this.expire(index, generation).await;
        })
        .abort_handle();
        inner.leases.insert(
            index,
            Lease {
                record,
                generation,
                timer,
            },
        );
    }

    async fn expire(&self, index: u32, generation: u64) {
        let mut inner = self.inner.lock().await;
        match inner.leases.get(&index) {
            Some(l) if l.generation == generation => {}
            _ => return,
        }
        let Some(lease) = inner.leases.remove(&index) else {
            return;
        };
        let r = &lease.record;
        let who = Identity::agent("promiscuous-mode lease expired");
        let detail = format!("promisc {}", if r.revert_to { "on" } else { "off" });
        let result = match self.net.link_by_index(index).await {
            Ok(l) if l.name == r.name => {
                if l.promiscuous == r.revert_to {
                    Ok(false)
                } else {
                    self.net
                        .set_promisc(index, r.revert_to)
                        .await
                        .map(|()| true)
                        .map_err(|e| e.to_string())
                }
            }
            Ok(_) | Err(NetError::NotFound { .. }) => Err("interface is gone".to_owned()),
            Err(e) => Err(e.to_string()),
        };
        let result = match result {
            Ok(true) => "changed".to_owned(),
            Ok(false) => "unchanged".to_owned(),
            Err(e) => format!("error: {e}"),
        };
        self.audit
            .record(&who, "lease-expiry", &r.name, &detail, &result);
        // No request to fail: a lease left in the journal is reverted again
        // (to the same state) after a restart.
        if let Err(e) = self.save(records_of(&inner), &inner.kept_on).await {
            tracing::error!(error = %e, "cannot write the lease journal");
        }
    }

    async fn save(
        &self,
        leases: Vec<LeaseRecord>,
        kept_on: &std::collections::BTreeSet<String>,
    ) -> Result<(), StoreError> {
        let kept_on = kept_on.iter().cloned().collect();
        match &self.journal {
            Some(j) => j.save(&LeaseJournal { leases, kept_on }).await,
            None => Ok(()),
        }
    }
}

/// The leases in a stable order.
fn records_of(inner: &Inner) -> Vec<LeaseRecord> {
    let mut records: Vec<LeaseRecord> = inner.leases.values().map(|l| l.record.clone()).collect();
    records.sort_by_key(|r| r.index);
    records
}
