//! `destroy`: what the fleet converges to when a spec's objects go, and
//! how that rollout runs (no probes: there is nothing left to prove).

use super::rollout::ApplyOptions;

/// What `destroy` converges every host to.
pub use super::desired::teardown;

/// Seconds a host waits for the confirmation of a teardown.
pub const CONFIRM_TIMEOUT: u32 = 120;

/// How a teardown applies: `parallel` hosts at once after the first, no
/// address check (nothing is made) and no verification.
pub fn options(parallel: usize) -> ApplyOptions {
    ApplyOptions {
        confirm_timeout: CONFIRM_TIMEOUT,
        address_check_ms: 0,
        parallel,
        verify: false,
    }
}
