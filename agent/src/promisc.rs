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

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use linkherd_proto::model::{Interface, PromiscLease};
use serde::{Deserialize, Serialize};
use tokio::{sync::Mutex, task::AbortHandle};

use crate::{
    audit::Audit,
    auth::Identity,
    net::{NetError, NetOps},
};

const JOURNAL_FILE: &str = "promisc-leases.json";

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
    journal: Option<PathBuf>,
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
    /// `state_dir`: where to journal leases; `None` keeps them in memory only.
    pub fn new(net: Arc<dyn NetOps>, audit: Arc<Audit>, state_dir: Option<PathBuf>) -> Self {
        Self {
            net,
            audit,
            journal: state_dir.map(|d| d.join(JOURNAL_FILE)),
            inner: Arc::default(),
        }
    }

    /// Sets IFF_PROMISC on `link` to `enabled`, with an optional lease.
    pub async fn set(
        &self,
        link: &Interface,
        enabled: bool,
        lease: Option<Duration>,
    ) -> Result<SetResult, NetError> {
        let mut inner = self.inner.lock().await;
        let existing = inner.leases.remove(&link.index);
        if let Some(old) = &existing {
            old.timer.abort();
        }
        let changed = link.promiscuous != enabled;
        if changed && let Err(e) = self.net.set_promisc(link.index, enabled).await {
            // Nothing changed: put the previous lease back as it was.
            if let Some(old) = existing {
                self.arm(&mut inner, old.record);
            }
            return Err(e);
        }
        if let Some(lease) = lease {
            let revert_to = existing
                .as_ref()
                .map_or(link.promiscuous, |l| l.record.revert_to);
            let record = LeaseRecord {
                index: link.index,
                name: link.name.clone(),
                revert_to,
                deadline: now_unix() + lease.as_secs(),
            };
            self.arm(&mut inner, record);
        }
        self.save(&inner).await;
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

    /// Re-arms journaled leases after a restart; reverts those already over.
    pub async fn restore(&self) {
        let Some(path) = &self.journal else { return };
        let records: Vec<LeaseRecord> = match tokio::fs::read(path).await {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "ignoring a corrupt lease journal");
                    return;
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot read the lease journal");
                return;
            }
        };
        let mut inner = self.inner.lock().await;
        for record in records {
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
        self.save(&inner).await;
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
        self.save(&inner).await;
    }

    async fn save(&self, inner: &Inner) {
        let Some(path) = &self.journal else { return };
        let mut records: Vec<&LeaseRecord> = inner.leases.values().map(|l| &l.record).collect();
        records.sort_by_key(|r| r.index);
        let Ok(bytes) = serde_json::to_vec_pretty(&records) else {
            return;
        };
        // Write-then-rename so a crash never leaves half a journal.
        let tmp = path.with_extension("json.tmp");
        let res = async {
            tokio::fs::write(&tmp, &bytes).await?;
            tokio::fs::rename(&tmp, path).await
        }
        .await;
        if let Err(e) = res {
            tracing::error!(path = %path.display(), error = %e, "cannot write the lease journal");
        }
    }
}
