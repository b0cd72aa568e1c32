//! The fleet engine, as a library: from a spec to every host's desired
//! state ([`desired`]), a plan per host ([`plan`]), a commit-confirmed
//! rollout ([`rollout`]), a proof with probes ([`verify`]), teardown
//! ([`destroy`]) and drift ([`status`]). Each returns a typed report;
//! progress goes through [`Progress`] and stopping through [`Interrupt`].
//! The engine knows nothing of terminals: `cli/` prints.

mod desired;
pub mod destroy;
mod observe;
pub mod plan;
pub mod progress;
pub mod read;
pub mod rollout;
pub mod status;
pub mod verify;

pub use desired::{DesiredError, ENDPOINT_IFNAME, Observed, desired};
pub use observe::observed;
pub use plan::{FleetPlan, Goal, HostPlan, plan};
pub use progress::{Interrupt, Progress, Silent};
pub use rollout::{ApplyOptions, RolloutOutcome, RolloutReport, rollout};

use crate::client::RpcError;

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
