//! What every lab suite needs around its test: a root check that may skip
//! only when skipping is allowed, and a guard that takes the lab down when
//! the test ends, passed or failed.

use std::path::PathBuf;

use crate::lab;

/// Whether this process is root. Without root a lab test is skipped — unless
/// `LINKHERD_REQUIRE_ROOT=1` (as CI sets), where skipping would hide it.
pub fn have_root(what: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("LINKHERD_REQUIRE_ROOT").as_deref() != Ok("1"),
        "{what} needs root, and LINKHERD_REQUIRE_ROOT=1 forbids skipping"
    );
    eprintln!("SKIPPED {what}: needs root (network namespaces)");
    false
}

/// Takes the lab in this directory down when dropped.
#[derive(Debug)]
pub struct LabGuard(pub PathBuf);

impl Drop for LabGuard {
    fn drop(&mut self) {
        if let Err(e) = lab::down(&self.0) {
            eprintln!("lab down failed: {e}");
        }
    }
}
