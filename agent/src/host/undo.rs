//! Rollback of multi-step changes in memory: a change that fails half way
//! leaves nothing behind. (The journaled undo of a transaction's steps is
//! `txn::JournalStep`; this one lives only as long as one request.)

use std::{future::Future, pin::Pin};

type Step = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Steps that reverse what has been done so far, run newest first.
#[derive(Default)]
pub struct Rollback {
    steps: Vec<(String, Step)>,
}

impl std::fmt::Debug for Rollback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.steps.iter().map(|(d, _)| d))
            .finish()
    }
}

impl Rollback {
    /// Records how to reverse a step that just succeeded.
    pub fn push(
        &mut self,
        what: impl Into<String>,
        step: impl Future<Output = ()> + Send + 'static,
    ) {
        self.steps.push((what.into(), Box::pin(step)));
    }

    /// Reverses everything, newest first. The steps log their own failures:
    /// the original error is what the caller reports.
    pub async fn run(mut self) {
        while let Some((what, step)) = self.steps.pop() {
            tracing::info!(step = %what, "rolling back");
            step.await;
        }
    }

    /// The change is complete: keep it.
    pub fn commit(mut self) {
        self.steps.clear();
    }
}
