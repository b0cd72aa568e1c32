//! The fleet engine, as a library: from a spec to every host's desired
//! state ([`desired`]), a plan per host ([`plan`](mod@plan)), a commit-confirmed
//! rollout ([`rollout`](mod@rollout)), a proof with probes ([`verify`]), teardown
//! ([`destroy`]) and drift ([`status`]). Each returns a typed report;
//! progress goes through [`Progress`] and stopping through [`Interrupt`].
//! The engine knows nothing of terminals: `cli/` prints.

pub mod attached;
pub mod convergence;
mod desired;
pub mod destroy;
pub mod interrupt;
mod observe;
pub mod phases;
pub mod plan;
pub mod read;
pub mod rollout;
pub mod status;
pub mod verify;

pub use desired::{DesiredError, ENDPOINT_IFNAME, Observed, desired, teardown};
pub use interrupt::Interrupt;
pub use observe::observed;
pub use phases::Phases;
pub use plan::{FleetPlan, Goal, HostPlan, plan};
pub use rollout::{ApplyOptions, Progress, RolloutOutcome, RolloutReport, rollout};
pub use verify::ProbeProgress;

use crate::client::RpcError;

/// Reports nothing: for callers that do not show progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

/// Why the engine could not plan.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(transparent)]
    Desired(#[from] DesiredError),
    /// Hosts that did not answer (none may be skipped, or none answered).
    #[error(transparent)]
    Unreachable(#[from] read::UnreachableHosts),
    /// A host's agent refused to plan its part.
    #[error(transparent)]
    Rpc(RpcError),
}
