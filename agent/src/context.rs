//! What every service handler shares.

use std::{sync::Arc, time::Instant};

use crate::{
    host::Host,
    leases::PromiscLeases,
    net::{Capabilities, NetOps},
    state::audit::Audit,
};

/// Shared agent state: the kernel seam and the bookkeeping around it.
#[derive(Debug)]
pub struct Context {
    pub net: Arc<dyn NetOps>,
    pub leases: PromiscLeases,
    pub audit: Arc<Audit>,
    /// The name this host has in the fleet (defaults to the hostname).
    pub host_name: String,
    pub started: Instant,
    /// VLANs, endpoints and host access.
    pub host: Arc<Host>,
    /// Commit-confirmed transactions over the desired state.
    pub txns: crate::txn::Transactions,
    /// The one kernel subscription every `Watch` stream shares, and the
    /// caps on those streams.
    pub watches: crate::watch::WatchHub,
    /// The probe budget, one per agent: every listener's ProbeService draws
    /// from it.
    pub probe_budget: Arc<crate::net::probe::budget::Budget>,
    /// Mutations running to their end (see `Call::to_the_end`): shutdown
    /// waits for them, up to its bound.
    pub mutations: tokio_util::task::TaskTracker,
    /// Keeps the host as its records say (see [`crate::converge`]).
    pub converge: Arc<crate::converge::Reconciler>,
    /// What `/metrics` shows.
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Context {
    pub fn new(
        net: Arc<dyn NetOps>,
        audit: Arc<Audit>,
        leases: PromiscLeases,
        host: Arc<Host>,
        txns: crate::txn::Transactions,
        (host_name, converge, metrics): (
            String,
            Arc<crate::converge::Reconciler>,
            Arc<crate::metrics::Metrics>,
        ),
        watch_limits: crate::watch::WatchLimits,
    ) -> Self {
        Self {
            watches: crate::watch::WatchHub::new(net.clone(), watch_limits),
            probe_budget: Arc::default(),
            mutations: tokio_util::task::TaskTracker::new(),
            net,
            leases,
            audit,
            host_name,
            started: Instant::now(),
            host,
            txns,
            converge,
            metrics,
        }
    }

    /// Kernel capabilities, probed once.
    pub async fn capabilities(&self) -> &Capabilities {
        self.host.capabilities().await
    }
}
