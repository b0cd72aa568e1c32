//! Fault points for the crash tests: with feature `faults`, a test hands the
//! agent a hook that runs at each point of a transaction (and may SIGKILL
//! the process there), so "killed after step k" is exact for every k rather
//! than a race against a timer. Without the feature, [`Faults`] is empty and
//! [`Faults::hit`] does nothing; the release agent has no hook.

#[cfg(feature = "faults")]
use std::sync::Arc;

/// Where a transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// Batch `seq` of the undo journal is durable; its kernel change is not
    /// made yet.
    Journaled { seq: u32 },
    /// Change `index` (0-based, in plan order) is made in the kernel.
    Made { index: usize },
}

/// The hook, when a test set one.
#[derive(Clone, Default)]
pub struct Faults {
    #[cfg(feature = "faults")]
    hook: Option<Arc<dyn Fn(Point) + Send + Sync>>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Faults")
    }
}

impl Faults {
    /// Runs `hook` at every point.
    #[cfg(feature = "faults")]
    pub fn new(hook: impl Fn(Point) + Send + Sync + 'static) -> Self {
        Self {
            hook: Some(Arc::new(hook)),
        }
    }

    /// Called by the transaction engine at `point`.
    pub fn hit(&self, point: Point) {
        #[cfg(feature = "faults")]
        if let Some(h) = &self.hook {
            h(point);
        }
        let _ = point;
    }
}
