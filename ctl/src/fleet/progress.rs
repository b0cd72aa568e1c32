//! How the engine tells its caller what is happening while it works, and
//! how the caller tells it to stop. The engine knows nothing of terminals:
//! the CLI draws bars from these calls, tests record them or ignore them.

use std::sync::Arc;

use tokio::sync::watch;

use super::{
    rollout::{HostFailure, Pending},
    verify::ProbeOutcome,
};

/// Events of a rollout and a verification, as they happen. Every method
/// has a default that ignores the event.
pub trait Progress: Send + Sync {
    /// `host` starts applying its `changes` changes.
    fn applying(&self, _host: &str, _changes: usize) {}
    /// `host` has applied (pending confirmation) or failed.
    fn applied(&self, _host: &str, _result: Result<&Pending, &HostFailure>) {}
    /// `total` probes are about to run.
    fn probing(&self, _total: usize) {}
    /// One probe has its result.
    fn probed(&self, _outcome: &ProbeOutcome) {}
    /// Every probe has its result.
    fn probes_done(&self, _outcomes: &[ProbeOutcome]) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {}

/// A request to stop, shared by whoever may ask (the CLI wires Ctrl-C to
/// it) and the engine: hosts not yet started are not started, a running
/// verification ends, and everything pending is rolled back.
#[derive(Debug, Clone)]
pub struct Interrupt(Arc<watch::Sender<bool>>);

impl Default for Interrupt {
    fn default() -> Self {
        Self(Arc::new(watch::channel(false).0))
    }
}

impl Interrupt {
    /// Asks the engine to stop.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// Whether a stop was asked for.
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Returns once a stop is asked for (at once if it already was).
    pub async fn wait(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`: the channel cannot close here.
        let _ = rx.wait_for(|stop| *stop).await;
    }
}
