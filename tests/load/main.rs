//! Load on the netns lab (tier T3, root): a 20-host fleet verified with the
//! full mesh, and the soak. One binary, one module per suite.

mod fleet_scale;
mod soak;

/// One load test at a time: each needs the machine's cores to itself for
/// its probes' deadlines and its footprint figures to mean anything.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
