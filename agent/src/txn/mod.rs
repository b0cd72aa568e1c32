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
//! The rooms: the engine (this file: apply, confirm, rollback, expiry),
//! [`journal`] (the undo records and their files), [`legacy`] (the journal
//! of agents before the store), [`recovery`] (at start), [`steps`] (each
//! kind of step, write-ahead) and [`observed`] (the host's generation).

mod journal;
mod legacy;
mod observed;
mod recovery;
mod steps;

pub use observed::{fingerprint, generation, observed};

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use linkherd_proto::model::Desired;
use tokio::{sync::Mutex, task::AbortHandle};

use crate::{
    error::Error,
    faults::{Faults, Point},
    host::{
        Host,
        plan::{Change, Op},
    },
    state::{
        audit::Audit,
        caller::Identity,
        store::{RecordSet, Store},
    },
};
use journal::{Batch, Journal};

/// The journal's record set in the state directory.
const JOURNAL: &str = "txn";
/// The single-file journal of agents before the store (format 0).
const LEGACY_JOURNAL: &str = "txn.json";
/// Confirmation window when the caller gives none, and the longest allowed.
pub const DEFAULT_CONFIRM: Duration = Duration::from_secs(60);
pub const MAX_CONFIRM: Duration = Duration::from_secs(3600);
/// The longest an address check may wait for answers.
pub const MAX_ADDRESS_CHECK_MS: u32 = 5000;

#[derive(Debug)]
struct Pending {
    journal: Journal,
    timer: Option<AbortHandle>,
}

/// Held by the reconciler while it repairs: no transaction applies,
/// confirms or rolls back meanwhile, and the objects of a pending one are
/// named so that they are left to it.
#[derive(Debug)]
pub struct RepairWindow<'a> {
    _held: tokio::sync::MutexGuard<'a, Option<Pending>>,
    /// The pending transaction's id.
    pub txn: Option<String>,
    /// The objects its steps touched.
    pub objects: std::collections::BTreeSet<crate::host::drift::ObjectKey>,
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
    host: Arc<Host>,
    audit: Arc<Audit>,
    store: Option<Store>,
    journal: Option<RecordSet<Batch>>,
    pending: Arc<Mutex<Option<Pending>>>,
    faults: Faults,
    metrics: Arc<crate::metrics::Metrics>,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Transactions {
    /// `store`: where the journal lives; `None` keeps it in memory only.
    pub fn new(
        host: Arc<Host>,
        audit: Arc<Audit>,
        store: Option<Store>,
        (faults, metrics): (Faults, Arc<crate::metrics::Metrics>),
    ) -> Self {
        Self {
            metrics,
            host,
            audit,
            journal: store.as_ref().map(|s| s.records(JOURNAL)),
            store,
            pending: Arc::default(),
            faults,
        }
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
        let now = generation(&self.host).await?;
        if expected != 0 && expected != now {
            return Err(Error::Precondition(format!(
                "this host changed since it was planned (generation {expected}, now {now}); plan again"
            )));
        }
        let changes = self.host.planner().plan(desired).await?;
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
        if let Err(e) = self.run(&changes, check, &mut journal).await {
            self.count("failed");
            return Err(e);
        }
        self.count("applied");
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

    fn count(&self, outcome: &'static str) {
        self.metrics
            .transactions
            .get_or_create(&crate::metrics::Outcome { outcome })
            .inc();
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
                    this.count("expired");
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
        self.count("confirmed");
        generation(&self.host).await
    }

    /// Waits until no transaction is being applied, confirmed or rolled
    /// back, and holds that until the window is dropped (see
    /// [`RepairWindow`]).
    pub async fn repair_window(&self) -> RepairWindow<'_> {
        let held = self.pending.lock().await;
        let (txn, objects) = match held.as_ref() {
            Some(p) => (
                Some(p.journal.id.clone()),
                p.journal
                    .undo_order()
                    .filter_map(journal::JournalStep::object)
                    .collect(),
            ),
            None => (None, Default::default()),
        };
        RepairWindow {
            _held: held,
            txn,
            objects,
        }
    }

    /// Undoes a pending transaction; returns what was reverted, in words.
    pub async fn rollback(&self, id: &str) -> Result<Vec<String>, Error> {
        let reverted = self.roll_back(id, true).await?;
        self.count("rolled_back");
        Ok(reverted)
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
            match step.revert(&self.host).await {
                Ok(()) => out.push(what),
                Err(e) => {
                    tracing::error!(step = what, error = %e, "rollback step failed");
                    out.push(format!("FAILED: {what}: {e}"));
                }
            }
        }
        out
    }
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
}
