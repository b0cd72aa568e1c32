//! End-to-end suites on QEMU guests (tier T4, root): real 802.1Q between
//! two guests booted from Debian's cloud kernel, joined by the lab's wire
//! hub. One binary, one module per suite.

mod cni;
mod fleet_apply;
mod seed;

/// One pair of guests at a time: two QEMU labs on 2 cores would slow each
/// other's boots past their deadlines.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
