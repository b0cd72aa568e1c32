//! A fleet-wide commit-confirmed transaction: every host applies its part
//! as a pending transaction (its agent rolls back by itself unless
//! confirmed in time), then the caller confirms everywhere or rolls back
//! everywhere.
//!
//! The first host (in name order) is applied alone before the others, and
//! acts as the fleet's lock: a pending transaction there refuses any other
//! apply, so of two applies of the same fleet racing each other one wins
//! and the other is refused before it has changed anything. The other hosts
//! then apply concurrently.

use std::sync::atomic::{AtomicBool, Ordering};

use futures::{StreamExt, stream};
use linkherd_proto::pb::{self, host_service_client::HostServiceClient};
use serde::Serialize;
use tonic::transport::Channel;

use crate::{error::CtlError, progress::Progress};

/// One host's part: what to apply there, against which generation.
#[derive(Debug, Clone)]
pub struct Step {
    pub host: String,
    pub channel: Channel,
    pub desired: pb::DesiredState,
    pub generation: u64,
    /// Changes the plan showed, for the progress line.
    pub changes: usize,
}

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
}

/// A host's applied, not yet confirmed transaction.
#[derive(Debug, Clone)]
pub struct Pending {
    pub host: String,
    pub channel: Channel,
    pub txn_id: String,
    pub applied: Vec<pb::Change>,
}

/// What happened on one host.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HostOutcome {
    pub host: String,
    pub ok: bool,
    pub detail: String,
}

/// Why a fleet apply stopped: the hosts that failed (or were not started
/// because another failed first), and the transactions that did go through
/// and now need rolling back.
#[derive(Debug)]
pub struct ApplyFailure {
    pub failed: Vec<HostOutcome>,
    pub pending: Vec<Pending>,
    /// Ctrl-C came while the hosts were applying.
    pub interrupted: bool,
}

/// Whether hosts not yet started should start, and if not, why.
#[derive(Debug, Default)]
struct Stop {
    failed: AtomicBool,
    interrupted: AtomicBool,
}

impl Stop {
    fn why(&self) -> Option<&'static str> {
        if self.interrupted.load(Ordering::SeqCst) {
            Some("not started: interrupted (Ctrl-C)")
        } else if self.failed.load(Ordering::SeqCst) {
            Some("not started: another host failed first")
        } else {
            None
        }
    }
}

/// Applies every step as a pending transaction. Hosts with nothing to
/// change are not asked (nothing to lock or confirm there). Ctrl-C stops
/// hosts from starting; those applying finish (an Apply cut off half way
/// would leave a transaction nobody knows the id of), and the caller gets
/// every pending transaction back to roll back.
pub async fn apply(
    steps: Vec<Step>,
    opts: ApplyOptions,
    progress: &Progress,
) -> Result<Vec<Pending>, ApplyFailure> {
    let mut steps: Vec<Step> = steps.into_iter().filter(|s| s.changes > 0).collect();
    steps.sort_by(|a, b| a.host.cmp(&b.host));
    let mut rest = steps.into_iter();
    let Some(lead) = rest.next() else {
        return Ok(Vec::new());
    };
    let stop = Stop::default();
    let work = async {
        let mut results = vec![apply_one(lead, opts, progress, &stop).await];
        results.extend(
            stream::iter(rest)
                .map(|s| apply_one(s, opts, progress, &stop))
                .buffer_unordered(opts.parallel.max(1))
                .collect::<Vec<_>>()
                .await,
        );
        results
    };
    let watch = async {
        if tokio::signal::ctrl_c().await.is_ok() {
            stop.interrupted.store(true, Ordering::SeqCst);
        }
        std::future::pending::<std::convert::Infallible>().await
    };
    let results = tokio::select! {
        r = work => r,
        never = watch => match never {},
    };
    let (mut pending, mut failed) = (Vec::new(), Vec::new());
    for r in results {
        match r {
            Ok(p) => pending.push(p),
            Err(f) => failed.push(f),
        }
    }
    let interrupted = stop.interrupted.load(Ordering::SeqCst);
    if failed.is_empty() && !interrupted {
        Ok(pending)
    } else {
        failed.sort_by(|a, b| a.host.cmp(&b.host));
        Err(ApplyFailure {
            failed,
            pending,
            interrupted,
        })
    }
}

/// One host's Apply; after another host failed, hosts not yet started are
/// not started (their outcome says so).
async fn apply_one(
    s: Step,
    opts: ApplyOptions,
    progress: &Progress,
    stop: &Stop,
) -> Result<Pending, HostOutcome> {
    if let Some(why) = stop.why() {
        return Err(HostOutcome {
            host: s.host,
            ok: false,
            detail: why.into(),
        });
    }
    let task = progress.spinner(&s.host, &format!("applying {} change(s)", s.changes));
    let r = HostServiceClient::new(s.channel.clone())
        .apply(pb::ApplyRequest {
            desired: Some(s.desired),
            expected_generation: s.generation,
            confirm_timeout_seconds: opts.confirm_timeout,
            address_check_ms: opts.address_check_ms,
        })
        .await;
    match r {
        Ok(r) => {
            let r = r.into_inner();
            task.finish(
                true,
                &format!(
                    "{} change(s) applied, pending confirmation ({})",
                    r.applied.len(),
                    r.txn_id
                ),
            );
            Ok(Pending {
                host: s.host,
                channel: s.channel,
                txn_id: r.txn_id,
                applied: r.applied,
            })
        }
        Err(status) => {
            stop.failed.store(true, Ordering::SeqCst);
            let detail = CtlError::Rpc(status).to_string();
            task.finish(false, &detail);
            Err(HostOutcome {
                host: s.host,
                ok: false,
                detail,
            })
        }
    }
}

/// Rolls back every pending transaction, all hosts at once; says per host
/// what was reverted or why it could not be (the agent then rolls back by
/// itself when its confirmation time ends, or at its restart).
pub async fn rollback(pending: &[Pending]) -> Vec<HostOutcome> {
    on_every_host(pending, |p| async move {
        match HostServiceClient::new(p.channel.clone())
            .rollback(pb::RollbackRequest {
                txn_id: p.txn_id.clone(),
            })
            .await
        {
            Ok(r) => Ok(format!(
                "rolled back {} step(s)",
                r.into_inner().reverted.len()
            )),
            Err(s) => Err(format!(
                "could not roll back ({}); its agent rolls {} back by itself when the \
                 confirmation time ends or when it restarts",
                CtlError::Rpc(s),
                p.txn_id
            )),
        }
    })
    .await
}

/// Confirms every pending transaction, all hosts at once.
pub async fn confirm(pending: &[Pending]) -> Vec<HostOutcome> {
    on_every_host(pending, |p| async move {
        match HostServiceClient::new(p.channel.clone())
            .confirm(pb::ConfirmRequest {
                txn_id: p.txn_id.clone(),
            })
            .await
        {
            Ok(r) => Ok(format!(
                "confirmed (generation {})",
                r.into_inner().generation
            )),
            Err(s) => Err(format!(
                "could not confirm {}: {}",
                p.txn_id,
                CtlError::Rpc(s)
            )),
        }
    })
    .await
}

/// Runs `call` for every pending transaction concurrently; its `Ok`/`Err`
/// text becomes that host's outcome.
async fn on_every_host<'a, F, Fut>(pending: &'a [Pending], call: F) -> Vec<HostOutcome>
where
    F: Fn(&'a Pending) -> Fut,
    Fut: std::future::Future<Output = Result<String, String>>,
{
    let calls = pending.iter().map(|p| {
        let fut = call(p);
        async move {
            let (ok, detail) = match fut.await {
                Ok(d) => (true, d),
                Err(d) => (false, d),
            };
            HostOutcome {
                host: p.host.clone(),
                ok,
                detail,
            }
        }
    });
    futures::future::join_all(calls).await
}
