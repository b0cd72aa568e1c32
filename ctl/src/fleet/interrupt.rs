//! How a caller tells the engine to stop (the CLI wires Ctrl-C to it).

use std::sync::Arc;

use tokio::sync::watch;

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
