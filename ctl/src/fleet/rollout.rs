//! A fleet-wide commit-confirmed transaction: every host applies its part
//! as a pending transaction (its agent rolls back by itself unless
//! confirmed in time), the fleet is verified, then the engine confirms
//! everywhere or rolls back everywhere.
//!
//! The first host (in name order) is applied alone before the others, and
//! acts as the fleet's lock: a pending transaction there refuses any other
//! apply, so of two applies of the same fleet racing each other one wins
//! and the other is refused before it has changed anything. The other hosts
//! then apply concurrently.

use std::{
    fmt,
    sync::atomic::{AtomicBool, Ordering},
};

use futures::{StreamExt, stream};
use linkherd_proto::pb::{self, host_service_client::HostServiceClient};
use tonic::transport::Channel;

use super::{
    Silent,
    interrupt::Interrupt,
    phases::{Phases, timed},
    plan::{FleetPlan, HostPlan},
    verify::{self, ProbeProgress, Verification, VerifyFailure},
};
use crate::client::RpcError;

/// Events of a rollout as they happen, besides those of its verification.
/// Every method has a default that ignores the event. The engine knows
/// nothing of terminals: the CLI draws bars from these calls.
pub trait Progress: ProbeProgress {
    /// `host` starts applying its `changes` changes.
    fn applying(&self, _host: &str, _changes: usize) {}
    /// `host` has applied (pending confirmation) or failed.
    fn applied(&self, _host: &str, _result: Result<&Pending, &HostFailure>) {}
}

impl Progress for Silent {}

/// How every host applies its part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Seconds before an unconfirmed transaction rolls back by itself.
    pub confirm_timeout: u32,
    /// Milliseconds to wait for answers when probing new endpoints'
    /// addresses on the wire before any is made (0: no check).
    pub address_check_ms: u32,
    /// Hosts applying at the same time (after the first).
    pub parallel: usize,
    /// Prove the fleet with the spec's probes before confirming.
    pub verify: bool,
}

/// A host's applied, not yet confirmed transaction.
#[derive(Debug, Clone)]
pub struct Pending {
    pub host: String,
    pub channel: Channel,
    pub txn_id: String,
    /// Changes applied.
    pub applied: usize,
}

/// Why a host has no pending transaction.
#[derive(Debug, Clone)]
pub enum HostFailure {
    /// Not asked to apply, because of what happened first.
    NotStarted(NotStarted),
    /// Its agent refused or failed the Apply (and undid its part).
    Refused(RpcError),
}

/// Why a host was not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStarted {
    Interrupted,
    AnotherFailed,
}

impl fmt::Display for HostFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostFailure::NotStarted(NotStarted::Interrupted) => {
                f.write_str("not started: interrupted (Ctrl-C)")
            }
            HostFailure::NotStarted(NotStarted::AnotherFailed) => {
                f.write_str("not started: another host failed first")
            }
            HostFailure::Refused(e) => e.fmt(f),
        }
    }
}

/// What rolling back one host's transaction did.
#[derive(Debug, Clone)]
pub enum Rollback {
    RolledBack {
        steps: usize,
    },
    /// Its agent rolls `txn` back by itself when the confirmation time
    /// ends, or when it restarts.
    Failed {
        txn: String,
        error: RpcError,
    },
}

impl fmt::Display for Rollback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rollback::RolledBack { steps } => write!(f, "rolled back {steps} step(s)"),
            Rollback::Failed { txn, error } => write!(
                f,
                "could not roll back ({error}); its agent rolls {txn} back by itself when the \
                 confirmation time ends or when it restarts"
            ),
        }
    }
}

/// What confirming one host's transaction did.
#[derive(Debug, Clone)]
pub enum Confirm {
    Confirmed { generation: u64 },
    Failed { txn: String, error: RpcError },
}

impl Confirm {
    pub fn ok(&self) -> bool {
        matches!(self, Confirm::Confirmed { .. })
    }
}

impl fmt::Display for Confirm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Confirm::Confirmed { generation } => write!(f, "confirmed (generation {generation})"),
            Confirm::Failed { txn, error } => write!(f, "could not confirm {txn}: {error}"),
        }
    }
}

/// Why a rollout was rolled back.
#[derive(Debug, Clone)]
pub enum Stopped {
    /// Hosts failed to apply (and those after them were not started).
    ApplyFailed(Vec<(String, HostFailure)>),
    /// The caller interrupted while hosts were applying.
    Interrupted(Vec<(String, HostFailure)>),
    Verification(VerifyFailure),
    /// The caller interrupted during verification.
    InterruptedVerifying,
}

/// How a rollout ended.
#[derive(Debug, Clone)]
pub enum RolloutOutcome {
    /// The plan changes nothing: no host was asked.
    NoChanges,
    /// Every host confirmed.
    Confirmed {
        changes: usize,
        confirms: Vec<(String, Confirm)>,
    },
    /// Every pending transaction was rolled back (or is rolling back).
    RolledBack {
        why: Stopped,
        rollbacks: Vec<(String, Rollback)>,
    },
    /// Some hosts confirmed and others did not: run the apply again.
    Partial { confirms: Vec<(String, Confirm)> },
}

/// A rollout's outcome, what its verification found, and how long each
/// phase took (`plan` is the caller's).
#[derive(Debug, Clone)]
pub struct RolloutReport {
    pub outcome: RolloutOutcome,
    pub verification: Verification,
    pub phases: Phases,
}

/// Applies `plan` on every host that has changes, verifies (with
/// `opts.verify`), then confirms everywhere or rolls back everywhere.
/// `interrupt` stops hosts from starting and ends a verification; what is
/// pending is then rolled back.
pub async fn rollout(
    plan: &FleetPlan,
    opts: &ApplyOptions,
    progress: &dyn Progress,
    interrupt: &Interrupt,
) -> RolloutReport {
    let mut phases = Phases::default();
    let mut verification = Verification::default();
    if !plan.has_changes() {
        return RolloutReport {
            outcome: RolloutOutcome::NoChanges,
            verification,
            phases,
        };
    }
    let applied = timed(&mut phases.apply, apply(plan, opts, progress, interrupt)).await;
    let (pending, stopped) = match applied {
        Ok(pending) if opts.verify => {
            let (why, v) = timed(
                &mut phases.verify,
                verify_pending(plan, &pending, progress, interrupt),
            )
            .await;
            verification = v;
            (pending, why)
        }
        Ok(pending) => (pending, None),
        Err((why, pending)) => (pending, Some(why)),
    };
    let outcome = match stopped {
        Some(why) => timed(&mut phases.rollback, roll_back(why, &pending)).await,
        None => timed(&mut phases.confirm, confirm_all(&pending)).await,
    };
    RolloutReport {
        outcome,
        verification,
        phases,
    }
}

/// Probes the fleet with the pending changes in place: why to roll back,
/// if anything says so, and what was found. Interrupted while probing, it
/// says roll back now rather than leave the hosts pending until their
/// confirmation time ends.
async fn verify_pending(
    plan: &FleetPlan,
    pending: &[Pending],
    progress: &dyn Progress,
    interrupt: &Interrupt,
) -> (Option<Stopped>, Verification) {
    let changed: Vec<&str> = pending.iter().map(|p| p.host.as_str()).collect();
    let v = tokio::select! {
        v = verify::verify(plan, &changed, progress) => v,
        () = interrupt.wait() => verify::VerifyReport {
            failure: None,
            verification: Verification::default(),
        },
    };
    let why = match v.failure {
        Some(f) => Some(Stopped::Verification(f)),
        None if interrupt.is_set() => Some(Stopped::InterruptedVerifying),
        None => None,
    };
    (why, v.verification)
}

/// Applies every host's part as a pending transaction, the first host
/// alone. Hosts with nothing to change are not asked (nothing to lock or
/// confirm there). An interrupt stops hosts from starting; those applying
/// finish (an Apply cut off half way would leave a transaction nobody knows
/// the id of). On failure, the pending transactions come back with why.
async fn apply(
    plan: &FleetPlan,
    opts: &ApplyOptions,
    progress: &dyn Progress,
    interrupt: &Interrupt,
) -> Result<Vec<Pending>, (Stopped, Vec<Pending>)> {
    let failed_first = AtomicBool::new(false);
    let one = |h| apply_one(h, opts, progress, interrupt, &failed_first);
    let mut hosts = plan.changed_hosts();
    let mut results = Vec::new();
    if let Some(lead) = hosts.next() {
        results.push(one(lead).await);
    }
    results.extend(
        stream::iter(hosts)
            .map(one)
            .buffer_unordered(opts.parallel.max(1))
            .collect::<Vec<_>>()
            .await,
    );
    let (mut pending, mut failed) = (Vec::new(), Vec::new());
    for r in results {
        match r {
            Ok(p) => pending.push(p),
            Err(f) => failed.push(f),
        }
    }
    failed.sort_by(|a, b| a.0.cmp(&b.0));
    match (failed.is_empty(), interrupt.is_set()) {
        (true, false) => Ok(pending),
        (_, true) => Err((Stopped::Interrupted(failed), pending)),
        (false, false) => Err((Stopped::ApplyFailed(failed), pending)),
    }
}

/// One host's Apply; after an interrupt or another host's failure, hosts
/// not yet started are not started.
async fn apply_one(
    h: &HostPlan,
    opts: &ApplyOptions,
    progress: &dyn Progress,
    interrupt: &Interrupt,
    failed_first: &AtomicBool,
) -> Result<Pending, (String, HostFailure)> {
    let fail = |f| Err((h.host.clone(), f));
    if interrupt.is_set() {
        return fail(HostFailure::NotStarted(NotStarted::Interrupted));
    }
    if failed_first.load(Ordering::SeqCst) {
        return fail(HostFailure::NotStarted(NotStarted::AnotherFailed));
    }
    progress.applying(&h.host, h.changes.len());
    let r = HostServiceClient::new(h.channel.clone())
        .apply(pb::ApplyRequest {
            desired: Some(pb::DesiredState::from(&h.desired)),
            expected_generation: h.generation,
            confirm_timeout_seconds: opts.confirm_timeout,
            address_check_ms: opts.address_check_ms,
        })
        .await;
    match r {
        Ok(r) => {
            let r = r.into_inner();
            let p = Pending {
                host: h.host.clone(),
                channel: h.channel.clone(),
                txn_id: r.txn_id,
                applied: r.applied.len(),
            };
            progress.applied(&h.host, Ok(&p));
            Ok(p)
        }
        Err(status) => {
            failed_first.store(true, Ordering::SeqCst);
            let f = HostFailure::Refused(RpcError::from(status));
            progress.applied(&h.host, Err(&f));
            fail(f)
        }
    }
}

/// Rolls back every pending transaction, all hosts at once.
async fn roll_back(why: Stopped, pending: &[Pending]) -> RolloutOutcome {
    let calls = pending.iter().map(|p| async move {
        let r = HostServiceClient::new(p.channel.clone())
            .rollback(pb::RollbackRequest {
                txn_id: p.txn_id.clone(),
            })
            .await;
        let r = match r {
            Ok(r) => Rollback::RolledBack {
                steps: r.into_inner().reverted.len(),
            },
            Err(s) => Rollback::Failed {
                txn: p.txn_id.clone(),
                error: RpcError::from(s),
            },
        };
        (p.host.clone(), r)
    });
    RolloutOutcome::RolledBack {
        why,
        rollbacks: futures::future::join_all(calls).await,
    }
}

/// Confirms every pending transaction, all hosts at once.
async fn confirm_all(pending: &[Pending]) -> RolloutOutcome {
    let calls = pending.iter().map(|p| async move {
        let r = HostServiceClient::new(p.channel.clone())
            .confirm(pb::ConfirmRequest {
                txn_id: p.txn_id.clone(),
            })
            .await;
        let c = match r {
            Ok(r) => Confirm::Confirmed {
                generation: r.into_inner().generation,
            },
            Err(s) => Confirm::Failed {
                txn: p.txn_id.clone(),
                error: RpcError::from(s),
            },
        };
        (p.host.clone(), c)
    });
    let confirms = futures::future::join_all(calls).await;
    if confirms.iter().all(|(_, c)| c.ok()) {
        RolloutOutcome::Confirmed {
            changes: pending.iter().map(|p| p.applied).sum(),
            confirms,
        }
    } else {
        RolloutOutcome::Partial { confirms }
    }
}
